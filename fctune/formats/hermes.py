"""Hermes function-calling v1 (``NousResearch/hermes-function-calling-v1``) <-> canonical examples.

Upstream rows are ShareGPT ``conversations`` (``from`` = system / human / gpt / tool). Tools sit in the
system turn inside ``<tools>...</tools>`` (a JSON or Python-literal list, entries OpenAI-style
``{'type': 'function', 'function': {...}}`` or flat); calls are ``<tool_call>{...}</tool_call>`` blocks,
often single-quoted Python dicts and several per turn; results are ``<tool_response>`` blocks.
json-mode rows (configs ``json_mode_singleturn`` / ``json_mode_agentic``) carry a ``<schema>`` in the
system turn and a JSON answer: they become structured-output examples with that target schema.

The scored turn is the last assistant turn that makes tool calls; without one, a json-mode row scores
its last JSON answer and a tools row scores its last answer as "no call" (the model should not call).
"""

from __future__ import annotations

import json
import random
import re

from fctune.errors import UserError
from fctune.formats.common import RowError, check_calls_offered, finalize
from fctune.parse import iter_json_spans, loads_lenient
from fctune.schema import Example, Expected, Message, ToolCall, ToolSpec

CONFIGS = ("func_calling_singleturn", "func_calling", "glaive_func_calling", "json_mode_singleturn",
           "json_mode_agentic")
HUB_ID = "NousResearch/hermes-function-calling-v1"

_ROLE = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
         "tool": "tool", "function": "tool", "observation": "tool"}
_TOOLS = re.compile(r"<tools>(.*?)</tools>", re.S)
_SCHEMA = re.compile(r"<schema>(.*?)</schema>", re.S)
_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)
_RESPONSE = re.compile(r"<tool_response>(.*?)(?:</tool_response>|\Z)", re.S)

SYSTEM_TOOLS_TEMPLATE = (
    "You are a function calling AI model. You are provided with function signatures within <tools></tools> "
    "XML tags. You may call one or more functions to assist with the user query. Don't make assumptions about "
    "what values to plug into functions.\n<tools>\n{tools}\n</tools>\nFor each function call return a json "
    "object with function name and arguments within <tool_call></tool_call> tags with the following schema:\n"
    "<tool_call>\n{{'arguments': <args-dict>, 'name': <function-name>}}\n</tool_call>\n"
)
SYSTEM_SCHEMA_TEMPLATE = (
    "You are a helpful assistant that answers in JSON. Here's the json schema you must adhere to:\n"
    "<schema>\n{schema}\n</schema>\n"
)


def _parse_block(text: str, what: str):
    try:
        return loads_lenient(text)
    except ValueError:
        pass
    # several objects one after another (some rows list tools without brackets)
    objs = []
    for s, e in iter_json_spans(text):
        try:
            objs.append(loads_lenient(text[s:e]))
        except ValueError:
            raise RowError("unparseable_json", f"{what}: {text[s:e][:80]!r}") from None
    if not objs:
        raise RowError("unparseable_json", f"{what}: {text.strip()[:80]!r}")
    return objs


def parse_tools_block(system: str) -> list[ToolSpec]:
    # The instructions themselves mention "<tools></tools> XML tags": use the blocks that hold something.
    bodies = [b for b in _TOOLS.findall(system or "") if b.strip()]
    if not bodies:
        return []
    raw = _parse_block(bodies[-1], "<tools>")
    items = raw if isinstance(raw, list) else [raw]
    tools = []
    for i, t in enumerate(items):
        try:
            tools.append(ToolSpec.from_openai(t, f"<tools>[{i}]"))
        except ValueError as e:
            raise RowError("bad_shape", str(e)) from None
    return tools


