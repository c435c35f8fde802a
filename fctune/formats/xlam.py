"""Salesforce xLAM function-calling 60k (``Salesforce/xlam-function-calling-60k``) <-> canonical examples.

Rows hold ``query`` (text) and ``tools`` / ``answers`` as JSON strings. xLAM describes parameters as
``{"p": {"type": "str", "description": ..., "default": ...}}`` with Python-ish type names (``str``,
``int``, ``List[int]``, ``Dict[str, Any]``, ``str, optional``). They map to JSON Schema as follows:
``str``->string, ``int``->integer, ``float``->number, ``bool``->boolean, ``List[X]``/``Set[X]``/
``Tuple[..]``->array (items from X), ``Dict[..]``/``dict``->object, ``Any``->no type,
``Union[A, B]``->anyOf. A parameter is **optional** when its type says ``optional`` (``str, optional``,
``Optional[str]``) or when it has a ``default``; otherwise it is required. The original type string is
kept as ``x-xlam-type`` so rows convert back unchanged. An empty ``answers`` list means "no call".
"""

from __future__ import annotations

import json
import re

from fctune.formats.common import RowError, check_calls_offered, finalize
from fctune.schema import Example, Expected, Message, ToolCall, ToolSpec

HUB_ID = "Salesforce/xlam-function-calling-60k"

_SCALARS = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
            "number": "number", "double": "number", "bool": "boolean", "boolean": "boolean"}
_BACK = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "object": "dict"}


def _split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def xlam_type_to_schema(type_str: str) -> tuple[dict, bool]:
    """(JSON Schema, optional) for an xLAM type string."""
    t = (type_str or "").strip()
    optional = False
    if re.search(r",\s*optional\s*$", t, re.I):
        optional, t = True, re.sub(r",\s*optional\s*$", "", t, flags=re.I).strip()
    m = re.fullmatch(r"(?i)optional\[(.*)\]", t)
    if m:
        optional, t = True, m.group(1).strip()
    return _type_schema(t), optional


def _type_schema(t: str) -> dict:
    low = t.lower()
    if low in _SCALARS:
        return {"type": _SCALARS[low]}
    if low in ("any", ""):
        return {}
    if low in ("list", "array", "tuple", "set"):
        return {"type": "array"}
    if low in ("dict", "object", "mapping"):
        return {"type": "object"}
    m = re.fullmatch(r"(?i)(list|set|tuple|sequence|iterable)\[(.*)\]", t)
    if m:
        inner = _split_top(m.group(2))
        schema: dict = {"type": "array"}
        if len(inner) == 1 or (len(inner) == 2 and inner[1] == "..."):
            item = _type_schema(inner[0])
            if item:
                schema["items"] = item
        if m.group(1).lower() == "set":
            schema["uniqueItems"] = True
        return schema
    m = re.fullmatch(r"(?i)(dict|mapping)\[(.*)\]", t)
    if m:
        parts = _split_top(m.group(2))
        schema = {"type": "object"}
        if len(parts) == 2:
            val = _type_schema(parts[1])
            if val:
                schema["additionalProperties"] = val
        return schema
    m = re.fullmatch(r"(?i)union\[(.*)\]", t)
    if m:
        return {"anyOf": [_type_schema(p) or {} for p in _split_top(m.group(1))]}
    return {}


def schema_to_xlam_type(schema: dict) -> str:
    if "x-xlam-type" in schema:
        return schema["x-xlam-type"]
    t = schema.get("type")
    if t == "array":
        items = schema.get("items")
        return f"List[{schema_to_xlam_type(items)}]" if items else "List"
    if t == "object":
        return "Dict[str, Any]" if "additionalProperties" not in schema else \
            f"Dict[str, {schema_to_xlam_type(schema['additionalProperties'])}]"
    return _BACK.get(t, "Any")


