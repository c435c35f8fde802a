#!/usr/bin/env python3
"""Does every trainer block of ``train_throughput.py`` start like a real run? On the CPU, a tiny bf16 model (LoRA
weights in fp32, as on a bf16 GPU model) trained for a few steps by the project's trainer, BLOCKS times on one model,
each block started two ways: as the benchmark did until the 2026-12-01 run (the LoRA weights' values and the
model's ``forward`` put back), and with ``ModelState.restore()`` (also accelerate's mark of a prepared model and
the weights' dtype). A real run builds one Trainer per model, so every block should train as the first does: wrapped
in accelerate's autocast, with the first block's losses. The CPU needs native bf16 (AVX512_BF16 / AMX) for the
trainer's bf16, as fctune train does.

    python benchmarks/trainer_block_state.py --out benchmarks/results/trainer_block_state_cpu.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from train_throughput import ModelState  # the benchmark's own class, beside this file
from trainer_host_cost import VOCAB, tiny_model  # its tiny Llama (16 layers of width 16), beside this file

STEPS, ROWS, SEQ = 6, 12, 32


def put_back_values_and_forward(model, state: ModelState) -> None:
    """The benchmark's restore before the 2026-12-01 run: the LoRA weights' values and the ``forward`` attributes."""
    import torch

    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in state.params:
                p.copy_(state.params[n])
    for m, fwd in state.forwards:
        if fwd is None:
            m.__dict__.pop("forward", None)
        else:
            m.forward = fwd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--blocks", type=int, default=3)
    args = ap.parse_args()

    import torch
    from datasets import Dataset

    from fctune.config import library_versions
    from fctune.train import TrainConfig, _make_trainer, attach_lora, load_transformers, resolved_settings

    work = Path(tempfile.mkdtemp(prefix="block-state-"))
    tiny_model(work / "model")
    cfg = TrainConfig(model=str(work / "model"), lora_r=4, lora_alpha=8, lora_dropout=0.0,
                      per_device_train_batch_size=2, gradient_accumulation_steps=1, max_seq_length=SEQ,
                      learning_rate=5e-2, lr_scheduler_type="constant", warmup_ratio=0.0, max_steps=STEPS,
                      logging_steps=1, save_steps=10**6, val_file=None, seed=0, precision="bf16")
    settings = resolved_settings(cfg, "transformers")  # raises on a CPU without native bf16
    settings["trainable_tokens"] = {"ids": [], "tokens": []}
    g = torch.Generator().manual_seed(2)
    ds = Dataset.from_list([{"input_ids": torch.randint(5, VOCAB, (SEQ,), generator=g).tolist(),
                             "assistant_masks": [1] * SEQ} for _ in range(ROWS)])
    torch.manual_seed(0)
    model, tok = load_transformers(cfg, settings)
    model = attach_lora(model, cfg, settings, "transformers", [])
    state = ModelState(model)
    blocks = []
    for how in ("values_and_forward", "model_state"):
        for i in range(args.blocks):
            drift = None
            if how == "model_state":
                drift = state.restore()
            elif i or blocks:  # the very first block starts from the model as loaded
                put_back_values_and_forward(model, state)
            trainer = _make_trainer(cfg, settings, "transformers", model, tok, ds, None, work / f"{how}{i}")
            trainer.args.shuffle_dataset = False
            trainer.train()
            # accelerate's autocast wrapper is an instance attribute; the model's own forward is its class's
            blocks.append({"restore": how, "block": i, "autocast_wrapped": "forward" in model.__dict__,
                           "losses": [round(h["loss"], 5) for h in trainer.state.log_history if "loss" in h],
                           "drift": drift})
            print(json.dumps(blocks[-1]), flush=True)
    first = blocks[0]["losses"]
    rec = {"what": __doc__.splitlines()[0], "steps": STEPS,
           "model": "trainer_host_cost.tiny_model (16 layers, width 16), bf16, LoRA r 4 (fp32)",
           "trainable_dtypes": sorted({str(p.dtype) for p in model.parameters() if p.requires_grad}),
           "blocks": blocks,
           "like_the_first": {how: [b["losses"] == first for b in blocks if b["restore"] == how]
                              for how in ("values_and_forward", "model_state")},
           "versions": library_versions()}
    Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")
    print(json.dumps(rec["like_the_first"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
