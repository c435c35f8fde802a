"""Turn raw model output into tool calls or a JSON object. Pure functions; model text is never executed.

Shapes understood by :func:`parse_tool_calls`, tried in this order:

1. OpenAI ``tool_calls`` (arguments as a JSON string or object), when the backend returned them;
2. tagged calls: Hermes ``<tool_call>...</tool_call>`` (one or several; the last may be unclosed at
   the end of generation), Phi ``<|tool_call|>...<|/tool_call|>``, ``<functioncall>``, ``[TOOL_CALLS]``,
   Llama ``<|python_tag|>``; each body holds a JSON or Python-literal dict, or a list of them;
3. JSON inside ``` fences, then a bare JSON object or list anywhere in the text (prose around it ok);
4. Python call syntax, ``f(a=1, b="x")`` or ``[f(...), g(...)]`` (BFCL style), read with ``ast.parse``.

Two readings of one output (both reported; the verdict uses the strict one for every model alike):
*lenient* reads any recoverable call (all of the above); *strict* reads only calls written in the model's
declared call format (:func:`declared_call_format`: the shapes its prompt or chat template asks for), as a
leaderboard's model-specific decoder does. :func:`in_declared_format` tells them apart from the parse shape.

A call object may be ``{"name", "arguments"}``, ``{"name", "parameters"}``, ``{"function": {...}}``, or
``{"tool_calls": [...]}``; with ``tool_names`` given, also ``{"<tool name>": {args}}``. Text is read
with ``json.loads`` first, then with an ``ast`` literal reader that accepts Python literals and
JSON's ``true``/``false``/``null``; nothing is evaluated.

Model text is adversarial input, so every reading is bounded and scanning is linear in the text's length:
an output longer than :data:`MAX_OUTPUT_CHARS`, or with more than :data:`MAX_CALLS` calls, is read as
``too_large``; a value nested deeper than :data:`MAX_DEPTH` (brackets or chained unary operators) is not
a value (``invalid_json``); Python's parser only ever sees texts of at most :data:`MAX_LITERAL_CHARS`
characters (its memory grows ~500 bytes per character). No output makes these functions raise.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from fctune.schema import ToolCall

# Bounds on what is read from one output (see the module doc). A legitimate answer is far inside each: BFCL's
# largest expected answer has 9 calls and nesting depth 6; 512 generated tokens are about 2,000 characters.
MAX_OUTPUT_CHARS = 100_000
MAX_CALLS = 64
MAX_DEPTH = 64
MAX_LITERAL_CHARS = 20_000

_NAMED_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class LiteralError(ValueError):
    pass


class TooLarge(ValueError):
    """A text over one of the module's bounds: read as a ``too_large`` verdict, never parsed."""


def _after_string(text: str, i: int) -> int:
    """Index just past the string whose quote is at ``text[i]`` (backslash escapes skipped), or ``len(text)``."""
    quote, i, n = text[i], i + 1, len(text)
    while i < n:
        if text[i] == "\\":
            i += 2
        elif text[i] == quote:
            return i + 1
        else:
            i += 1
    return n


def nesting_depth(text: str) -> int:
    """Deepest nesting of ``{[(`` outside quoted strings, counting a run of unary ``+ - ~`` as that many levels
    (Python's parser recurses on both). One linear pass; an upper bound on what ``json``/``ast`` would recurse."""
    depth = deepest = run = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            i, run = _after_string(text, i), 0
            continue
        if c in "{[(":
            depth += 1
            deepest = max(deepest, depth + run)
        elif c in "}])":
            depth = max(0, depth - 1)
            run = 0
        elif c in "+-~":
            run += 1
            deepest = max(deepest, depth + run)
        elif not c.isspace():
            run = 0
        i += 1
    return deepest


def value_depth(value: Any) -> int:
    """Nesting depth of a parsed value (containers only), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, (list, tuple)):
            deepest = max(deepest, d)
            if d <= MAX_DEPTH:  # deeper than the bound is all a caller needs to know
                stack.extend((x, d + 1) for x in v)
    return deepest


def _ast_parse(text: str) -> ast.AST:
    """Python's parser on model text, quietly: its warnings about odd escapes in a string say nothing here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text, mode="eval").body


