"""The canonical function-calling schema every converter produces and every stage reads.

An :class:`Example` is a conversation context (``messages``), the tools offered (OpenAI function format
with JSON Schema parameters), the expected assistant output of the scored turn, and metadata. The
expected output is one of three kinds:

* ``tool_calls``: one or more calls (name + arguments object);
* ``json``: one JSON object satisfying ``json_schema`` (structured-output / json-mode rows);
* ``no_call``: the model must not call a tool (irrelevant request or a needed clarification); ``text``
  may hold a reference answer.

Examples round-trip losslessly through JSON lines (:func:`Example.to_dict` / :func:`Example.from_dict`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from fctune.errors import UserError

ROLES = ("system", "user", "assistant", "tool")
EXPECTED_KINDS = ("tool_calls", "json", "no_call")


class SchemaError(UserError, ValueError):
    """A record does not fit the canonical schema; the message names the field."""


def _typed(d: dict, key: str, types: tuple, where: str, default=None):
    """``d[key]`` when it is one of ``types`` (None or absent: ``default``); else a SchemaError naming the field: a
    value of another type would fail much later, as a TypeError far from the file that held it."""
    value = d.get(key)
    if value is None:
        return default
    if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
        raise SchemaError(f"{where}.{key}: expected {' or '.join(_TYPE_NAMES.get(t, t.__name__) for t in types)}, "
                          f"got {_TYPE_NAMES.get(type(value), type(value).__name__)}")
    return value


_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
               bool: "true/false"}


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "arguments": self.arguments}
        if self.id is not None:
            d["id"] = self.id
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "tool_call") -> ToolCall:
        if not isinstance(d, dict):
            raise SchemaError(f"{where}: expected an object, got {type(d).__name__}")
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{where}.name: missing or not a string")
        args = d.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as e:
                raise SchemaError(f"{where}.arguments: not valid JSON ({e})") from None
        if not isinstance(args, dict):
            raise SchemaError(f"{where}.arguments: expected an object, got {type(args).__name__}")
        return cls(name=name, arguments=args, id=_typed(d, "id", (str, int), where))


@dataclass
class ToolSpec:
    """A tool in OpenAI function format: name, description and JSON Schema ``parameters``."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @classmethod
    def from_openai(cls, d: dict, where: str = "tool") -> ToolSpec:
        if not isinstance(d, dict):
            raise SchemaError(f"{where}: expected an object, got {type(d).__name__}")
        fn = d.get("function", d) if d.get("type", "function") == "function" else None
        if not isinstance(fn, dict):
            raise SchemaError(f"{where}: unsupported tool type {d.get('type')!r}")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{where}.function.name: missing or not a string")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise SchemaError(f"{where}.function.parameters: expected a JSON Schema object")
        _typed(params, "properties", (dict,), f"{where}.function.parameters")
        required = _typed(params, "required", (list,), f"{where}.function.parameters", [])
        if any(not isinstance(r, str) for r in required):
            raise SchemaError(f"{where}.function.parameters.required: expected a list of parameter names")
        return cls(name=name, description=_typed(fn, "description", (str,), f"{where}.function", ""),
                   parameters=params)

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required") or [])

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.parameters.get("properties") or {})


@dataclass
class Message:
    role: str
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None  # for tool messages: the tool that produced the content

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            d["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            d["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            d["name"] = self.name
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "message") -> Message:
        if not isinstance(d, dict):
            raise SchemaError(f"{where}: expected an object, got {type(d).__name__}")
        role = d.get("role")
        if role not in ROLES:
            raise SchemaError(f"{where}.role: {role!r} is not one of {ROLES}")
        content = d.get("content")
        if content is not None and not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        calls = d.get("tool_calls")
        tool_calls = None
        if calls is not None and not isinstance(calls, list):
            raise SchemaError(f"{where}.tool_calls: expected a list, got {type(calls).__name__}")
        if calls:
            if role != "assistant":
                raise SchemaError(f"{where}.tool_calls: only assistant messages carry tool calls")
            tool_calls = [
                ToolCall.from_dict(_unwrap_openai_call(c), f"{where}.tool_calls[{i}]") for i, c in enumerate(calls)
            ]
        return cls(role=role, content=content, tool_calls=tool_calls,
                   tool_call_id=_typed(d, "tool_call_id", (str,), where), name=_typed(d, "name", (str,), where))


def _unwrap_openai_call(c: Any) -> Any:
    """OpenAI puts name/arguments under ``function``; accept both that and the flat form."""
    if isinstance(c, dict) and isinstance(c.get("function"), dict):
        fn = c["function"]
        return {"name": fn.get("name"), "arguments": fn.get("arguments", {}), "id": c.get("id")}
    return c


def check_json_schema(schema: Any, where: str) -> None:
    """A JSON Schema that scoring can validate against (checked when data is read, not when a model is scored):
    valid under Draft 2020-12, and every ``$ref`` local and resolvable, since scoring never fetches one (a remote ref
    would make scoring reach the network; a dangling one would fail on the first answer)."""
    if not isinstance(schema, dict):
        raise SchemaError(f"{where}: expected a JSON Schema object, got {type(schema).__name__}")
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        path = "/".join(map(str, e.absolute_path))
        raise SchemaError(f"{where}{'/' + path if path else ''}: not a valid JSON Schema ({e.message[:160]})") \
            from None
    for path, ref in _refs(schema, ""):
        why = _unresolved(schema, ref)
        if why:
            raise SchemaError(f"{where}{path}/$ref: {ref!r} {why}")