def parse_calls(text: str) -> tuple[list[ToolCall], str]:
    """Calls in a gpt turn and the text left outside the tags."""
    calls = []
    for body in _CALL.findall(text):
        obj = _parse_block(body, "<tool_call>")
        for item in obj if isinstance(obj, list) else [obj]:
            if not isinstance(item, dict):
                raise RowError("bad_shape", f"<tool_call> holds {type(item).__name__}, not an object")
            name = item.get("name") or (item.get("function") or {}).get("name")
            args = item.get("arguments", item.get("parameters", (item.get("function") or {}).get("arguments", {})))
            if isinstance(args, str):
                try:
                    args = loads_lenient(args) if args.strip() else {}
                except ValueError:
                    raise RowError("unparseable_json", f"arguments of {name!r}") from None
            if not isinstance(name, str) or not isinstance(args, dict):
                raise RowError("bad_shape", f"<tool_call> without a name or an arguments object: {item!r:.80}")
            calls.append(ToolCall(name=name, arguments=args))
    rest = _CALL.sub("", text).strip()
    return calls, rest


def _tool_messages(text: str, pending: list[ToolCall]) -> list[Message]:
    bodies = _RESPONSE.findall(text) or [text]
    out = []
    for body in bodies:
        body = body.strip()
        if not body:
            raise RowError("empty_turn", "empty <tool_response>")
        name, content = None, body
        try:
            obj = loads_lenient(body)
            if isinstance(obj, dict) and "name" in obj and "content" in obj:
                name, content = obj["name"], obj["content"]
            content = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        except ValueError:
            pass
        match = next((c for c in pending if c.name == name), pending[0] if pending else None)
        if match is not None:
            pending.remove(match)
        out.append(Message("tool", content, tool_call_id=match.id if match else None,
                           name=name or (match.name if match else None)))
    return out


