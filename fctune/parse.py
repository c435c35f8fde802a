"""Turn raw model output into tool calls or a JSON object. Pure functions; model text is never executed.

Shapes understood by :func:`parse_tool_calls`, tried in this order:

1. OpenAI ``tool_calls`` (arguments as a JSON string or object), when the backend returned them;
2. tagged calls: Hermes ``<tool_call>...</tool_call>`` (one or several; the last may be unclosed at
   the end of generation), Phi ``<|tool_call|>...<|/tool_call|>``, ``<functioncall>``, ``[TOOL_CALLS]``,
   Llama ``<|python_tag|>``; each body holds a JSON or Python-literal dict, or a list of them;
3. JSON inside ``` fences, then a bare JSON object or list anywhere in the text (prose around it ok);
4. Python call syntax, ``f(a=1, b="x")`` or ``[f(...), g(...)]`` (BFCL style), read with ``ast.parse``.

A call object may be ``{"name", "arguments"}``, ``{"name", "parameters"}``, ``{"function": {...}}``, or
``{"tool_calls": [...]}``; with ``tool_names`` given, also ``{"<tool name>": {args}}``. Text is read
with ``json.loads`` first, then with an ``ast`` literal reader that accepts Python literals and
JSON's ``true``/``false``/``null``; nothing is evaluated.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from fctune.schema import ToolCall

_NAMED_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class LiteralError(ValueError):
    pass


def _literal(node: ast.AST) -> Any:
    """Value of a literal expression tree: constants, containers, unary minus, true/false/null names."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMED_CONSTANTS:
        return _NAMED_CONSTANTS[node.id]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise LiteralError("dict unpacking is not a literal")
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
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
    """JSON first; then a Python literal (single quotes, True/None, tuples). Raises ValueError."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return _literal(ast.parse(text, mode="eval").body)
    except (SyntaxError, LiteralError, ValueError, RecursionError) as e:
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
def iter_json_spans(text: str):
    """Yield ``(start, end)`` of balanced ``{...}`` / ``[...]`` spans, skipping brackets inside strings."""
    i, n = 0, len(text)
    while i < n:
        if text[i] in "{[":
            end = _match_bracket(text, i)
            if end is not None:
                yield i, end
                i = end
                continue
        i += 1


def _match_bracket(text: str, start: int) -> int | None:
    pairs = {"{": "}", "[": "]"}
    stack = [pairs[text[start]]]
    quote = None
    i = start + 1
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in pairs:
            stack.append(pairs[c])
        elif c in "}]":
            if not stack or c != stack[-1]:
                return None
            stack.pop()
            if not stack:
                return i + 1
        i += 1
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
            span = chunk[s:e]
            try:
                v = json.loads(span)
                if isinstance(v, want):
                    return v, True
            except json.JSONDecodeError:
                if strict:
                    continue
                try:
                    v = loads_lenient(span)
                except ValueError:
                    continue
                if isinstance(v, want):
                    return _tupless(v), False
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
    try:
        tree = ast.parse(s, mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
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
_TAGS = [
    ("hermes_tags", re.compile(r"<tool_call>(.*?)(?:</tool_call>|(?=<tool_call>)|\Z)", re.S)),
    ("phi_tags", re.compile(r"<\|tool_call\|>(.*?)(?:<\|/tool_call\|>|\Z)", re.S)),
    ("functioncall_tag", re.compile(r"<functioncall>(.*?)(?:</functioncall>|<\|endoftext\|>|\Z)", re.S)),
    ("mistral_tag", re.compile(r"\[TOOL_CALLS\](.*?)(?:</s>|\Z)", re.S)),
    ("python_tag", re.compile(r"<\|python_tag\|>(.*?)(?:<\|eom_id\|>|<\|eot_id\|>|\Z)", re.S)),
]
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)


@dataclass
class ParsedCalls:
    calls: list[ToolCall] = field(default_factory=list)
    valid_json: bool = False  # the output held parseable JSON or call syntax
    shape: str = "none"
    errors: list[str] = field(default_factory=list)


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
    """Every tool call in a model's output, whatever shape it was written in (see module doc)."""
    if tool_calls:
        res = ParsedCalls(shape="openai_tool_calls", valid_json=True)
        for i, c in enumerate(tool_calls):
            try:
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


def parse_json_output(output: str | None) -> ParsedJson:
    """The first JSON object in a structured-output answer (fences and surrounding prose allowed)."""
    value, strict = first_json_value(output or "", want=(dict,))
    if value is None:
        return ParsedJson()
    return ParsedJson(value=value, found=True, strict_json=strict)
