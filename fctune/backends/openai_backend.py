"""OpenAI-compatible endpoints through the official ``openai`` package: Azure OpenAI (endpoint,
api-version, deployment) and any ``base_url`` (OpenAI, vLLM, llama.cpp server, Ollama).

Three ways to put the tools in front of the model (``tools_mode``, part of the backend identity in every result):

* ``native`` (hosted APIs: Azure, OpenAI): ``tools=`` with ``tool_choice="auto"``; ``tool_calls`` are read back.
  Tool names the API refuses (BFCL's ``math.hcf``) are renamed (``math_hcf``) and mapped back in every output
  shape, the text of an answer included (``Generation.renamed_tools``).
* ``completions`` (local OpenAI-compatible servers: llama.cpp, vLLM): the prompt is rendered here by
  :class:`~fctune.render.PromptRenderer` from the model's tokenizer, exactly as the local backend renders it (the
  model's own chat template with its tools, or the Hermes prompt where the template has none), and sent as text to
  ``/v1/completions``; calls are parsed from the answer. The same weights then see the same prompt on every path.
  (llama-cpp-python's ``chatml-function-calling`` chat handler escapes the template's HTML, ``&lt;tools&gt;``, and
  lists tools only inside a system message: it is not used for evaluation.)
* ``prompt``: the tools in a Hermes-style system message through ``/v1/chat/completions``, calls parsed from the
  text, for chat-only endpoints whose native tool calling is unusable. Structured rows
ask for ``response_format`` ``json_schema``; an endpoint that rejects it gets the schema as instructions
in the prompt instead, and each row records which (``structured_mode``). Requests run with bounded
concurrency and a per-request timeout; 429, 5xx, timeouts, connection errors and malformed answers are retried
with exponential backoff and jitter (or after the server's ``Retry-After``, bounded by ``backoff_max_s``); a request
that still fails is returned as an error (never as an answer). Every answer is read through :func:`read_answer`,
which checks each field scoring uses, so an odd answer (``text/plain``, ``choices: []``, a call without a function)
is an error of that request, not an exception and not a wrong answer. An authentication failure stops the run at once.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

from fctune.backends.base import Generation
from fctune.errors import UserError
from fctune.formats.hermes import SYSTEM_SCHEMA_TEMPLATE
from fctune.formats.openai import message_to_openai
from fctune.schema import Example
from fctune.secrets import endpoint_host, redact_text, register_secret

log = logging.getLogger(__name__)
_NAME_OK = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOLS_MODES = ("native", "completions", "prompt")


class EndpointError(UserError, RuntimeError):
    """The endpoint cannot be used at all (bad key, wrong deployment); raised, not recorded per row."""


class MalformedAnswer(ValueError):
    """An endpoint's answer that is not a completion of the kind asked for: an error of that request (retried)."""


def _as_mapping(resp) -> object:
    # the SDK builds its models without validating them (a text/plain body comes back as a str, a JSON list as a
    # list, wrong field types are kept): check the plain values, not the model's promises
    dump = getattr(resp, "model_dump", None)
    return dump(warnings=False) if callable(dump) else resp


def _field(obj: dict, key: str, types: tuple, where: str, required: bool = False):
    value = obj.get(key)
    if value is None and not required:
        return None
    if value is None or isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise MalformedAnswer(f"{where}.{key} is {json.dumps(value)[:80] if value is not None else 'missing'}, not "
                              f"{' or '.join(t.__name__ for t in types)}")
    return value


