#!/usr/bin/env python3
"""Training throughput of three stacks on the same shapes and batch: the project's trainer (fctune.train:
Unsloth model + its SFTTrainer), raw Unsloth, raw transformers + peft. Random weights from real configs.

    python benchmarks/train_throughput.py prepare --dir /tmp/shapes --tokenizer TOKDIR   # random-weight checkpoints
    python benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer TOKDIR --out results.jsonl  # resumes
    python benchmarks/train_throughput.py one --shape llama-3.2-1b --stack unsloth --precision bf16 ...

Method: LoRA r=16, alpha=32, dropout 0, on all linear projections; batch 4 x 2048 tokens (the same random rows
every step); gradient checkpointing; AdamW (torch), constant learning rate 2e-4; bf16 compute.

The project's trainer and raw Unsloth run in ONE process on ONE model (loaded and given LoRA by fctune.train's own
``load_unsloth`` + ``attach_lora``, which are Unsloth's ``from_pretrained`` + ``get_peft_model``), in interleaved
blocks: raw loop, trainer with its default (``step_metrics`` off), trainer with ``--step-metrics``, then again,
``ROUNDS`` times; each block starts from the same LoRA weights and optimizer state (fresh), so the blocks' loss
curves are comparable step by step and a drift of the machine falls on every stack alike. A block is ``WARMUP``
untimed steps then ``TIMED`` timed ones. A raw step is forward + backward + AdamW step, closed by
``torch.cuda.synchronize()``; a trainer step is the time from one step's end to the next (the Trainer's data
loading, clipping, scheduler and callbacks included), also closed by a synchronize. Raw transformers runs in its
own process (importing Unsloth patches transformers for the whole process) with the same blocks.
Per stack: the median over rounds of each block's median tokens/s, and the spread of the rounds. MFU =
tokens/s x 6 x N / 989e12 (N = base parameters; LoRA backward through frozen weights with recomputation costs about
6N FLOP per token; 989 TFLOP/s = H100 SXM dense bf16 peak, kept for H200 too: same tensor cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHAPES = {
    "llama-3.2-1b": ("llama", dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                   num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                   tie_word_embeddings=True, rope_theta=500000.0, max_position_embeddings=131072)),
    "phi-4-mini": ("phi3", dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=32, num_attention_heads=24,
                                num_key_value_heads=8, vocab_size=200064, tie_word_embeddings=True,
                                partial_rotary_factor=0.75, max_position_embeddings=131072, rope_theta=10000.0,
                                pad_token_id=199999, bos_token_id=199999, eos_token_id=199999)),
    "llama-3.1-8b": ("llama", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                   tie_word_embeddings=False, rope_theta=500000.0, max_position_embeddings=131072)),
}
STACKS = ("unsloth", "transformers")  # "unsloth": raw Unsloth and the project's trainer, paired in one process
PRECISIONS = ("bf16", "4bit")
BATCH, SEQ, WARMUP, TIMED, ROUNDS, LR = 4, 2048, 2, 8, 3, 2e-4
PEAK_FLOPS = 989e12
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0)


def prepare(root: Path, shapes, tokenizer_dir: str) -> None:
    """Random-weight checkpoints of the real configs, each with a tokenizer beside it (the loaders want one; any
    tokenizer whose ids fit the shape's vocabulary will do, since the timed batches are random ids)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    for name in shapes:
        out = root / name
        if len(tok) > SHAPES[name][1]["vocab_size"]:
            raise SystemExit(f"{tokenizer_dir}: {len(tok)} tokens do not fit {name}'s vocabulary")
        tok.save_pretrained(out)
        if (out / "n_params.txt").exists():
            continue
        kind, kw = SHAPES[name]
        cfg = AutoConfig.for_model(kind, **kw)
        t0 = time.time()
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        model.save_pretrained(out)
        n = sum(p.numel() for p in model.parameters())
        (out / "n_params.txt").write_text(str(n))
        print(f"{name}: {n / 1e9:.2f}B params saved in {time.time() - t0:.0f}s", flush=True)
        del model
        torch.cuda.empty_cache()


def _batch(vocab: int):
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, min(vocab, 32000), (BATCH, SEQ), generator=g)
    return ids.cuda()


