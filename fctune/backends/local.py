"""Local models: base model + optional LoRA adapter (or a merged model), batched greedy generation.

Prompts come from the same :class:`~fctune.render.PromptRenderer` that training used (the prompt format
recorded in the adapter's metadata is reused). Batches are formed from prompts of similar length, padded
on the left, decoded greedily (deterministic) and stopped at the end of the assistant turn.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from fctune.backends.base import Generation
from fctune.parse import declared_call_format
from fctune.schema import Example

log = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX (Linux: read from /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class LocalBackend:
    def __init__(self, model: str, adapter: str | None = None, max_new_tokens: int = 256, batch_size: int = 8,
                 prompt_format: str | None = None, device: str = "auto", dtype: str = "auto"):
        import torch

        from fctune.models import ensure_pad_token, load_causal_lm, load_tokenizer, resolve_model, stop_token_ids
        from fctune.render import PromptRenderer

        self.model_spec, self.adapter = model, adapter
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.adapter_meta = self._adapter_metadata(adapter)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        if dtype == "auto":
            if device == "cuda":
                tdtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:  # bf16 is several times faster than fp32 on CPUs with native bf16 instructions
                tdtype = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
        else:
            tdtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
        self.model_ref = resolve_model(model)
        t0 = time.time()
        self.tokenizer = load_tokenizer(adapter if adapter else model)
        ensure_pad_token(self.tokenizer)
        self.tokenizer.padding_side = "left"
        net = load_causal_lm(model, dtype=tdtype)
        if adapter:
            from peft import PeftModel

            net = PeftModel.from_pretrained(net, adapter).merge_and_unload()  # same outputs, faster generation
        self.model = net.to(device).eval()
        fmt = prompt_format or ((self.adapter_meta.get("prompt") or {}).get("prompt_format") if self.adapter_meta
                                else None) or "auto"
        self.renderer = PromptRenderer(self.tokenizer, fmt)
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.dtype = str(tdtype).replace("torch.", "")
        self.load_s = round(time.time() - t0, 2)
        self._n, self._gen_tokens, self._time = 0, 0, 0.0
        log.info("local model %s%s on %s (%s), prompt format %s, loaded in %.1fs", model,
                 f" + adapter {adapter}" if adapter else "", device, tdtype, self.renderer.mode, self.load_s)

    @staticmethod
    def _adapter_metadata(adapter: str | None) -> dict:
        from fctune.errors import UserError

        if not adapter:
            return {}
        p = Path(adapter)
        if not (p / "adapter_config.json").exists():
            raise UserError(f"{adapter}: not an adapter folder (adapter_config.json missing)")
        if not any((p / w).exists() for w in ("adapter_model.safetensors", "adapter_model.bin")):
            raise UserError(f"{adapter}: the adapter's weights (adapter_model.safetensors) are missing; only its "
                            "configuration is there")
        meta = p / "metadata.json"
        return json.loads(meta.read_text()) if meta.exists() else {}

    def identity(self) -> dict:
        return {"backend": "local", "model": self.model_spec, "model_description": self.model_ref.description,
                "adapter": self.adapter, "adapter_version_id": self.adapter_meta.get("version_id"),
                "adapter_base_model": self.adapter_meta.get("base_model"), "device": self.device, "dtype": self.dtype,
                "prompt": self.renderer.describe(), "call_format": declared_call_format(self.renderer),
                "max_new_tokens": self.max_new_tokens,
                "batch_size": self.batch_size, "decoding": "greedy"}

    def set_max_new_tokens(self, n: int) -> None:
        self.max_new_tokens = n

    def prompt_for(self, example: Example) -> str:
        """The exact text generation starts from (the training renderer's prompt)."""
        return self.renderer.prompt(example)

    def generate(self, examples: list[Example]) -> Iterator[Generation]:
        import torch

        prompts = [(e, self.prompt_for(e)) for e in examples]
        lengths = {e.id: len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for e, p in prompts}
        order = sorted(prompts, key=lambda ep: lengths[ep[0].id])
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            enc = self.tokenizer([p for _, p in batch], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            t0 = time.time()
            with torch.inference_mode():
                out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          eos_token_id=self.stop_ids, pad_token_id=self.tokenizer.pad_token_id)
            dt = time.time() - t0
            new = out[:, enc["input_ids"].shape[1]:]
            per_example = dt / len(batch)
            for (e, _), row in zip(batch, new, strict=True):
                ids = row.tolist()
                n = next((i + 1 for i, t in enumerate(ids) if t in self.stop_ids), len(ids))
                # Keep special tokens: some models write <tool_call> as one; drop only the stop token itself.
                body = ids[: n - 1] if n and ids[n - 1] in self.stop_ids else ids[:n]
                text = self.tokenizer.decode(body, skip_special_tokens=False)
                self._gen_tokens += n
                stopped = bool(n) and ids[n - 1] in self.stop_ids
                yield Generation(id=e.id, output=text, latency_s=round(per_example, 4),
                                 finish_reason="stop" if stopped else "length",
                                 prompt_tokens=lengths[e.id], completion_tokens=n)
            self._n += len(batch)
            self._time += dt

    def stats(self) -> dict:
        return {"examples": self._n, "generated_tokens": self._gen_tokens, "generation_s": round(self._time, 2),
                "examples_per_s": round(self._n / self._time, 3) if self._time else None,
                "generated_tokens_per_s": round(self._gen_tokens / self._time, 1) if self._time else None,
                "load_s": self.load_s}

    def close(self) -> None:
        del self.model