def _text(value, where: str) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    # a list of content parts ({"type": "text", "text": ...}), as some gateways answer: their text, joined
    if isinstance(value, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    raise MalformedAnswer(f"{where} is {json.dumps(value)[:80]}, not text")


def read_answer(resp, completions: bool) -> dict:
    """The fields of one endpoint answer that scoring uses, each checked (pure): ``text``, ``tool_calls`` (OpenAI
    shape, arguments as a JSON string), ``finish_reason``, ``prompt_tokens``, ``completion_tokens``. Raises
    :class:`MalformedAnswer` naming the first field that is missing or of the wrong type."""
    body = _as_mapping(resp)
    if not isinstance(body, dict):
        preview = body if isinstance(body, str) else json.dumps(body, default=str)
        raise MalformedAnswer(f"the answer is not a completion object but {type(body).__name__} {preview[:80]!r} "
                              "(a gateway's page or a wrong content type?)")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedAnswer(f"choices is {json.dumps(choices)[:80] if choices is not None else 'missing'}: "
                              "the answer holds no completion")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise MalformedAnswer(f"choices[0] is {json.dumps(choice)[:80]}, not an object")
    calls = None
    if completions:
        text = _text(choice.get("text"), "choices[0].text")
    else:
        msg = choice.get("message")
        if not isinstance(msg, dict):
            raise MalformedAnswer(f"choices[0].message is {json.dumps(msg)[:80] if msg is not None else 'missing'}")
        text = _text(msg.get("content"), "choices[0].message.content")
        raw = _field(msg, "tool_calls", (list,), "choices[0].message")
        for i, c in enumerate(raw or []):
            where = f"choices[0].message.tool_calls[{i}]"
            if not isinstance(c, dict):
                raise MalformedAnswer(f"{where} is {json.dumps(c)[:80]}, not an object")
            fn = _field(c, "function", (dict,), where, required=True)
            name = _field(fn, "name", (str,), where + ".function", required=True)
            args = fn.get("arguments")
            if isinstance(args, dict):  # some servers send the arguments as an object: the same call
                args = json.dumps(args)
            elif args is not None and not isinstance(args, str):
                raise MalformedAnswer(f"{where}.function.arguments is {json.dumps(args)[:80]}, not a JSON string")
            calls = (calls or []) + [{"id": _field(c, "id", (str,), where), "name": name, "arguments": args or "{}"}]
    usage = _field(body, "usage", (dict,), "answer") or {}
    return {"text": text, "tool_calls": calls,
            "finish_reason": _field(choice, "finish_reason", (str,), "choices[0]"),
            "prompt_tokens": _field(usage, "prompt_tokens", (int,), "usage"),
            "completion_tokens": _field(usage, "completion_tokens", (int,), "usage")}


def retry_after_s(err: Exception) -> float | None:
    """The wait a 429/503 answer asks for (``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date),
    None where it asks none or says something unreadable."""
    headers = getattr(getattr(err, "response", None), "headers", None)
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            wait = float(headers["retry-after-ms"]) / 1000
        elif headers.get("retry-after"):
            value = headers["retry-after"].strip()
            try:
                wait = float(value)
            except ValueError:
                wait = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        else:
            return None
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, wait) if math.isfinite(wait) else None


def unique_api_names(names, rename) -> dict[str, str]:
    """Each tool name -> the name it is sent under (``rename(name)``), two tools never sharing one: ``math.add`` and
    ``math_add`` both become ``math_add`` under the API's name rule, and one would silently answer for the other;
    the second is sent as ``math_add_2`` and mapped back like any renamed tool."""
    out: dict[str, str] = {}
    taken = set()
    for name in names:
        if name in out:
            continue
        sent, n = rename(name), 1
        while sent in taken:
            n += 1
            sent = f"{rename(name)[:60]}_{n}"
        out[name] = sent
        taken.add(sent)
    return out


def api_name(name: str) -> str:
    """A tool name the API accepts (``^[a-zA-Z0-9_-]{1,64}$``); BFCL names like ``math.factorial`` need it."""
    if _NAME_OK.match(name):
        return name
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64]