def _snapshot(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _restore(model, snap: dict) -> None:
    import torch

    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in snap:
                p.copy_(snap[n])


def _raw_block(model, ids) -> tuple[list[float], list[float]]:
    """WARMUP + TIMED plain steps; returns the timed steps' seconds and every step's loss (read after the block)."""
    import torch

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    times, losses = [], []
    model.train()
    for step in range(WARMUP + TIMED):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= WARMUP:
            times.append(time.perf_counter() - t0)
        losses.append(loss.detach())
    return times, [round(float(x), 5) for x in losses]


def _trainer_block(cfg, settings, model, tok, ds, **options) -> tuple[list[float], list[float]]:
    """The project's trainer (fctune.train._make_trainer) for WARMUP + TIMED steps on the same rows."""
    import dataclasses

    import torch
    from transformers import TrainerCallback

    from fctune.train import _make_trainer

    times, losses, marks = [], [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if not marks:
                torch.cuda.synchronize()
                marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            marks.append(time.perf_counter())

    cfg = dataclasses.replace(cfg, max_steps=WARMUP + TIMED, **options)
    trainer = _make_trainer(cfg, dict(settings), "unsloth", model, tok, ds, None, Path("/tmp/fctune-bench-ckpt"))
    trainer.add_callback(Timer())
    trainer.args.shuffle_dataset = False
    step_fn = trainer.training_step

    def training_step(*a, **kw):  # keeps each step's loss on the device: no extra read-back inside the block
        loss = step_fn(*a, **kw)
        losses.append(loss.detach())
        return loss

    trainer.training_step = training_step
    trainer.train()
    times = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)][WARMUP:]
    return times, [round(float(x), 5) for x in losses]


def run_paired(path: Path, precision: str) -> dict:
    """Raw Unsloth and the project's trainer (step metrics off and on) on one model, interleaved (module doc)."""
    import torch
    import unsloth  # noqa: F401 - before transformers/trl, so its patches apply
    from datasets import Dataset

    from fctune.models import ensure_pad_token
    from fctune.train import TrainConfig, attach_lora, load_unsloth, resolved_settings

    cfg = TrainConfig(model=str(path), lora_r=LORA["r"], lora_alpha=LORA["lora_alpha"], lora_dropout=0.0,
                      per_device_train_batch_size=BATCH, gradient_accumulation_steps=1, max_seq_length=SEQ,
                      optim="adamw_torch", learning_rate=LR, lr_scheduler_type="constant", warmup_ratio=0.0,
                      quantization="4bit" if precision == "4bit" else "none", packing="false", logging_steps=1000,
                      save_steps=10**6, val_file=None, seed=0)
    settings = resolved_settings(cfg, "unsloth")
    settings["trainable_tokens"] = {"ids": [], "tokens": []}
    model, tok = load_unsloth(cfg, settings)
    model = attach_lora(model, cfg, settings, "unsloth", [])
    ensure_pad_token(tok)
    ids = _batch(model.config.vocab_size)
    rows = ids.cpu().tolist()
    ds = Dataset.from_list([{"input_ids": r, "assistant_masks": [1] * SEQ} for r in rows] * (WARMUP + TIMED))
    init = _snapshot(model)
    variants = {"unsloth": None, "fctune": {}, "fctune+step_metrics": {"step_metrics": True}}
    blocks = {stack: [] for stack in variants}
    for _ in range(ROUNDS):
        for stack in blocks:
            _restore(model, init)
            torch.cuda.synchronize()
            if stack == "unsloth":
                blocks[stack].append(_raw_block(model, ids))
            else:
                blocks[stack].append(_trainer_block(cfg, settings, model, tok, ds, **variants[stack]))
    return blocks


def run_transformers(path: Path, precision: str) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from fctune.train import TrainConfig, present_targets

    kw = {"dtype": torch.bfloat16, "device_map": {"": 0}}
    if precision == "4bit":
        kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                       bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, **kw)
    if precision == "4bit":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(target_modules=present_targets(model, TrainConfig()),
                                             task_type="CAUSAL_LM", **LORA))
    ids = _batch(model.config.vocab_size)
    init = _snapshot(model)
    blocks = []
    for _ in range(ROUNDS):
        _restore(model, init)
        blocks.append(_raw_block(model, ids))
    return {"transformers": blocks}


