"""The one interface every model backend has: ``generate(examples)`` yields a :class:`Generation` per
example as it finishes (raw output text or OpenAI ``tool_calls``, token counts, latency, or an error).
Nothing above a backend knows whether a model is local or behind an API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Protocol

from fctune.schema import Example


@dataclass
class Generation:
    id: str
    output: str | None = None
    tool_calls: list | None = None       # OpenAI shape, when the backend returned native tool calls
    error: str | None = None             # set when the request finally failed: not a wrong answer
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    attempts: int = 1
    structured_mode: str | None = None   # "response_format" or "prompt" for structured rows (API backends)
    finish_reason: str | None = None     # "stop"; "length" when the generation budget cut the answer; "repeat"
    #                                      when the local backend stopped it looping (--stop-repeats)
    renamed_tools: dict | None = None    # API name -> tool name, for tools renamed to fit the API's name rule

    def to_dict(self) -> dict:
        """The prediction row as written, every known secret value masked in what the model or the endpoint wrote
        (an endpoint that echoes the API key must not leave it in predictions, details or reports)."""
        from fctune.secrets import mask_secret_values

        row = {k: v for k, v in asdict(self).items() if v is not None}
        for k in ("output", "error"):
            if k in row:
                row[k] = mask_secret_values(row[k])
        for c in row.get("tool_calls") or []:
            fn = c.get("function") if isinstance(c, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                fn["arguments"] = mask_secret_values(fn["arguments"])
        return row


class Backend(Protocol):
    def identity(self) -> dict:
        """Model id, adapter version, endpoint host (never secrets)."""

    def generate(self, examples: list[Example]) -> Iterator[Generation]:
        """One Generation per example, yielded as each finishes (order not guaranteed)."""

    def set_max_new_tokens(self, n: int) -> None:
        """The generation budget for the requests that follow (sized per split by the runner)."""

    def stats(self) -> dict:
        """Throughput of the calls so far (examples/s, generated tokens/s)."""

    def close(self) -> None:
        ...
