#!/usr/bin/env python3
"""The project trainer's own per-step cost, apart from the model's: a tiny model on the CPU, where a step's compute is
a few milliseconds, trained by a raw loop (forward, backward, AdamW step) and by the project's trainer
(``fctune.train._make_trainer``: TRL's SFTTrainer, its data loader and collator, accelerate's wrappers, gradient
clipping, the scheduler, callbacks) on the same rows, with its lean steps (the default) and with the stock Trainer's
(``lean_steps = False``: ``model.train()``, the FLOP count and the clipping each walk the whole model every step).
The model has Llama-3.2-1B's module tree (16 layers, LoRA on all seven projections: 1,337 modules) at a tiny width,
because the walks cost by modules, not by width. The difference per step is host work that a launch-bound model on
a GPU (Llama-3.2-1B: ~162 ms a step) cannot hide. Interleaved rounds, medians.

    python benchmarks/trainer_host_cost.py --out benchmarks/results/trainer_host_cost_cpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

BATCH, SEQ, VOCAB, LAYERS, WARMUP, TIMED, ROUNDS = 4, 64, 512, 16, 3, 30, 5


def tiny_model(folder: Path) -> None:
    """A 16-layer Llama of width 16 with a 512-token vocabulary: Llama-3.2-1B's layers, small enough that a step is
    mostly the Python around it (the tokenizer, SmolLM2's, only pads: the rows are token ids below 512)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from fctune.models import materialize, resolve_model

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(materialize(resolve_model("smollm2")))
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=LAYERS,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=SEQ * 2,
                      tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)


def raw_block(model, ids) -> float:
    """Seconds per step of a plain loop over the same batch."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    marks = []
    for step in range(WARMUP + TIMED):
        if step == WARMUP:
            marks.append(time.perf_counter())
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    marks.append(time.perf_counter())
    return (marks[1] - marks[0]) / TIMED


def trainer_block(cfg, settings, model, tok, ds, workdir: Path, lean: bool = True) -> tuple[float, str]:
    """Seconds per step of the project's trainer (``lean``: its own steps, else the stock Trainer's), timed between
    the warm-up's end and the last step's, and the trainer's class."""
    from transformers import TrainerCallback

    from fctune.train import _make_trainer

    marks = []

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step in (WARMUP, WARMUP + TIMED):
                marks.append(time.perf_counter())

    trainer = _make_trainer(dataclasses.replace(cfg, max_steps=WARMUP + TIMED), dict(settings), "transformers", model,
                            tok, ds, None, workdir)
    trainer.add_callback(Timer())
    trainer.lean_steps = lean
    trainer.train()
    return (marks[1] - marks[0]) / TIMED, type(trainer).__name__


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import torch
    from datasets import Dataset

    from fctune.config import hardware, library_versions
    from fctune.train import TrainConfig, attach_lora, load_transformers, resolved_settings

    torch.set_num_threads(1)  # one core, as the GPU host's Python thread drives its GPU
    work = Path(tempfile.mkdtemp(prefix="host-cost-"))
    tiny_model(work / "model")
    cfg = TrainConfig(model=str(work / "model"), lora_r=4, lora_alpha=8, lora_dropout=0.0,
                      per_device_train_batch_size=BATCH, gradient_accumulation_steps=1, max_seq_length=SEQ,
                      optim="adamw_torch", learning_rate=2e-4, lr_scheduler_type="constant", warmup_ratio=0.0,
                      quantization="none", packing="false", logging_steps=1000, save_steps=10**6, val_file=None,
                      seed=0, precision="fp32")
    settings = resolved_settings(cfg, "transformers")
    settings["trainable_tokens"] = {"ids": [], "tokens": []}
    model, tok = load_transformers(cfg, settings)
    model = attach_lora(model, cfg, settings, "transformers", [])
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    ds = Dataset.from_list([{"input_ids": r, "assistant_masks": [1] * SEQ} for r in ids.tolist()] * (WARMUP + TIMED))
    raw, trainer, stock = [], [], []
    for r in range(ROUNDS):  # interleaved, so a drift of the machine falls on all three
        raw.append(raw_block(model, ids))
        seconds, trainer_class = trainer_block(cfg, settings, model, tok, ds, work / f"ckpt{r}")
        trainer.append(seconds)
        stock.append(trainer_block(cfg, settings, model, tok, ds, work / f"stock{r}", lean=False)[0])
    ms = lambda xs: [round(x * 1000, 2) for x in xs]  # noqa: E731
    med = lambda xs: round(statistics.median(xs) * 1000, 2)  # noqa: E731
    rec = {"batch": [BATCH, SEQ], "layers": LAYERS, "modules": sum(1 for _ in model.modules()),
           "steps_timed": TIMED, "rounds": ROUNDS, "threads": 1, "unit": "ms per step",
           "raw_loop": ms(raw), "project_trainer": ms(trainer), "stock_trainer_steps": ms(stock),
           "medians": {"raw_loop": med(raw), "project_trainer": med(trainer), "stock_trainer_steps": med(stock)},
           "trainer_minus_raw_median": round(med(trainer) - med(raw), 2),
           "stock_minus_raw_median": round(med(stock) - med(raw), 2),
           "trainer_class": trainer_class, "hardware": hardware(), "versions": library_versions()}
    Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")
    print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
