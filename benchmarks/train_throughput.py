#!/usr/bin/env python3
"""Training throughput of three stacks on the same shapes and batch: the project's trainer (fctune.train:
Unsloth model + TRL SFTTrainer), raw transformers + peft, raw Unsloth. Random weights from real configs.

    python benchmarks/train_throughput.py prepare --dir /tmp/shapes --tokenizer TOKDIR   # random-weight checkpoints
    python benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer TOKDIR --out results.jsonl  # resumes
    python benchmarks/train_throughput.py one --shape llama-3.2-1b --stack unsloth --precision bf16 ...

Method: LoRA r=16, alpha=32, dropout 0, on all linear projections; batch 4 x 2048 tokens; gradient checkpointing;
AdamW (torch); bf16 compute; 3 warm-up steps, then the median (min, max) of 8 timed steps, each closed by
``torch.cuda.synchronize()``. MFU = tokens/s x 6 x N / 989e12 (N = base parameters; LoRA backward through frozen
weights with recomputation costs about 6N FLOP per token; 989 TFLOP/s = H100 SXM dense bf16 peak).
Each configuration runs in its own process: importing Unsloth patches transformers for the whole process.
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
STACKS = ("fctune", "transformers", "unsloth")
PRECISIONS = ("bf16", "4bit")
BATCH, SEQ, WARMUP, TIMED = 4, 2048, 3, 8
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


def _timed_loop(model, params, vocab):
    import torch

    opt = torch.optim.AdamW(params, lr=2e-4)
    ids = _batch(vocab)
    times = []
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
    return times


def run_transformers(path: Path, precision: str):
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
    return _timed_loop(model, [p for p in model.parameters() if p.requires_grad], model.config.vocab_size)


def _unsloth_model(path: Path, precision: str):
    from unsloth import FastLanguageModel

    from fctune.train import TrainConfig, present_targets

    model, tok = FastLanguageModel.from_pretrained(str(path), max_seq_length=SEQ, dtype=None,
                                                   load_in_4bit=precision == "4bit")
    model = FastLanguageModel.get_peft_model(model, target_modules=present_targets(model, TrainConfig()),
                                             bias="none", use_gradient_checkpointing="unsloth", random_state=0, **LORA)
    return model, tok


def run_unsloth(path: Path, precision: str):
    model, _ = _unsloth_model(path, precision)
    return _timed_loop(model, [p for p in model.parameters() if p.requires_grad], model.config.vocab_size)


def run_fctune(path: Path, precision: str):
    """The project's trainer: fctune.train's model loading and SFTTrainer, on fixed 4 x 2048-token rows."""
    import torch
    import unsloth  # noqa: F401
    from datasets import Dataset
    from transformers import TrainerCallback

    from fctune.models import ensure_pad_token
    from fctune.train import TrainConfig, _make_trainer, load_unsloth, resolved_settings

    cfg = TrainConfig(model=str(path), lora_dropout=0.0, per_device_train_batch_size=BATCH,
                      gradient_accumulation_steps=1, max_steps=WARMUP + TIMED, max_seq_length=SEQ, optim="adamw_torch",
                      quantization="4bit" if precision == "4bit" else "none", packing="false", logging_steps=1000,
                      save_steps=10**6, val_file=None)
    settings = resolved_settings(cfg, "unsloth")
    model, tok = load_unsloth(cfg, settings)
    ensure_pad_token(tok)
    ids = _batch(model.config.vocab_size).cpu().tolist()
    ds = Dataset.from_list([{"input_ids": r, "assistant_masks": [1] * SEQ} for r in ids] * (WARMUP + TIMED))
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

    trainer = _make_trainer(cfg, settings, "unsloth", model, tok, ds, None, Path("/tmp/fctune-bench-ckpt"))
    trainer.add_callback(Timer())
    trainer.args.shuffle_dataset = False
    trainer.train()
    return times[WARMUP:]


def one(args) -> dict:
    import torch

    from fctune.config import library_versions

    path = Path(args.dir) / args.shape
    torch.cuda.reset_peak_memory_stats()
    fn = {"transformers": run_transformers, "unsloth": run_unsloth, "fctune": run_fctune}[args.stack]
    times = fn(path, args.precision)
    n = int((path / "n_params.txt").read_text())
    tps = [BATCH * SEQ / t for t in times]
    med = statistics.median(tps)
    return {"shape": args.shape, "stack": args.stack, "precision": args.precision, "params": n,
            "tokens_per_s": round(med), "tokens_per_s_min": round(min(tps)), "tokens_per_s_max": round(max(tps)),
            "steps_timed": len(times), "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "mfu": round(med * 6 * n / PEAK_FLOPS, 4), "gpu": torch.cuda.get_device_name(0),
            "torch": torch.__version__, "cuda": torch.version.cuda, "versions": library_versions()}


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
        print("RESULT " + json.dumps(one(args)), flush=True)
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
                line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
                rec = json.loads(line[7:]) if line else {"shape": shape, "stack": stack, "precision": precision,
                                                         "error": (p.stderr or p.stdout)[-1500:]}
            except subprocess.TimeoutExpired:
                rec = {"shape": shape, "stack": stack, "precision": precision, "error": "budget spent while running"}
            rec["wall_s"] = round(time.time() - t0, 1)
            with open(args.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(json.dumps({k: rec.get(k) for k in ("shape", "stack", "precision", "tokens_per_s", "peak_gib",
                                                      "mfu", "wall_s", "error")})[:600], flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
