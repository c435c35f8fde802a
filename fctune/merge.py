"""Merge a LoRA adapter into its base model and save a standalone model folder (safetensors + tokenizer)
that ``from_pretrained`` and vLLM load directly.

    python -m fctune.merge --adapter paper_approach/adapters/phi --output paper_approach/merged/phi
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from fctune.config import now_iso
from fctune.errors import UserError
from fctune.io import write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class MergeConfig:
    """Merge a LoRA adapter into its base model and save a standalone model folder."""

    adapter: str = field(default="", metadata={"help": "adapter folder (with adapter_config.json, metadata.json)"})
    output: str = field(default="", metadata={"help": "folder for the merged model"})
    base_model: str | None = field(default=None, metadata={
        "help": "base model spec (default: the one recorded in the adapter's metadata.json)"})
    dtype: str = field(default="auto", metadata={"help": "saved weight dtype", "choices": ["auto", "bf16", "fp16",
                                                                                          "fp32"]})


def adapter_base_model(adapter_dir: Path) -> str:
    meta = adapter_dir / "metadata.json"
    if meta.exists():
        return json.loads(meta.read_text())["base_model"]
    cfg = adapter_dir / "adapter_config.json"
    if cfg.exists():
        return json.loads(cfg.read_text())["base_model_name_or_path"]
    raise UserError(f"{adapter_dir}: no metadata.json or adapter_config.json: not an adapter folder")


def merge(cfg: MergeConfig) -> dict:
    import torch
    from peft import PeftModel

    from fctune.models import load_causal_lm, load_tokenizer

    if not cfg.adapter or not cfg.output:
        raise UserError("--adapter and --output are required")
    adapter = Path(cfg.adapter)
    if not (adapter / "adapter_config.json").exists():
        raise UserError(f"{adapter}: adapter_config.json not found")
    base = cfg.base_model or adapter_base_model(adapter)
    dtype = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[cfg.dtype]
    model = load_causal_lm(base, dtype=dtype or torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    if dtype is not None:
        merged = merged.to(dtype)
    out = Path(cfg.output)
    merged.save_pretrained(out, safe_serialization=True)
    load_tokenizer(str(adapter) if (adapter / "tokenizer_config.json").exists() else base).save_pretrained(out)
    info = {"merged_at": now_iso(), "adapter": str(adapter), "base_model": base, "output": str(out)}
    meta = adapter / "metadata.json"
    if meta.exists():
        info["adapter_version_id"] = json.loads(meta.read_text()).get("version_id")
    write_json_atomic(out / "fctune_merge.json", info)
    log.info("merged %s into %s -> %s", adapter, base, out)
    return info


def main(argv=None) -> int:
    from fctune.cli import run_script

    return run_script(MergeConfig, merge, argv, summary=lambda i: f"merged model written to {i['output']}")


if __name__ == "__main__":
    raise SystemExit(main())
