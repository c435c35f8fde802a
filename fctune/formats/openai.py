"""OpenAI chat-format JSONL (``messages`` + ``tools``) <-> canonical examples; also the export format.

The last assistant message of a row is the scored turn: with ``tool_calls`` it is a call row; when the
row has a ``response_format`` of type ``json_schema`` its content is the JSON target; otherwise it is a
"no call" row. Arguments are JSON strings, as the API writes them. Export writes the same shape with
the example's metadata under ``metadata`` (drop it for APIs that reject extra keys).
"""

from __future__ import annotations

import json

from fctune.formats.common import RowError, check_calls_offered, finalize
from fctune.schema import Example, Expected, Message, SchemaError, ToolSpec


def message_to_openai(m: Message) -> dict:
    d: dict = {"role": m.role, "content": m.content}
    if m.tool_calls:
        d["tool_calls"] = [
            {"id": c.id or f"call_{i}", "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
            for i, c in enumerate(m.tool_calls)
        ]
    if m.role == "tool":
        d["tool_call_id"] = m.tool_call_id or ""
        if m.name:
            d["name"] = m.name
    return d


class OpenAIChatConverter:
    def convert(self, row: dict, index: int = 0) -> Example:
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or not row["messages"]:
            raise RowError("bad_shape", "no 'messages' list")
        try:
            msgs = [Message.from_dict(m, f"messages[{i}]") for i, m in enumerate(row["messages"])]
            tools = [ToolSpec.from_openai(t, f"tools[{i}]") for i, t in enumerate(row.get("tools") or [])]
        except SchemaError as e:
            reason = "unparseable_json" if "not valid JSON" in str(e) else "bad_shape"
            raise RowError(reason, str(e)) from None
        for i, m in enumerate(msgs):
            if m.role in ("user", "system") and not (m.content or "").strip():
                raise RowError("empty_turn", f"messages[{i}] ({m.role}) is empty")
        scored = max((i for i, m in enumerate(msgs) if m.role == "assistant"), default=None)
        if scored is None:
            raise RowError("no_target", "no assistant message")
        target = msgs[scored]
        rf = row.get("response_format") or {}
        if target.tool_calls:
            expected = Expected("tool_calls", tool_calls=target.tool_calls)
        elif rf.get("type") == "json_schema":
            try:
                value = json.loads(target.content or "")
            except json.JSONDecodeError:
                raise RowError("unparseable_json", f"messages[{scored}].content is not JSON") from None
            expected = Expected("json", json=value, json_schema=(rf.get("json_schema") or {}).get("schema"))
        else:
            if not tools:
                raise RowError("no_tools", "no tools and no tool call")
            expected = Expected("no_call", text=target.content)
        if expected.kind != "json" and not tools:
            raise RowError("no_tools", "'tools' is empty")
        context = msgs[:scored]
        if not any(m.role == "user" for m in context):
            raise RowError("no_user_turn", "no user message before the scored turn")
        md = dict(row.get("metadata") or {})
        md.setdefault("source", "openai_chat")
        md.setdefault("source_id", str(row.get("id", index)))
        ex = Example(id=str(row.get("id", f"openai-{index}")), messages=context, tools=tools, expected=expected,
                     metadata=md)
        check_calls_offered(ex)
        return finalize(ex)

    @staticmethod
    def to_row(example: Example, include_metadata: bool = True) -> dict:
        row: dict = {"id": example.id,
                     "messages": [message_to_openai(m) for m in [*example.messages, example.target_message()]]}
        if example.tools:
            row["tools"] = [t.to_openai() for t in example.tools]
        if example.expected.kind == "json":
            row["response_format"] = {"type": "json_schema",
                                      "json_schema": {"name": "response", "schema": example.expected.json_schema}}
        if include_metadata:
            row["metadata"] = example.metadata
        return row