class HermesConverter:
    """Converts rows of one Hermes config into examples, and examples back into Hermes rows."""

    def __init__(self, config: str = "func_calling_singleturn"):
        if config not in CONFIGS:
            raise UserError(f"unknown Hermes config {config!r}; known: {', '.join(CONFIGS)}")
        self.config = config

    def convert(self, row: dict, index: int = 0) -> Example:
        if not isinstance(row, dict) or not isinstance(row.get("conversations"), list):
            raise RowError("bad_shape", "no 'conversations' list")
        row_id = str(row.get("id", index))
        tools: list[ToolSpec] = []
        schema = None
        messages: list[Message] = []
        pending: list[ToolCall] = []
        n_calls = 0
        for t, turn in enumerate(row["conversations"]):
            if not isinstance(turn, dict):
                raise RowError("bad_shape", f"conversations[{t}] is not an object")
            role = _ROLE.get(str(turn.get("from", turn.get("role", ""))).lower())
            value = turn.get("value", turn.get("content"))
            if role is None:
                raise RowError("bad_shape", f"conversations[{t}].from = {turn.get('from')!r}")
            if not isinstance(value, str) or not value.strip():
                raise RowError("empty_turn", f"conversations[{t}] ({turn.get('from')}) is empty")
            if role == "system":
                tools = parse_tools_block(value) or tools
                if _SCHEMA.search(value):
                    schema = _parse_block(_SCHEMA.search(value).group(1), "<schema>")
                    if not isinstance(schema, dict):
                        raise RowError("bad_shape", "<schema> is not an object")
                rest = _SCHEMA.sub("", _TOOLS.sub("", value)).strip()
                if rest and not tools and schema is None:
                    messages.append(Message("system", value))
                continue
            if role == "assistant":
                calls, rest = parse_calls(value)
                for k, c in enumerate(calls):
                    c.id = f"call_{t}_{k}"
                    n_calls += 1
                pending = list(calls)
                messages.append(Message("assistant", rest or None, tool_calls=calls or None))
            elif role == "tool":
                messages.extend(_tool_messages(value, pending))
            else:
                messages.append(Message("user", value))
        return self._to_example(row, row_id, tools, schema, messages, n_calls)

    def _to_example(self, row, row_id, tools, schema, messages, n_calls) -> Example:
        scored = max((i for i, m in enumerate(messages) if m.role == "assistant" and m.tool_calls), default=None)
        if scored is not None:
            expected = Expected("tool_calls", tool_calls=messages[scored].tool_calls)
        elif schema is not None:
            scored = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=None)
            if scored is None:
                raise RowError("no_target", "json-mode row without an assistant answer")
            try:
                value = json.loads(messages[scored].content)
            except (json.JSONDecodeError, TypeError):
                try:
                    value = loads_lenient(messages[scored].content or "")
                except ValueError:
                    raise RowError("unparseable_json", "json-mode answer is not JSON") from None
            expected = Expected("json", json=value, json_schema=schema)
        else:
            if not tools:
                raise RowError("no_tools", "no <tools> in the system turn")
            scored = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=None)
            if scored is None:
                raise RowError("no_target", "no assistant turn")
            expected = Expected("no_call", text=messages[scored].content)
        if expected.kind != "json" and not tools:
            raise RowError("no_tools", "no <tools> in the system turn")
        context = messages[:scored]
        if not any(m.role == "user" for m in context):
            raise RowError("no_user_turn", "no user turn before the scored turn")
        md = {
            "source": f"hermes:{self.config}",
            "source_id": row_id,
            "category": row.get("category"),
            "subcategory": row.get("subcategory"),
            "task": row.get("task"),
        }
        md.update({k: v for k, v in (row.get("metadata") or {}).items() if k not in md or md[k] is None})
        ex = Example(id=f"hermes-{self.config}-{row_id}", messages=context, tools=tools, expected=expected,
                     metadata={k: v for k, v in md.items() if v is not None})
        check_calls_offered(ex)
        return finalize(ex)

    # -- export (used by the offline source to emit upstream-shaped rows) ---------------------------------
    @staticmethod
    def to_row(example: Example, rng: random.Random | None = None, python_literal_share: float = 0.0) -> dict:
        """A Hermes-shaped row; a share of calls is written as single-quoted Python dicts, as upstream."""
        rng = rng or random.Random(0)

        def dump_call(c: ToolCall) -> str:
            obj = {"arguments": c.arguments, "name": c.name}
            return repr(obj) if rng.random() < python_literal_share else json.dumps(obj, ensure_ascii=False)

        conv = []
        if example.expected.kind == "json":
            conv.append({"from": "system", "value": SYSTEM_SCHEMA_TEMPLATE.format(
                schema=json.dumps(example.expected.json_schema, ensure_ascii=False))})
        else:
            tools = json.dumps([t.to_openai() for t in example.tools], ensure_ascii=False)
            conv.append({"from": "system", "value": SYSTEM_TOOLS_TEMPLATE.format(tools=tools)})
        for m in [*example.messages, example.target_message()]:
            if m.role == "system":
                continue
            if m.role == "user":
                conv.append({"from": "human", "value": m.content})
            elif m.role == "assistant":
                parts = [m.content] if m.content else []
                parts += [f"<tool_call>\n{dump_call(c)}\n</tool_call>" for c in m.tool_calls or []]
                conv.append({"from": "gpt", "value": "\n".join(parts)})
            elif m.role == "tool":
                try:
                    content = json.loads(m.content)
                except (json.JSONDecodeError, TypeError):
                    content = m.content
                body = json.dumps({"name": m.name, "content": content}, ensure_ascii=False)
                if conv and conv[-1]["from"] == "tool":
                    conv[-1]["value"] += f"\n<tool_response>\n{body}\n</tool_response>"
                else:
                    conv.append({"from": "tool", "value": f"<tool_response>\n{body}\n</tool_response>"})
        md = example.metadata
        row = {"id": md.get("source_id", example.id), "conversations": conv,
               "category": md.get("category") or md.get("domain"), "subcategory": md.get("subcategory"),
               "task": md.get("task")}
        extra = {k: md[k] for k in ("domain", "multi_turn_kind", "scenario", "row_kind") if md.get(k)}
        if extra:
            row["metadata"] = extra
        return row
