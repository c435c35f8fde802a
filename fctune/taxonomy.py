"""How examples are classified: complexity, turn type and multi-turn kind, as the suites define them.

Complexity of the scored turn:
* ``simple``: one tool offered and one call that uses only required parameters;
* ``complex``: more than one call, or any argument value that is an object or an array (nested);
* ``moderate``: every other single call: it uses optional parameters or picks one tool among several.
Rows that expect no call are ``simple`` with one tool offered and ``moderate`` otherwise; structured
(json) rows are ``complex`` when the target object nests objects or arrays, else ``simple``.

Turn type: ``single`` when the context is one user message (after any system message) and ``multi``
when earlier assistant or tool turns precede the scored turn.

Multi-turn kind (``metadata.multi_turn_kind``, set by sources that know it; inferred otherwise):
``clarification`` (the assistant asked for a missing detail and the user supplied or corrected it),
``sequential`` (a tool result precedes the scored call) and ``context_dependent`` (the scored call uses
a value that appears only in an earlier turn or tool result, not in the last user message).
"""

from __future__ import annotations


def _nested(v) -> bool:
    return isinstance(v, (dict, list, tuple))


def classify_complexity(example) -> str:
    e = example.expected
    n_tools = len(example.tools)
    if e.kind == "json":
        obj = e.json if isinstance(e.json, dict) else {}
        return "complex" if any(_nested(v) for v in obj.values()) else "simple"
    if e.kind == "no_call":
        return "simple" if n_tools <= 1 else "moderate"
    calls = e.tool_calls
    if len(calls) > 1 or any(_nested(v) for c in calls for v in c.arguments.values()):
        return "complex"
    call = calls[0]
    tool = example.tool(call.name)
    required = set(tool.required) if tool else set()
    uses_optional = any(k not in required for k in call.arguments)
    if n_tools == 1 and not uses_optional:
        return "simple"
    return "moderate"


def classify_turn_type(example) -> str:
    roles = [m.role for m in example.messages if m.role != "system"]
    return "single" if roles == ["user"] else "multi"


def _flatten_values(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _flatten_values(x)
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _flatten_values(x)
    else:
        yield v


def infer_multi_turn_kind(example) -> str | None:
    """Best-effort kind for multi-turn rows from sources that do not label it (see module doc)."""
    if classify_turn_type(example) != "multi":
        return None
    msgs = [m for m in example.messages if m.role != "system"]
    last_user = max((i for i, m in enumerate(msgs) if m.role == "user"), default=-1)
    after_user = msgs[last_user + 1:]
    if any(m.role == "tool" for m in after_user):
        return "sequential"
    before = msgs[:last_user]
    if before and before[-1].role == "assistant" and not before[-1].tool_calls:
        return "clarification"
    last_text = (msgs[last_user].content or "").lower() if last_user >= 0 else ""
    earlier_text = " ".join((m.content or "") for m in msgs[:last_user]).lower()
    for c in example.expected.tool_calls:
        for v in _flatten_values(c.arguments):
            s = str(v).lower()
            if len(s) >= 3 and s not in last_text and s in earlier_text:
                return "context_dependent"
    if any(m.role == "tool" for m in msgs):
        return "sequential"
    return "context_dependent"