def _refs(node: Any, path: str):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield path, node["$ref"]
        for k, v in node.items():
            yield from _refs(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _refs(v, f"{path}/{i}")


def _unresolved(schema: dict, ref: str) -> str | None:
    """Why ``ref`` cannot be resolved inside ``schema`` alone, or None."""
    from urllib.parse import unquote

    if not ref.startswith("#"):
        return "points outside the schema: only local refs (#/...) are resolved, nothing is fetched"
    frag = unquote(ref[1:])
    if not frag.startswith("/") and frag:  # a plain-name fragment: an $anchor somewhere in the schema
        found = any(isinstance(n, dict) and n.get("$anchor") == frag for n in _nodes(schema))
        return None if found else f"names no $anchor {frag!r} in the schema"
    node: Any = schema
    for part in frag.split("/")[1:] if frag else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return f"does not resolve: no {part!r} in the schema"
    return None


def _nodes(node: Any):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for v in children:
        yield from _nodes(v)


def json_schema_validator(schema: dict):
    """The validator scoring uses: Draft 2020-12 with formats, and a registry that retrieves nothing, so a ref no
    check caught is an unresolvable ref, never a request to its URL."""
    import jsonschema
    from referencing import Registry
    from referencing.exceptions import NoSuchResource

    def refuse(uri: str):
        raise NoSuchResource(ref=uri)

    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker(),
                                           registry=Registry(retrieve=refuse))


@dataclass
class Expected:
    kind: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    json: Any = None
    json_schema: dict | None = None
    text: str | None = None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "tool_calls":
            d["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.kind == "json":
            d["json"] = self.json
            d["json_schema"] = self.json_schema
        if self.text is not None:
            d["text"] = self.text
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "expected") -> Expected:
        if not isinstance(d, dict):
            raise SchemaError(f"{where}: expected an object")
        kind = d.get("kind")
        if kind not in EXPECTED_KINDS:
            raise SchemaError(f"{where}.kind: {kind!r} is not one of {EXPECTED_KINDS}")
        calls = [ToolCall.from_dict(c, f"{where}.tool_calls[{i}]")
                 for i, c in enumerate(_typed(d, "tool_calls", (list,), where, []))]
        if kind == "tool_calls" and not calls:
            raise SchemaError(f"{where}.tool_calls: kind 'tool_calls' needs at least one call")
        schema = d.get("json_schema")
        if kind == "json" and schema is not None:
            check_json_schema(schema, f"{where}.json_schema")
        elif schema is not None:
            _typed(d, "json_schema", (dict,), where)
        return cls(kind=kind, tool_calls=calls, json=d.get("json"), json_schema=schema,
                   text=_typed(d, "text", (str,), where))


@dataclass
class Example:
    id: str
    messages: list[Message]
    tools: list[ToolSpec]
    expected: Expected
    metadata: dict[str, Any] = field(default_factory=dict)

    # -- derived views -------------------------------------------------------------------------------
    @property
    def tool_names(self) -> list[str]:
        return [t.name for t in self.tools]

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    @property
    def last_user_text(self) -> str:
        return next((m.content or "" for m in reversed(self.messages) if m.role == "user"), "")

    def target_message(self) -> Message:
        """The expected scored turn as an assistant message (what training teaches)."""
        e = self.expected
        if e.kind == "tool_calls":
            return Message("assistant", None, tool_calls=[copy.deepcopy(c) for c in e.tool_calls])
        if e.kind == "json":
            return Message("assistant", json.dumps(e.json, ensure_ascii=False))
        return Message("assistant", e.text or "")

    # -- serialization -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "messages": [m.to_dict() for m in self.messages],
            "tools": [t.to_openai() for t in self.tools],
            "expected": self.expected.to_dict(),
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "example") -> Example:
        if not isinstance(d, dict):
            raise SchemaError(f"{where}: expected an object, got {type(d).__name__}")
        ex_id = d.get("id")
        if not isinstance(ex_id, str) or not ex_id:
            raise SchemaError(f"{where}.id: missing or not a string")
        msgs = d.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise SchemaError(f"{where}.messages: missing or empty")
        tools = d.get("tools") or []
        if not isinstance(tools, list):
            raise SchemaError(f"{where}.tools: expected a list")
        if "expected" not in d:
            raise SchemaError(f"{where}.expected: missing")
        if d.get("metadata") is not None and not isinstance(d["metadata"], dict):
            raise SchemaError(f"{where}.metadata: expected an object, got {type(d['metadata']).__name__}")
        return cls(
            id=ex_id,
            messages=[Message.from_dict(m, f"{where}.messages[{i}]") for i, m in enumerate(msgs)],
            tools=[ToolSpec.from_openai(t, f"{where}.tools[{i}]") for i, t in enumerate(tools)],
            expected=Expected.from_dict(d["expected"], f"{where}.expected"),
            metadata=dict(d.get("metadata") or {}),
        )


def read_examples(path) -> list[Example]:
    """Read canonical examples from JSONL; errors name the file, the line and the field."""
    from fctune.io import iter_jsonl

    out, seen = [], {}
    for lineno, row in iter_jsonl(path):
        try:
            e = Example.from_dict(row, where="example")
        except SchemaError as err:
            raise SchemaError(f"{path}:{lineno}: {err}") from None
        if e.id in seen:  # answers are matched to rows by id: one answer would be scored against both rows
            raise SchemaError(f"{path}:{lineno}: field 'id': {e.id!r} is also the id of line {seen[e.id]}; ids "
                              "must be unique in a split")
        seen[e.id] = lineno
        out.append(e)
    return out


def write_examples(path, examples) -> None:
    from fctune.io import write_jsonl_atomic

    write_jsonl_atomic(path, (e.to_dict() for e in examples))