def one(args) -> list[dict]:
    """One process: the stacks of one shape and precision, one record per stack."""
    import torch

    from fctune.config import library_versions

    path = Path(args.dir) / args.shape
    torch.cuda.reset_peak_memory_stats()
    blocks = (run_paired if args.stack == "unsloth" else run_transformers)(path, args.precision)
    n = int((path / "n_params.txt").read_text())
    out = []
    for stack, runs in blocks.items():
        per_round = [statistics.median(BATCH * SEQ / t for t in times) for times, _ in runs]
        med = statistics.median(per_round)
        out.append({"shape": args.shape, "stack": stack, "precision": args.precision, "params": n,
                    "tokens_per_s": round(med), "tokens_per_s_rounds": [round(x) for x in per_round],
                    "rounds": len(runs), "steps_timed_per_round": TIMED, "warmup_per_round": WARMUP,
                    "loss_curves": [losses for _, losses in runs],
                    "peak_gib_process": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                    "mfu": round(med * 6 * n / PEAK_FLOPS, 4), "gpu": torch.cuda.get_device_name(0),
                    "torch": torch.__version__, "cuda": torch.version.cuda, "versions": library_versions()})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["prepare", "one", "all"])
    ap.add_argument("--dir", default="/tmp/shapes")
    ap.add_argument("--tokenizer", help="prepare: a tokenizer folder copied beside each shape")
    ap.add_argument("--out", default="benchmarks/results/train_throughput.jsonl")
    ap.add_argument("--shapes", nargs="*", default=list(SHAPES))
    ap.add_argument("--stacks", nargs="*", default=list(STACKS))
    ap.add_argument("--precisions", nargs="*", default=list(PRECISIONS))
    ap.add_argument("--budget-s", type=float, help="all: start no configuration after this many seconds")
    ap.add_argument("--shape")
    ap.add_argument("--stack")
    ap.add_argument("--precision")
    args = ap.parse_args()
    if args.mode == "prepare":
        if not args.tokenizer:
            ap.error("prepare needs --tokenizer DIR")
        prepare(Path(args.dir), args.shapes, args.tokenizer)
        return 0
    if args.mode == "one":
        for rec in one(args):
            print("RESULT " + json.dumps(rec), flush=True)
        return 0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if Path(args.out).exists():
        for line in Path(args.out).read_text().splitlines():
            r = json.loads(line)
            if "error" not in r:
                done.add((r["shape"], r["stack"], r["precision"]))
    deadline = time.time() + args.budget_s if args.budget_s else None
    for shape in args.shapes:
        todo = [(p, s) for p in args.precisions for s in args.stacks if (shape, s, p) not in done]
        if todo and args.tokenizer:
            prepare(Path(args.dir), [shape], args.tokenizer)
        for precision, stack in todo:
            left = deadline - time.time() if deadline else None
            if left is not None and left < 60:
                print(f"budget spent: {shape} {stack} {precision} and the rest not started", flush=True)
                return 0
            t0 = time.time()
            cmd = [sys.executable, __file__, "one", "--dir", args.dir, "--shape", shape, "--stack", stack,
                   "--precision", precision]
            try:  # subprocess.run kills the child when the budget runs out, so no process keeps the GPU
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=left)
                recs = [json.loads(x[7:]) for x in p.stdout.splitlines() if x.startswith("RESULT ")]
                recs = recs or [{"shape": shape, "stack": stack, "precision": precision,
                                 "error": (p.stderr or p.stdout)[-1500:]}]
            except subprocess.TimeoutExpired:
                recs = [{"shape": shape, "stack": stack, "precision": precision,
                         "error": "budget spent while running"}]
            for rec in recs:
                rec["process_wall_s"] = round(time.time() - t0, 1)
                with open(args.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(json.dumps({k: rec.get(k) for k in ("shape", "stack", "precision", "tokens_per_s",
                                                          "tokens_per_s_rounds", "mfu", "error")})[:600], flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
