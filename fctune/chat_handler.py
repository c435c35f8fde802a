"""The chat handler that serves an exported model with tool calling inside llama.cpp's OpenAI-compatible server
(llama-cpp-python): the prompt is built from the export's own chat template and the model's calls come back as real
``tool_calls``, the way vLLM does with ``--tool-call-parser hermes``.

Why a handler of our own: llama-cpp-python's ``chatml-function-calling`` writes its own prompt (not the one the
model was trained on) and constrains calls with a grammar; its Jinja path renders the template but never reads calls
back. Here the prompt is ``apply_chat_template(messages, tools=...)`` with the exported tokenizer — what training
and the in-process evaluation rendered — and ``<tool_call>`` blocks in the reply become ``tool_calls`` (text outside
them is the message content). It lives apart from the server that loads it (``fctune.llama_server``) and the command
that starts it (``fctune.serve``), so both can import it.
"""

from __future__ import annotations

import json
import time
import uuid

HANDLER_NAME = "fctune-template"
TOKENIZER_ENV = "FCTUNE_SERVE_TOKENIZER"  # how the server's child process learns the tokenizer folder


def _parse_arguments(messages: list[dict]) -> list[dict]:
    """OpenAI clients send call arguments as JSON strings; templates (Qwen2.5's ``arguments | tojson``) expect
    objects, as training gave them. Unparseable strings stay strings."""
    out = []
    for m in messages:
        m = {k: v for k, v in dict(m).items() if v is not None}
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                c = dict(c)
                fn = dict(c.get("function") or {})
                if isinstance(fn.get("arguments"), str):
                    try:
                        fn["arguments"] = json.loads(fn["arguments"])
                    except json.JSONDecodeError:
                        pass
                c["function"] = fn
                calls.append(c)
            m["tool_calls"] = calls
        out.append(m)
    return out


def _clean(obj):
    """Requests come through pydantic models that add null fields; templates see what the client sent."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def split_reply(text: str) -> tuple[str | None, list[dict]]:
    """The reply's ``<tool_call>`` blocks as OpenAI ``tool_calls`` (arguments as JSON strings) and the text outside
    them; a block that does not parse stays in the text, as vLLM's hermes parser leaves it."""
    from fctune.parse import _TAGS, _calls_from_body

    pattern = dict(_TAGS)["hermes_tags"]
    calls, kept, last = [], [], 0
    for m in pattern.finditer(text):
        found, errors, _ = _calls_from_body(m.group(1), None)
        if not found or errors:
            continue
        kept.append(text[last:m.start()])
        last = m.end()
        for c in found:
            calls.append({"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                          "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}})
    kept.append(text[last:])
    content = "".join(kept).strip()
    return (content or None), calls


def make_handler(tokenizer_dir: str):
    """A llama-cpp-python chat completion handler over the export's tokenizer (see module doc)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos = [t for t in {tokenizer.eos_token, "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"}
           if t and t in tokenizer.get_vocab()]

    def handler(*, llama, messages, tools=None, temperature=0.2, top_p=0.95, top_k=40, stream=False, stop=None,
                seed=None, max_tokens=None, response_format=None, presence_penalty=0.0, frequency_penalty=0.0,
                **_ignored):
        if stream:
            raise ValueError("fctune-template serving does not stream")
        msgs = _parse_arguments(_clean(list(messages)))
        if response_format and response_format.get("type") == "json_schema":
            from fctune.formats.hermes import SYSTEM_SCHEMA_TEMPLATE

            schema = (response_format.get("json_schema") or {}).get("schema")
            instr = SYSTEM_SCHEMA_TEMPLATE.format(schema=json.dumps(schema, ensure_ascii=False)).strip()
            if msgs and msgs[0]["role"] == "system":
                msgs[0] = dict(msgs[0], content=instr + "\n\n" + (msgs[0].get("content") or ""))
            else:
                msgs.insert(0, {"role": "system", "content": instr})
        prompt = tokenizer.apply_chat_template(msgs, tools=_clean(tools) or None, tokenize=False,
                                               add_generation_prompt=True)
        stops = list(eos) + ([stop] if isinstance(stop, str) else list(stop or []))
        # no repetition penalty: the OpenAI API has none, and llama-cpp-python's server fills in 1.1, which changes
        # even greedy answers (it cut call arguments short: a served smoke model dropped "to_currency" that it wrote
        # in-process); presence and frequency penalties are the API's own and pass through
        out = llama.create_completion(prompt=prompt, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                      top_k=top_k, stop=stops, seed=seed, repeat_penalty=1.0,
                                      presence_penalty=presence_penalty, frequency_penalty=frequency_penalty)
        text = out["choices"][0]["text"]
        content, calls = split_reply(text)
        message = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        finish = "tool_calls" if calls else out["choices"][0].get("finish_reason") or "stop"
        return {"id": "chatcmpl-" + out["id"].split("-", 1)[-1], "object": "chat.completion",
                "created": int(time.time()), "model": out.get("model", ""),
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": out.get("usage")}

    return handler


def register_handler(tokenizer_dir: str) -> None:
    from llama_cpp.llama_chat_format import LlamaChatCompletionHandlerRegistry

    LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(
        HANDLER_NAME, make_handler(tokenizer_dir), overwrite=True)
