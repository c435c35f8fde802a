"""One prompt renderer for training and evaluation, so a model is tested on the prompt it was trained on.

Formats (``PromptRenderer(tokenizer, mode=...)``):

* ``native``: the model's own chat template with ``apply_chat_template(messages, tools=...)``; used by
  ``auto`` when the template renders tools, assistant tool calls and tool messages;
* ``hermes``: the tools go into a Hermes-style system prompt (``<tools>`` JSON), calls are written as
  ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` and tool results as ``<tool_response>``
  (in the template's ``tool`` role when it renders one, else as a user turn). ``auto`` picks it when the
  template ignores tools, as SmolLM2's does.

Structured-output rows get the JSON Schema in the system prompt (Hermes json-mode wording).
A tokenizer without any chat template gets ChatML (Gemma's turn format where the vocabulary has its
markers), with a warning, recorded in ``describe()``.

Training masks: :meth:`PromptRenderer.training_features` renders the conversation once and marks the
tokens of every assistant turn (content through its end-of-turn marker); everything else is masked.
"""

from __future__ import annotations

import json
import logging

from fctune.errors import UserError
from fctune.formats.hermes import SYSTEM_SCHEMA_TEMPLATE
from fctune.schema import Example, Message

log = logging.getLogger(__name__)

HERMES_TOOLS_PROMPT = (
    "You are a function calling AI model. You are provided with function signatures within <tools></tools> "
    "XML tags. You may call one or more functions to assist with the user query. Don't make assumptions about "
    "what values to plug into functions. If no function fits the request, or a required value is missing, "
    "answer in plain text instead.\n<tools>\n{tools}\n</tools>\nFor each function call return a json object "
    "with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-dict>}}\n</tool_call>'
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' "
    "+ '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Gemma's turn format, for Gemma vocabularies shipped without a template (the base model's GGUF): its turn
# markers are single tokens there, ChatML's are not. System text opens the first user turn, as Gemma's own does.
GEMMA_TEMPLATE = (
    "{% if messages and messages[0]['role'] == 'system' %}{% set prefix = messages[0]['content'] + '\n\n' %}"
    "{% set turns = messages[1:] %}{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else "
    "message['role']) + '\n' + (prefix if loop.first else '') + message['content'] + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
MODES = ("auto", "native", "hermes")
_PROBE_TOOL = {"type": "function", "function": {"name": "fctune_probe_tool", "description": "probe",
                                                 "parameters": {"type": "object", "properties": {}}}}


def hermes_tools_prompt(tools) -> str:
    """The Hermes-style system prompt that lists the tools (used when a template or endpoint ignores tools)."""
    return HERMES_TOOLS_PROMPT.format(tools=json.dumps([t.to_openai() for t in tools], ensure_ascii=False))


def hermes_tool_response(m: Message) -> str:
    body = json.dumps({"name": m.name, "content": _tool_payload(m.content)}, ensure_ascii=False)
    return f"<tool_response>\n{body}\n</tool_response>"


class RenderError(UserError, ValueError):
    pass


def format_hermes_calls(calls) -> str:
    return "\n".join(
        "<tool_call>\n" + json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False) + "\n</tool_call>"
        for c in calls)


def _tool_payload(content: str | None):
    try:
        return json.loads(content) if content else content
    except (json.JSONDecodeError, TypeError):
        return content


class PromptRenderer:
    def __init__(self, tokenizer, mode: str = "auto"):
        if mode not in MODES:
            raise ValueError(f"prompt format {mode!r} is not one of {MODES}")
        self.tokenizer = tokenizer
        self.fallback_template = None
        if not getattr(tokenizer, "chat_template", None):
            vocab = tokenizer.get_vocab()
            name, template = (("gemma", GEMMA_TEMPLATE) if "<start_of_turn>" in vocab and "<end_of_turn>" in vocab
                              else ("chatml", CHATML_TEMPLATE))
            log.warning("the tokenizer has no chat template: using %s's turn format (recorded as a fallback)", name)
            # Training renders with add_special_tokens=False, so the template writes BOS (Gemma degenerates without).
            bos = "{{ bos_token }}" if getattr(tokenizer, "bos_token", None) else ""
            tokenizer.chat_template = bos + template
            self.fallback_template = name
        self.native_ok = self._template_handles_tools()
        self.tool_role_ok = self._renders({"role": "tool", "content": "fctune_probe_response",
                                           "tool_call_id": "c0", "name": "fctune_probe_tool"})
        if mode == "auto":
            mode = "native" if self.native_ok else "hermes"
        elif mode == "native" and not self.native_ok:
            raise RenderError("prompt format 'native' asked for, but this chat template ignores tools or tool calls")
        self.mode = mode

    # -- template probing -----------------------------------------------------------------------------
    def _apply(self, messages, tools=None, add_generation_prompt=False) -> str:
        return self.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def _renders(self, message: dict) -> bool:
        try:
            out = self._apply([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}, message])
        except Exception:  # noqa: BLE001 - any template error means "not supported"
            return False
        return "fctune_probe_response" in out

    def _template_handles_tools(self) -> bool:
        try:
            with_tools = self._apply([{"role": "user", "content": "hi"}], tools=[_PROBE_TOOL])
            call = self._apply([{"role": "user", "content": "hi"},
                                {"role": "assistant", "content": "", "tool_calls": [
                                    {"type": "function", "id": "c0",
                                     "function": {"name": "fctune_probe_call", "arguments": {}}}]}],
                               tools=[_PROBE_TOOL])
        except Exception:  # noqa: BLE001
            return False
        return "fctune_probe_tool" in with_tools and "fctune_probe_call" in call and self._renders(
            {"role": "tool", "content": "fctune_probe_response", "tool_call_id": "c0", "name": "fctune_probe_tool"})

    def describe(self) -> dict:
        return {"prompt_format": self.mode, "tool_role": self.tool_role_ok,
                "chat_template_fallback": self.fallback_template}

    # -- messages -> template input -------------------------------------------------------------------
    def _system_text(self, example: Example) -> str | None:
        parts = []
        if self.mode == "hermes" and example.tools:
            parts.append(hermes_tools_prompt(example.tools))
        if example.expected.kind == "json" and example.expected.json_schema is not None:
            parts.append(SYSTEM_SCHEMA_TEMPLATE.format(
                schema=json.dumps(example.expected.json_schema, ensure_ascii=False)).strip())
        own = [m.content for m in example.messages if m.role == "system" and m.content]
        parts.extend(own)
        return "\n\n".join(parts) if parts else None

    def _convert(self, m: Message) -> dict:
        if self.mode == "native":
            d: dict = {"role": m.role, "content": m.content or ""}
            if m.tool_calls:
                d["tool_calls"] = [{"type": "function", "id": c.id or f"call_{i}",
                                    "function": {"name": c.name, "arguments": c.arguments}}
                                   for i, c in enumerate(m.tool_calls)]
            if m.role == "tool":
                d["tool_call_id"] = m.tool_call_id or ""
                if m.name:
                    d["name"] = m.name
            return d
        if m.role == "assistant":
            text = m.content or ""
            if m.tool_calls:
                text = (text + "\n" if text else "") + format_hermes_calls(m.tool_calls)
            return {"role": "assistant", "content": text}
        if m.role == "tool":
            return {"role": "tool" if self.tool_role_ok else "user", "content": hermes_tool_response(m)}
        return {"role": m.role, "content": m.content or ""}

    def template_messages(self, example: Example, include_target: bool = False) -> list[dict]:
        out = []
        system = self._system_text(example)
        if system:
            out.append({"role": "system", "content": system})
        msgs = [m for m in example.messages if m.role != "system"]
        if include_target:
            msgs.append(example.target_message())
        for m in msgs:
            d = self._convert(m)
            prev = out[-1] if out else None
            # Hermes puts consecutive tool results in one turn.
            if (self.mode == "hermes" and m.role == "tool" and prev is not None and prev["role"] == d["role"]
                    and prev["content"].startswith("<tool_response>")):
                prev["content"] += "\n" + d["content"]
            else:
                out.append(d)
        return out

    def _tools_arg(self, example: Example):
        return [t.to_openai() for t in example.tools] if self.mode == "native" and example.tools else None

    # -- what evaluation and training use -------------------------------------------------------------
    def prompt(self, example: Example) -> str:
        """The generation prompt for the scored turn (what evaluation feeds the model)."""
        return self._apply(self.template_messages(example), self._tools_arg(example), add_generation_prompt=True)

    def conversation(self, example: Example) -> tuple[str, list[tuple[int, int]]]:
        """Full text with the target turn, and the character spans of every assistant turn."""
        msgs = self.template_messages(example, include_target=True)
        tools = self._tools_arg(example)
        full = self._apply(msgs, tools)
        spans = []
        for i, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            start_text = self._apply(msgs[:i], tools, add_generation_prompt=True)
            end_text = self._apply(msgs[: i + 1], tools)
            if not full.startswith(start_text) or not full.startswith(end_text):
                raise RenderError(
                    f"{example.id}: the chat template re-renders earlier turns differently when later turns are "
                    "added, so assistant turns cannot be located for loss masking")
            spans.append((len(start_text), len(end_text)))
        return full, spans

    def training_features(self, example: Example, max_length: int | None = None) -> dict:
        """``input_ids`` and ``assistant_masks`` (1 on assistant-turn tokens) for one example."""
        text, spans = self.conversation(example)
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        mask = [0] * len(ids)
        for k, (s, _e) in enumerate(offsets):
            if any(a <= s < b for a, b in spans):
                mask[k] = 1
        if max_length is not None and len(ids) > max_length:
            ids, mask = ids[:max_length], mask[:max_length]
        return {"input_ids": ids, "assistant_masks": mask}