def _check_bounds(text: str, limit: int = MAX_OUTPUT_CHARS) -> None:
    if len(text) > limit:
        raise TooLarge(f"{len(text):,} characters, over the {limit:,} this reader parses")
    d = nesting_depth(text)
    if d > MAX_DEPTH:
        raise ValueError(f"nested {d} levels deep, over the {MAX_DEPTH} this reader parses")


def _literal(node: ast.AST) -> Any:
    """Value of a literal expression tree: constants, containers, unary minus, true/false/null names."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMED_CONSTANTS:
        return _NAMED_CONSTANTS[node.id]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise LiteralError("dict unpacking is not a literal")
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, (ast.List, ast.Set)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    raise LiteralError(f"not a literal: {type(node).__name__}")


def loads_lenient(text: str) -> Any:
    """JSON first; then a Python literal (single quotes, True/None, tuples). Raises ValueError (``TooLarge`` for a
    text over the bounds) and nothing else, whatever the text."""
    return _load_value(text)[0]


def _load_value(text: str, allow_literal: bool = True) -> tuple[Any, bool]:
    """``(value, parsed_as_json)`` of a text within the bounds; ValueError otherwise."""
    text = text.strip()
    _check_bounds(text)
    try:
        return json.loads(text), True
    except (json.JSONDecodeError, RecursionError) as e:
        if not allow_literal:
            raise ValueError(f"not JSON: {e}") from None
    if len(text) > MAX_LITERAL_CHARS:
        raise TooLarge(f"not JSON, and {len(text):,} characters is over the {MAX_LITERAL_CHARS:,} read as a Python "
                       "literal")
    try:
        return _literal(_ast_parse(text)), False
    # MemoryError too: CPython's parser reports some inputs it cannot build that way, not as SyntaxError
    except (SyntaxError, LiteralError, ValueError, RecursionError, MemoryError) as e:
        raise ValueError(f"neither JSON nor a Python literal: {e}") from None


def _tupless(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_tupless(x) for x in v]
    if isinstance(v, list):
        return [_tupless(x) for x in v]
    if isinstance(v, dict):
        return {k: _tupless(x) for k, x in v.items()}
    return v


# -- balanced JSON spans in free text ------------------------------------------------------------------
_CLOSER = {"{": "}", "[": "]"}


def iter_json_spans(text: str):
    """Yield ``(start, end)`` of balanced ``{...}`` / ``[...]`` spans, skipping brackets inside strings.

    Each opening bracket is matched as if scanning began there (quotes before it do not matter). The scan is
    linear: an opener met inside another's scan gets its answer memoised (its end, or None when it cannot
    close), and a later scan that meets it jumps over it, so no stretch of text is read more than a few times.
    """
    memo: dict[int, int | None] = {}
    i, n = 0, len(text)
    while i < n:
        if text[i] in _CLOSER:
            end = memo[i] if i in memo else _match_bracket(text, i, memo)
            if end is not None:
                yield i, end
                i = end
                continue
        i += 1


def _match_bracket(text: str, start: int, memo: dict[int, int | None]) -> int | None:
    """End of the span opened at ``start`` (or None), memoising the answer for every opener met on the way."""
    stack = [start]       # positions of the open brackets
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            i = _after_string(text, i)
            continue
        if c in _CLOSER:
            if i in memo:  # scanned before from outside a string, as now: its content reads the same
                if memo[i] is None:
                    break
                i = memo[i]
                continue
            stack.append(i)
        elif c in "}]":
            if c != _CLOSER[text[stack[-1]]]:
                break
            memo[stack.pop()] = i + 1
            if not stack:
                return i + 1
        i += 1
    for pos in stack:  # a mismatch or the end of the text: every bracket still open fails the same way
        memo[pos] = None
    return None


def first_json_value(text: str, want=(dict,), strict: bool = False) -> tuple[Any, bool]:
    """First JSON (or, unless strict, Python-literal) value of a wanted type in text.

    Returns ``(value, strict_json)``; ``(None, False)`` when there is none. Looks inside ``` fences first.
    """
    if not text:
        return None, False
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        for s, e in iter_json_spans(chunk):
            try:
                v, is_json = _load_value(chunk[s:e], allow_literal=not strict)
            except ValueError:
                continue
            if isinstance(v, want):
                return (v if is_json else _tupless(v)), is_json
    return None, False


# -- call objects ---------------------------------------------------------------------------------------
def call_from_object(obj: Any, tool_names=None) -> list[ToolCall] | None:
    """Calls described by one parsed object, or None when it is not a call shape."""
    if isinstance(obj, list):
        calls: list[ToolCall] = []
        for item in obj:
            c = call_from_object(item, tool_names)
            if c is None:
                return None
            calls.extend(c)
        return calls if obj else None
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("tool_calls"), list):
        return call_from_object(obj["tool_calls"], tool_names)
    fn = obj.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return [_make_call(fn["name"], fn.get("arguments", fn.get("parameters", {})), obj.get("id"))]
    name = obj.get("name")
    if not isinstance(name, str) and isinstance(fn, str):
        name = fn
    if isinstance(name, str) and name:
        args = obj.get("arguments", obj.get("parameters", obj.get("args", {})))
        return [_make_call(name, args, obj.get("id"))]
    if tool_names and len(obj) == 1:
        (k, v), = obj.items()
        if k in set(tool_names) and isinstance(v, dict):
            return [_make_call(k, v, None)]
    return None


def _make_call(name: str, args: Any, call_id) -> ToolCall:
    if isinstance(args, str):
        s = args.strip()
        if s:
            try:
                args = loads_lenient(s)
            except ValueError:
                raise ValueError(f"arguments of {name!r} are not valid JSON") from None
        else:
            args = {}
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ValueError(f"arguments of {name!r} are not an object")
    return ToolCall(name=name, arguments=_tupless(args), id=call_id)


# -- python call syntax ---------------------------------------------------------------------------------
def _dotted_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def parse_python_calls(text: str) -> list[ToolCall] | None:
    """``f(a=1)`` or ``[f(a=1), g(b="x")]`` -> calls; None when the text is not only call syntax."""
    s = text.strip().rstrip(";").strip()
    if not s or "(" not in s:
        return None
    if len(s) > MAX_LITERAL_CHARS or nesting_depth(s) > MAX_DEPTH:
        return None  # what Python's parser would need too much memory or recursion for is not read as calls
    try:
        tree = _ast_parse(s)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call):
            return None
        name = _dotted_name(node.func)
        if not name or node.args:
            return None
        args = {}
        for kw in node.keywords:
            if kw.arg is None:
                return None
            try:
                args[kw.arg] = _tupless(_literal(kw.value))
            except LiteralError:
                return None
        calls.append(ToolCall(name=name, arguments=args))
    return calls or None


# -- the main entry point -------------------------------------------------------------------------------
# The tags each call shape is written with (opening, closing): what fctune.tool_tokens checks in a tokenizer.
CALL_TAGS = {
    "hermes_tags": ("<tool_call>", "</tool_call>"),
    "phi_tags": ("<|tool_call|>", "<|/tool_call|>"),
    "functioncall_tag": ("<functioncall>", "</functioncall>"),
    "mistral_tag": ("[TOOL_CALLS]",),
    "python_tag": ("<|python_tag|>",),
}
# every shape a call is parsed in: what a declared call format may name ("any": the strict reading reads like lenient)
CALL_SHAPES = (*CALL_TAGS, "openai_tool_calls", "fenced_json", "bare_json", "python_call")


def call_format_from_flag(text: str, flag: str = "--call-format") -> list[str]:
    """A comma-separated call format as a list, every name checked: an unknown one would silently zero the strict
    score (no call would ever be in the declared format)."""
    from fctune.errors import UserError

    names = [f.strip() for f in text.split(",") if f.strip()]
    bad = [n for n in names if n not in (*CALL_SHAPES, "any")]
    if bad or not names:
        raise UserError(f"{flag} {text!r}: {'unknown shape ' + ', '.join(map(repr, bad)) if bad else 'empty'}; "
                        f"known: {', '.join(CALL_SHAPES)} or any")
    return names


# what else ends a tagged call: an unclosed Hermes call ends where the next opens; end-of-turn tokens
_TAG_ENDS = {"hermes_tags": [r"(?=<tool_call>)"], "functioncall_tag": [re.escape("<|endoftext|>")],
             "mistral_tag": [re.escape("</s>")], "python_tag": [re.escape("<|eom_id|>"), re.escape("<|eot_id|>")]}
_TAGS = [(shape, re.compile(re.escape(tags[0]) + "(.*?)(?:"
                            + "|".join([re.escape(t) for t in tags[1:]] + _TAG_ENDS.get(shape, []) + [r"\Z"]) + ")",
                            re.S))
         for shape, tags in CALL_TAGS.items()]
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)


@dataclass
class ParsedCalls:
    calls: list[ToolCall] = field(default_factory=list)
    valid_json: bool = False  # the output held parseable JSON or call syntax
    shape: str = "none"
    errors: list[str] = field(default_factory=list)
    too_large: bool = False   # over MAX_OUTPUT_CHARS or MAX_CALLS: not read (calls empty)


def _too_large(why: str) -> ParsedCalls:
    return ParsedCalls(shape="too_large", errors=[why], too_large=True)


def _calls_from_body(body: str, tool_names) -> tuple[list[ToolCall], list[str], bool]:
    """Calls in one tag body: one object, a list, or several objects one after another."""
    errors, calls, parsed_any = [], [], False
    body = body.strip()
    if not body:
        return [], ["empty tool-call tag"], False
    try:
        obj = loads_lenient(body)
        objs = [obj]
    except ValueError:
        spans = list(iter_json_spans(body))
        if not spans:
            pc = parse_python_calls(body)
            if pc:
                return pc, [], True
            return [], [f"unparseable tool call: {body[:80]!r}"], False
        objs = []
        for s, e in spans:
            try:
                objs.append(loads_lenient(body[s:e]))
            except ValueError:
                errors.append(f"unparseable tool call: {body[s:e][:80]!r}")
    for obj in objs:
        parsed_any = True
        try:
            c = call_from_object(obj, tool_names)
        except ValueError as e:
            errors.append(str(e))
            continue
        if c is None:
            errors.append("JSON in a tool-call tag is not a call object")
        else:
            calls.extend(c)
    return calls, errors, parsed_any


def parse_tool_calls(output: str | None, tool_calls: list | None = None, tool_names=None) -> ParsedCalls:
    """Every tool call in a model's output, whatever shape it was written in (see module doc). Never raises;
    an output over the bounds comes back with ``too_large`` set and no calls."""
    if output is not None and not isinstance(output, str):
        return ParsedCalls(errors=[f"the output is a {type(output).__name__}, not text"])
    if output and len(output) > MAX_OUTPUT_CHARS:
        return _too_large(f"output of {len(output):,} characters, over the {MAX_OUTPUT_CHARS:,} read")
    if tool_calls is not None and not isinstance(tool_calls, list):
        return ParsedCalls(errors=[f"tool_calls is a {type(tool_calls).__name__}, not a list"])
    res = _parse_tool_calls(output, tool_calls, tool_names)
    if len(res.calls) > MAX_CALLS:
        return _too_large(f"{len(res.calls)} calls, over the {MAX_CALLS} read from one output")
    return res


def _parse_tool_calls(output: str | None, tool_calls: list | None, tool_names) -> ParsedCalls:
    if tool_calls:
        if len(tool_calls) > MAX_CALLS:
            return _too_large(f"{len(tool_calls)} tool_calls, over the {MAX_CALLS} read from one output")
        res = ParsedCalls(shape="openai_tool_calls", valid_json=True)
        for i, c in enumerate(tool_calls):
            try:
                if value_depth(c) > MAX_DEPTH:  # read from a file, not from text: depth checked on the value
                    raise ValueError(f"nested deeper than the {MAX_DEPTH} levels read")
                got = call_from_object(c, tool_names)
            except ValueError as e:
                res.errors.append(f"tool_calls[{i}]: {e}")
                res.valid_json = False
                continue
            if got is None:
                res.errors.append(f"tool_calls[{i}]: not a call object")
                res.valid_json = False
            else:
                res.calls.extend(got)
        return res
    text = output or ""
    for shape, pat in _TAGS:
        bodies = [m.group(1) for m in pat.finditer(text)]
        if not bodies:
            continue
        res = ParsedCalls(shape=shape)
        for body in bodies:
            calls, errors, parsed_any = _calls_from_body(body, tool_names)
            res.calls.extend(calls)
            res.errors.extend(errors)
            res.valid_json = res.valid_json or parsed_any
        return res
    for chunk, shape in [(m.group(1), "fenced_json") for m in _FENCE.finditer(text)] + [(text, "bare_json")]:
        found_json = False
        for s, e in iter_json_spans(chunk):
            try:
                obj = loads_lenient(chunk[s:e])
            except ValueError:
                continue
            found_json = True
            try:
                calls = call_from_object(obj, tool_names)
            except ValueError as err:
                return ParsedCalls(shape=shape, valid_json=True, errors=[str(err)])
            if calls:
                return ParsedCalls(calls=calls, valid_json=True, shape=shape)
        pc = parse_python_calls(chunk)
        if pc:
            return ParsedCalls(calls=pc, valid_json=True, shape="python_call")
        if found_json:
            return ParsedCalls(valid_json=True, shape=shape, errors=["JSON found but no call object in it"])
    return ParsedCalls()


@dataclass
class ParsedJson:
    value: Any = None
    found: bool = False  # a JSON object was found and parsed
    strict_json: bool = False  # it parsed with json.loads (not only as a Python literal)
    too_large: bool = False  # the output is over MAX_OUTPUT_CHARS: not read


def parse_json_output(output: str | None) -> ParsedJson:
    """The first JSON object in a structured-output answer (fences and surrounding prose allowed). Never raises."""
    if not isinstance(output, str):
        return ParsedJson()
    if len(output) > MAX_OUTPUT_CHARS:
        return ParsedJson(too_large=True)
    value, strict = first_json_value(output, want=(dict,))
    if value is None:
        return ParsedJson()
    return ParsedJson(value=value, found=True, strict_json=strict)


# -- the declared call format (the strict reading) -----------------------------------------------------------
# chat-template marker -> the parse shapes that template's model writes calls in
_TEMPLATE_CALL_FORMATS = [
    ("<tool_call>", ["hermes_tags"]),                  # Qwen2.5, Hermes, SmolLM3 ...
    ("<|tool_call|>", ["phi_tags"]),                   # Phi-4-mini
    ("[TOOL_CALLS]", ["mistral_tag"]),                 # Mistral
    ("<|python_tag|>", ["bare_json", "python_tag"]),   # Llama 3.1: a JSON object {"name", "parameters"} as the turn
]


def declared_call_format(renderer) -> list[str]:
    """The shapes a model's calls are read from in the strict reading, given the prompt renderer that prompts it:
    the Hermes prompt asks for ``<tool_call>`` tags; a native template's own markers name its format; a template
    that names none leaves the reading lenient (``["any"]``, recorded as such)."""
    if renderer is None:
        return ["any"]
    if renderer.mode == "hermes":
        return ["hermes_tags"]
    template = getattr(renderer.tokenizer, "chat_template", None) or ""
    for marker, shapes in _TEMPLATE_CALL_FORMATS:
        if marker in template:
            return shapes
    return ["any"]


def in_declared_format(shape: str | None, call_format: list[str] | None) -> bool:
    """Whether calls parsed in ``shape`` count in the strict reading (no calls at all always "count")."""
    return (not call_format or "any" in call_format or shape in (None, "none", "too_large")
            or shape in call_format)


def rename_calls(parsed: ParsedCalls, renamed: dict | None) -> ParsedCalls:
    """Calls with API-safe tool names (``math_hcf``) mapped back to the tools' own (``math.hcf``), in every shape."""
    if renamed:
        for c in parsed.calls:
            c.name = renamed.get(c.name, c.name)
    return parsed