def xlam_tool_to_spec(tool: dict, where: str) -> ToolSpec:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise RowError("bad_shape", f"{where}: a tool without a name")
    params = tool.get("parameters") or {}
    if isinstance(params, dict) and params.get("type") == "object" and "properties" in params:
        return ToolSpec(tool["name"], tool.get("description", ""), params)  # already JSON Schema
    if not isinstance(params, dict):
        raise RowError("bad_shape", f"{where}.parameters: expected an object")
    props, required = {}, []
    for pname, p in params.items():
        if not isinstance(p, dict):
            raise RowError("bad_shape", f"{where}.parameters.{pname}: expected an object")
        schema, optional = xlam_type_to_schema(str(p.get("type", "")))
        schema = dict(schema)
        if p.get("description"):
            schema["description"] = p["description"]
        if "default" in p:
            schema["default"] = p["default"]
            optional = True
        schema["x-xlam-type"] = str(p.get("type", ""))
        props[pname] = schema
        if not optional:
            required.append(pname)
    return ToolSpec(tool["name"], tool.get("description", ""),
                    {"type": "object", "properties": props, "required": required})


def spec_to_xlam_tool(spec: ToolSpec) -> dict:
    required = set(spec.required)
    params = {}
    for pname, schema in spec.properties.items():
        t = schema_to_xlam_type(schema)
        if pname not in required and "default" not in schema and "optional" not in t.lower():
            t += ", optional"
        p = {"description": schema.get("description", ""), "type": t}
        if "default" in schema:
            p["default"] = schema["default"]
        params[pname] = p
    return {"name": spec.name, "description": spec.description, "parameters": params}


def _loads_field(row: dict, key: str):
    v = row.get(key)
    if isinstance(v, str):
        try:
            return json.loads(v)
        except json.JSONDecodeError as e:
            raise RowError("unparseable_json", f"field {key!r}: {e.msg}") from None
    if v is None:
        raise RowError("bad_shape", f"field {key!r} is missing")
    return v


class XlamConverter:
    def convert(self, row: dict, index: int = 0) -> Example:
        if not isinstance(row, dict):
            raise RowError("bad_shape", "row is not an object")
        query = row.get("query")
        if not isinstance(query, str) or not query.strip():
            raise RowError("empty_turn", "field 'query' is empty")
        tools_raw = _loads_field(row, "tools")
        answers = _loads_field(row, "answers")
        if not isinstance(tools_raw, list) or not tools_raw:
            raise RowError("no_tools", "field 'tools' is empty")
        if not isinstance(answers, list):
            raise RowError("bad_shape", "field 'answers' is not a list")
        tools = [xlam_tool_to_spec(t, f"tools[{i}]") for i, t in enumerate(tools_raw)]
        calls = []
        for i, a in enumerate(answers):
            try:
                calls.append(ToolCall.from_dict(a, f"answers[{i}]"))
            except ValueError as e:
                raise RowError("bad_shape", str(e)) from None
        expected = Expected("tool_calls", tool_calls=calls) if calls else Expected("no_call")
        row_id = str(row.get("id", index))
        md = {"source": "xlam", "source_id": row_id}
        md.update({k: v for k, v in (row.get("metadata") or {}).items()})
        ex = Example(id=f"xlam-{row_id}", messages=[Message("user", query)], tools=tools, expected=expected,
                     metadata=md)
        check_calls_offered(ex)
        return finalize(ex)

    @staticmethod
    def to_row(example: Example) -> dict:
        if example.expected.kind == "json" or len([m for m in example.messages if m.role != "system"]) != 1:
            raise ValueError(f"{example.id}: xLAM rows are single-turn tool calls; this example cannot be one")
        md = example.metadata
        row = {"id": md.get("source_id", example.id), "query": example.last_user_text,
               "tools": json.dumps([spec_to_xlam_tool(t) for t in example.tools], ensure_ascii=False),
               "answers": json.dumps([{"name": c.name, "arguments": c.arguments}
                                      for c in example.expected.tool_calls], ensure_ascii=False)}
        extra = {k: md[k] for k in ("domain", "scenario", "row_kind") if md.get(k)}
        if extra:
            row["metadata"] = extra
        return row
