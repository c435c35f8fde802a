"""The chat template an exported model ships with: one that renders tools and tool calls the way the model was
trained, so a server that only has the template (vLLM, llama.cpp's ``--jinja``, ``apply_chat_template``) builds the
prompt fctune's renderer built in training and evaluation.

* ``native`` adapters were trained on the model's own template (it renders tools): it is kept.
* ``hermes`` adapters were trained on fctune's Hermes rendering on top of a template that ignores tools (SmolLM2's).
  :func:`hermes_chat_template` writes a template that does that rendering itself — the Hermes system prompt with the
  ``tools`` JSON, ``<tool_call>`` blocks for assistant calls, ``<tool_response>`` turns for results — and then hands
  the rewritten messages to the original template. :func:`template_parity` checks it against the renderer row by row.
"""

from __future__ import annotations

import dataclasses
import json

from fctune.render import HERMES_TOOLS_PROMPT, PromptRenderer
from fctune.schema import Example


def _jinja_str(s: str) -> str:
    """A Python string as a Jinja string literal (JSON's escapes are valid in Jinja)."""
    return json.dumps(s, ensure_ascii=False)


def hermes_chat_template(original: str, tool_role: bool) -> str:
    """A template that renders OpenAI-style ``messages`` + ``tools`` as fctune's ``hermes`` prompt format, then
    applies ``original`` (the model's own turn format) to the result. ``tool_role``: the original renders a ``tool``
    role (else tool results go in a user turn, as the renderer does)."""
    prefix, suffix = HERMES_TOOLS_PROMPT.replace("{{", "{").replace("}}", "}").split("{tools}")
    result_role = "tool" if tool_role else "user"
    # Arguments and tool results may arrive as JSON strings (the OpenAI convention) or as objects (transformers');
    # strings that hold a JSON object or array are written as they are, as the renderer re-serialises them.
    return (
        "{#- fctune: Hermes-style tools over the model's own turn format (fctune/chat_template.py) -#}\n"
        "{%- set ns = namespace(sys=[], out=[], ids=[], names=[]) -%}\n"
        "{%- if tools -%}{%- set ns.sys = ns.sys + [" + _jinja_str(prefix) + " + (tools | tojson) + "
        + _jinja_str(suffix) + "] -%}{%- endif -%}\n"
        "{%- for m in messages -%}\n"
        "{%- if m['role'] == 'system' -%}{%- if m['content'] -%}{%- set ns.sys = ns.sys + [m['content']] -%}"
        "{%- endif -%}\n"
        "{%- elif m['role'] == 'assistant' -%}\n"
        "{%- set t = namespace(text=m['content'] or '') -%}\n"
        "{%- for c in (m['tool_calls'] or []) -%}\n"
        "{%- set f = c['function'] if c['function'] is defined else c -%}\n"
        "{%- set args = f['arguments'] if f['arguments'] is string else (f['arguments'] | tojson) -%}\n"
        "{%- set ns.ids = ns.ids + [c['id'] if c['id'] is defined else ''] -%}"
        "{%- set ns.names = ns.names + [f['name']] -%}\n"
        "{%- set t.text = (t.text + '\\n' if t.text else '') + '<tool_call>\\n{\"name\": ' + (f['name'] | tojson) + "
        "', \"arguments\": ' + args + '}\\n</tool_call>' -%}\n"
        "{%- endfor -%}\n"
        "{%- set ns.out = ns.out + [{'role': 'assistant', 'content': t.text}] -%}\n"
        "{%- elif m['role'] == 'tool' -%}\n"
        "{%- set name = namespace(v=(m['name'] if m['name'] is defined else none)) -%}\n"
        "{%- if name.v is none -%}{%- for i in range(ns.ids | length) -%}{%- if ns.ids[i] == m['tool_call_id'] -%}"
        "{%- set name.v = ns.names[i] -%}{%- endif -%}{%- endfor -%}{%- endif -%}\n"
        "{%- set c = m['content'] -%}\n"
        "{%- set payload = c if (c is string and (c[:1] == '{' or c[:1] == '[')) else (c | tojson) -%}\n"
        "{%- set body = '<tool_response>\\n{\"name\": ' + (name.v | tojson) + ', \"content\": ' + payload "
        "+ '}\\n</tool_response>' -%}\n"
        "{%- set last = ns.out[-1] if ns.out else none -%}\n"
        "{%- if last is not none and last['role'] == '" + result_role + "' and last['content'].startswith("
        "'<tool_response>') -%}\n"
        "{%- set ns.out = ns.out[:-1] + [{'role': '" + result_role + "', 'content': last['content'] "
        "+ '\\n' + body}] -%}\n"
        "{%- else -%}{%- set ns.out = ns.out + [{'role': '" + result_role + "', 'content': body}] -%}{%- endif -%}\n"
        "{%- else -%}{%- set ns.out = ns.out + [{'role': m['role'], 'content': m['content'] or ''}] -%}\n"
        "{%- endif -%}\n"
        "{%- endfor -%}\n"
        "{%- set messages = ([{'role': 'system', 'content': ns.sys | join('\\n\\n')}] if ns.sys else []) + ns.out -%}\n"
        "{%- set tools = none -%}\n"
        + original
    )


def openai_request(example: Example, renderer: PromptRenderer, arguments_as: str = "object") -> tuple[list, list]:
    """The messages and tools a client would send for this example: the system text the renderer adds for
    structured rows (the schema) goes in the system message, as a client puts it there; ``arguments_as``
    ``object`` (transformers' convention) or ``string`` (the OpenAI API's)."""
    from fctune.formats.openai import message_to_openai

    system = renderer._system_text(dataclasses.replace(example, tools=[]))  # the tools go in ``tools``
    msgs = [{"role": "system", "content": system}] if system else []
    for m in example.messages:
        if m.role == "system":
            continue
        d = message_to_openai(m)
        if arguments_as == "object":
            for c in d.get("tool_calls") or []:
                c["function"]["arguments"] = json.loads(c["function"]["arguments"])
        d["content"] = d["content"] or ""
        msgs.append(d)
    return msgs, [t.to_openai() for t in example.tools]


def template_parity(examples: list[Example], trained: PromptRenderer, exported_tokenizer) -> dict:
    """Render every example both ways — fctune's renderer as in training, and the exported template from the
    OpenAI-style request — and count the prompts that are byte-identical (both argument conventions)."""
    identical, first_diff = 0, None
    # a native template gets objects: fctune's server parses the API's argument strings first (see serve.py), since
    # templates such as Qwen2.5's write ``arguments | tojson`` and would quote a string again
    styles = ("object", "string") if trained.mode == "hermes" else ("object",)
    for e in examples:
        want = trained.prompt(e)
        same = True
        for style in styles:
            msgs, tools = openai_request(e, trained, style)
            got = exported_tokenizer.apply_chat_template(msgs, tools=tools or None, tokenize=False,
                                                         add_generation_prompt=True)
            if got != want:
                same = False
                if first_diff is None:
                    # the first differing character; the shorter length when one is a prefix of the other
                    k = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                             min(len(got), len(want)))
                    first_diff = {"id": e.id, "arguments_as": style, "at_char": k,
                                  "trained": want[max(0, k - 60):k + 60], "exported": got[max(0, k - 60):k + 60]}
        identical += same
    return {"rows": len(examples), "identical": identical, "argument_styles": list(styles),
            "first_difference": first_diff}