class OpenAIBackend:
    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 azure_endpoint: str | None = None, api_version: str | None = None,
                 max_concurrency: int = 4, timeout_s: float = 60.0, max_retries: int = 4, backoff_base_s: float = 1.0,
                 backoff_max_s: float = 30.0, max_tokens: int = 512, temperature: float = 0.0,
                 structured_mode: str = "auto", tools_mode: str = "native", extra_identity: dict | None = None,
                 on_close=None, server_failure=None, renderer=None, stop: list[str] | None = None,
                 api_names: str = "api"):
        import openai

        register_secret(api_key)  # masked wherever text is written, whatever variable it was read from
        self.extra_identity, self.on_close = extra_identity or {}, on_close
        # "api": tool names as hosted APIs accept them (BFCL's math.factorial -> math_factorial, mapped back);
        # "as-is": for servers that take any name (llama.cpp, vLLM), so a served model sees its in-process prompt
        self.api_names = api_names
        # for a server this process started: () -> None while it runs, else why it is gone (checked before every
        # attempt and after every failure, so a dead server ends the run at once instead of after every retry)
        self.server_failure = server_failure
        if tools_mode not in TOOLS_MODES:
            raise ValueError(f"tools_mode {tools_mode!r}: one of {TOOLS_MODES}")
        if tools_mode == "completions" and renderer is None:
            raise ValueError("tools_mode 'completions' needs the model's prompt renderer (its tokenizer)")
        self.tools_mode, self.renderer = tools_mode, renderer
        # end-of-turn markers as text: the server stops at its EOS token, not always at the turn's end
        self.stop = stop or None
        self.openai = openai
        self.model, self.azure = model, bool(azure_endpoint)
        self.base_url = azure_endpoint or base_url
        self.api_version = api_version
        self.max_concurrency, self.timeout_s = max_concurrency, timeout_s
        self.max_retries, self.backoff_base_s, self.backoff_max_s = max_retries, backoff_base_s, backoff_max_s
        self.max_tokens, self.temperature = max_tokens, temperature
        if self.azure:
            self.client = openai.AzureOpenAI(azure_endpoint=azure_endpoint, api_version=api_version, api_key=api_key,
                                             azure_deployment=model, timeout=timeout_s, max_retries=0)
        else:
            self.client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s,
                                        max_retries=0)
        # "auto": try response_format json_schema, fall back to the prompt on the first rejection
        self.structured_mode = structured_mode
        self._lock = threading.Lock()
        self._n, self._completion_tokens, self._t0, self._t1 = 0, 0, None, None
        self._retries, self._failed = 0, 0

    def identity(self) -> dict:
        return {"backend": "openai", "kind": "azure" if self.azure else "openai-compatible", "model": self.model,
                "endpoint_host": endpoint_host(self.base_url) or "https://api.openai.com",
                "api_version": self.api_version, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "max_concurrency": self.max_concurrency, "timeout_s": self.timeout_s, "max_retries": self.max_retries,
                "structured_mode": self.structured_mode, "tools_mode": self.tools_mode,
                **({"api_names": self.api_names} if self.api_names != "api" else {}),
                **({"prompt": self.renderer.describe(), "stop": self.stop} if self.renderer else {}),
                "call_format": self.call_format(), **self.extra_identity}

    def set_max_new_tokens(self, n: int) -> None:
        self.max_tokens = n

    def call_format(self) -> list[str]:
        """The output shapes a call is read from in the strict reading: this path's declared call format."""
        from fctune.parse import declared_call_format

        if self.tools_mode == "native":
            return ["openai_tool_calls"]
        if self.tools_mode == "prompt":
            return ["hermes_tags"]
        return declared_call_format(self.renderer)

    # -- request building ------------------------------------------------------------------------------
    def _name(self, name: str) -> str:
        return name if self.api_names == "as-is" else api_name(name)

    def _request(self, e: Example, structured: str | None) -> tuple[dict, dict]:
        if self.tools_mode == "prompt":
            msgs, back = self._prompt_mode_messages(e), {}
        else:
            msgs, back = self._native_messages(e)
        kwargs: dict = {"model": self.model, "messages": msgs, "temperature": self.temperature,
                        "max_tokens": self.max_tokens}
        if e.tools and self.tools_mode == "native":
            names, tools = self._api_names(e), []
            for t in e.tools:
                spec = t.to_openai()
                spec["function"]["name"] = names[t.name]
                tools.append(spec)
            kwargs["tools"] = tools
            kwargs["tool_choice"] = "auto"
        if e.expected.kind == "json" and e.expected.json_schema is not None:
            if structured == "response_format":
                kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": "response", "schema": e.expected.json_schema, "strict": False}}
            else:
                # worded, escaped and placed as the training renderer puts it (schema first, then the row's own
                # system text), so a served fine-tuned model reads the prompt it was trained on
                instr = SYSTEM_SCHEMA_TEMPLATE.format(
                    schema=json.dumps(e.expected.json_schema, ensure_ascii=False)).strip()
                if msgs and msgs[0]["role"] == "system":
                    msgs[0] = dict(msgs[0], content=instr + "\n\n" + msgs[0]["content"])
                else:
                    msgs.insert(0, {"role": "system", "content": instr})
        return kwargs, back

    def completion_request(self, e: Example) -> dict:
        """The /v1/completions request for one example: the prompt rendered here, byte for byte what the server gets."""
        return {"model": self.model, "prompt": self.renderer.prompt(e), "temperature": self.temperature,
                "max_tokens": self.max_tokens, **({"stop": self.stop} if self.stop else {})}

    def _api_names(self, e: Example) -> dict[str, str]:
        return unique_api_names([t.name for t in e.tools], self._name)

    def _native_messages(self, e: Example) -> tuple[list[dict], dict]:
        names = self._api_names(e)
        back = {v: k for k, v in names.items()}
        msgs, pending, n_calls = [], [], 0
        for m in e.messages:
            d = message_to_openai(m)
            if d.get("tool_calls"):
                d["content"] = d["content"] or ""  # some servers reject null content
            for c in d.get("tool_calls") or []:
                c["function"]["name"] = names.get(c["function"]["name"], self._name(c["function"]["name"]))
                if not m.tool_calls[0].id:  # ids must pair calls with results; make them unique
                    c["id"] = f"call_{n_calls}"
                n_calls += 1
                pending.append(c["id"])
            if d["role"] == "tool":
                d.pop("name", None)  # not part of the tool message schema
                if not d.get("tool_call_id") and pending:
                    d["tool_call_id"] = pending[0]
                if d.get("tool_call_id") in pending:
                    pending.remove(d["tool_call_id"])
            msgs.append(d)
        return msgs, back

    @staticmethod
    def _prompt_mode_messages(e: Example) -> list[dict]:
        from fctune.render import format_hermes_calls, hermes_tool_response, hermes_tools_prompt

        system = [hermes_tools_prompt(e.tools)] if e.tools else []
        system += [m.content for m in e.messages if m.role == "system" and m.content]
        msgs = [{"role": "system", "content": "\n\n".join(system)}] if system else []
        for m in e.messages:
            if m.role == "system":
                continue
            if m.role == "assistant":
                text = m.content or ""
                if m.tool_calls:
                    text = (text + "\n" if text else "") + format_hermes_calls(m.tool_calls)
                msgs.append({"role": "assistant", "content": text})
            elif m.role == "tool":
                content = hermes_tool_response(m)
                if msgs and msgs[-1]["role"] == "user" and msgs[-1]["content"].startswith("<tool_response>"):
                    msgs[-1]["content"] += "\n" + content
                else:
                    msgs.append({"role": "user", "content": content})
            else:
                msgs.append({"role": m.role, "content": m.content or ""})
        return msgs

    # -- one request with retries ----------------------------------------------------------------------
    def _retryable(self, err: Exception) -> bool:
        o = self.openai
        # an answer that is not a completion (a proxy's error page, a torn body) is as transient as a 502
        if isinstance(err, (MalformedAnswer, json.JSONDecodeError, o.APIResponseValidationError)):
            return True
        if isinstance(err, (o.RateLimitError, o.APITimeoutError, o.APIConnectionError, o.InternalServerError)):
            return True
        return isinstance(err, o.APIStatusError) and (err.status_code == 429 or err.status_code >= 500)

    def _rejects_response_format(self, err: Exception) -> bool:
        o = self.openai
        text = str(err).lower()
        # 400/422 from most servers; llama-cpp-python answers 500 with a validation message
        return isinstance(err, o.APIStatusError) and err.status_code in (400, 422, 500) and (
            "response_format" in text or "json_schema" in text)

    def _one(self, e: Example) -> Generation:
        structured = None
        attempts, t0 = 0, time.time()
        while True:
            attempts += 1
            self._raise_if_server_died()
            if e.expected.kind == "json":  # decided per attempt: another request may have found the fallback
                structured = "prompt" if self.structured_mode == "prompt" else "response_format"
            if self.tools_mode == "completions":
                structured = "prompt" if e.expected.kind == "json" else None  # the schema is in the rendered prompt
                kwargs, back = self.completion_request(e), {}
            else:
                kwargs, back = self._request(e, structured)
            try:
                resp = (self.client.completions.create(**kwargs) if self.tools_mode == "completions"
                        else self.client.chat.completions.create(**kwargs))
                answer = read_answer(resp, self.tools_mode == "completions")
            except self.openai.AuthenticationError as err:
                raise EndpointError(f"the endpoint refused the credentials ({redact_text(str(err))[:200]}); "
                                    "check the API key in .env") from None
            except self.openai.NotFoundError as err:
                raise EndpointError(f"model or deployment {self.model!r} not found at "
                                    f"{endpoint_host(self.base_url)} ({redact_text(str(err))[:200]})") from None
            except Exception as err:  # noqa: BLE001 - classified below
                self._raise_if_server_died()
                if structured == "response_format" and self.structured_mode != "response_format" and \
                        self._rejects_response_format(err):
                    with self._lock:
                        if self.structured_mode == "auto":
                            log.warning("the endpoint rejects response_format json_schema: structured rows now "
                                        "carry the schema in the prompt (recorded per row as structured_mode=prompt)")
                        self.structured_mode = "prompt"
                    attempts -= 1
                    continue
                if self._retryable(err) and attempts <= self.max_retries:
                    delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempts - 1))
                    delay *= 0.5 + random.random()  # jitter
                    asked = retry_after_s(err)
                    if asked is not None:  # the server's own wait, within the bound a run accepts
                        delay = min(asked, self.backoff_max_s)
                    with self._lock:
                        self._retries += 1
                    log.info("%s: %s, retry %d/%d in %.1fs", e.id, type(err).__name__, attempts, self.max_retries,
                             delay)
                    time.sleep(delay)
                    continue
                with self._lock:
                    self._failed += 1
                return Generation(id=e.id, error=f"{type(err).__name__}: {redact_text(str(err))[:300]}",
                                  latency_s=round(time.time() - t0, 3), attempts=attempts, structured_mode=structured)
            return self._to_generation(e, answer, back, attempts, time.time() - t0, structured)

    def _raise_if_server_died(self) -> None:
        why = self.server_failure() if self.server_failure else None
        if why:
            raise EndpointError(why)

    def _to_generation(self, e, answer: dict, back, attempts, latency, structured) -> Generation:
        calls = [{"id": c["id"], "type": "function",
                  "function": {"name": back.get(c["name"], c["name"]), "arguments": c["arguments"]}}
                 for c in answer["tool_calls"]] if answer["tool_calls"] else None
        g = Generation(id=e.id, output=answer["text"], tool_calls=calls, latency_s=round(latency, 3),
                       attempts=attempts, structured_mode=structured, finish_reason=answer["finish_reason"],
                       # a server may answer a call as text (the renamed name in it): scoring maps those back too
                       renamed_tools={k: v for k, v in back.items() if k != v} or None,
                       prompt_tokens=answer["prompt_tokens"], completion_tokens=answer["completion_tokens"])
        with self._lock:
            self._completion_tokens += g.completion_tokens or 0
        return g

    def generate(self, examples: list[Example]) -> Iterator[Generation]:
        if not examples:
            return
        with self._lock:
            self._t0 = self._t0 or time.time()
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = [pool.submit(self._one, e) for e in examples]
            try:
                for f in as_completed(futures):
                    g = f.result()
                    with self._lock:
                        self._n += 1
                        self._t1 = time.time()
                    yield g
            finally:
                for f in futures:
                    f.cancel()

    def stats(self) -> dict:
        dt = (self._t1 - self._t0) if self._t0 and self._t1 else None
        return {"examples": self._n, "generated_tokens": self._completion_tokens,
                "generation_s": round(dt, 2) if dt else None,
                "examples_per_s": round(self._n / dt, 3) if dt else None,
                "generated_tokens_per_s": round(self._completion_tokens / dt, 1) if dt else None,
                "retries": self._retries, "failed_requests": self._failed}

    def close(self) -> None:
        self.client.close()
        if self.on_close is not None:
            self.on_close()
