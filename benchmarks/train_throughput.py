#!/usr/bin/env python3
"""Training throughput of three stacks on the same shapes and batch: the project's trainer (fctune.train:
Unsloth model + its SFTTrainer), raw Unsloth, raw transformers + peft. Random weights from real configs.

    python benchmarks/train_throughput.py prepare --dir /tmp/shapes --tokenizer TOKDIR   # random-weight checkpoints
    python benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer TOKDIR --out results.jsonl  # resumes
    python benchmarks/train_throughput.py one --shape llama-3.2-1b --stack unsloth --precision bf16 ...
    python benchmarks/train_throughput.py ablation --shape llama-3.2-1b --precision bf16 --out DIR  # why slower
    python benchmarks/train_throughput.py hostprofile --shape llama-3.2-1b --precision bf16 --out DIR  # host time

Method: LoRA r=16, alpha=32, dropout 0, on all linear projections; batch 4 x 2048 tokens (the same random rows
every step); gradient checkpointing; AdamW (torch), constant learning rate 2e-4; bf16 compute. The project's
trainer batches as its ``--padding-free auto`` decides: these rows are all 2048 tokens, so padded batches (which
carry no padding here), as the raw loop's; ``--extra trainer+padding_free`` adds Unsloth's padding-free batches.

The project's trainer and raw Unsloth run in ONE process on ONE model (loaded and given LoRA by fctune.train's own
``load_unsloth`` + ``attach_lora``, which are Unsloth's ``from_pretrained`` + ``get_peft_model``), in interleaved
blocks: raw loop (without and, since the 2026-12-01 run, with bf16 autocast), trainer with its default
(``step_metrics`` off; on Unsloth, since the 2026-11-30 run, the model's own fused loss), trainer with
``--step-metrics`` (TRL's loss head and its per-step metrics), then again,
``ROUNDS`` times (since the 2026-11-30 run the order turns by one each round); each block starts from the same
LoRA weights and optimizer state (fresh), so the blocks' loss curves are comparable step by step and a drift of
the machine falls on every stack alike. Since the 2026-12-01 run a block starts from the model exactly as loaded
(``ModelState``: before it, every trainer block after a process's first ran without accelerate's autocast).
A block is ``WARMUP`` untimed steps then ``TIMED`` timed ones. A raw step is forward + backward + AdamW step, closed by
``torch.cuda.synchronize()``; a trainer step is the time from one step's end to the next (the Trainer's data
loading, clipping, scheduler and callbacks included), also closed by a synchronize (``--sync block``: one
synchronize before and one after the timed steps instead, as in a real run; each step counts as the block's
mean). Raw transformers runs in its own process (importing Unsloth patches transformers for the whole process)
with the same blocks.
Per stack: the median over rounds of each block's median tokens/s, and the spread of the rounds. MFU =
tokens/s x 6 x N / 989e12 (N = base parameters; LoRA backward through frozen weights with recomputation costs about
6N FLOP per token; 989 TFLOP/s = H100 SXM dense bf16 peak, kept for H200 too: same tensor cores).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

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
# "step": the GPU is synchronized after every step and each step timed (per-step medians); "block": only before the
# first and after the last timed step, each step counted as the block's mean. A real run synchronizes no step, so
# host work (the Trainer's data loading and collation) can overlap the GPU's; "step" serializes it (--sync).
SYNC = "step"
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


class ModelState:
    """The model as loaded and given LoRA, so every block starts from it: the trainable weights (values and dtype),
    the ``forward`` attributes each Trainer wraps again (accelerate's autocast, TRL's fused head), and accelerate's
    mark of a prepared model. ``restore()`` puts them back and returns what else differs from the capture (the
    model's instance attributes, trainable dtypes, hooks on the input embeddings), which each record keeps.

    Why the mark: accelerate's ``prepare_model`` wraps ``forward`` in autocast once per model and marks it
    (``_is_accelerate_prepared``); a later Trainer on the same model then skips the wrapping. With only ``forward``
    restored, every trainer block after a process's first ran without autocast, which no real run (one Trainer per
    model) does: on Phi-4-mini bf16 (LoRA weights in fp32) the first block was 18-20% faster than the rest, and its
    loss curve 0.13 apart, in five runs (BENCHMARKS.md). Why the dtype: TRL's SFTTrainer
    casts a quantized model's LoRA weights to bf16 when it is built, so without it a raw block after the first
    trainer trained bf16 weights where a fresh raw run trains fp32 ones."""

    ACCELERATE_MARKS = ("_is_accelerate_prepared", "_original_forward")

    def __init__(self, model):
        self.model = model
        self.params = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        self.modules = [model] + ([model.get_base_model()] if hasattr(model, "get_base_model") else [])
        self.forwards = [(m, m.__dict__.get("forward")) for m in self.modules]
        self.marks = self._marks()

    def _marks(self) -> dict:
        emb = self.model.get_input_embeddings() if hasattr(self.model, "get_input_embeddings") else None
        return {"attrs": {f"{type(m).__name__}.{k}" for m in self.modules for k in m.__dict__},
                "dtypes": {n: str(p.dtype) for n, p in self.model.named_parameters() if p.requires_grad},
                "embedding_hooks": len(emb._forward_hooks) if emb is not None else 0}

    def restore(self) -> list[str]:
        import torch

        with torch.no_grad():
            for n, p in self.model.named_parameters():
                if n in self.params:
                    if p.dtype != self.params[n].dtype:
                        p.data = self.params[n].clone()
                    else:
                        p.copy_(self.params[n])
        for m, fwd in self.forwards:
            for k in self.ACCELERATE_MARKS:
                m.__dict__.pop(k, None)
            if fwd is None:
                m.__dict__.pop("forward", None)
            else:
                m.forward = fwd
        now, was = self._marks(), self.marks
        drift = [f"+{a}" for a in sorted(now["attrs"] - was["attrs"])]
        drift += [f"-{a}" for a in sorted(was["attrs"] - now["attrs"])]
        old = was["dtypes"]
        drift += [f"trainable dtype {c}" for c in sorted({f"{old.get(n)}->{d}" for n, d in now["dtypes"].items()
                                                          if old.get(n) != d})]
        if now["embedding_hooks"] != was["embedding_hooks"]:
            drift.append(f"input embedding hooks {was['embedding_hooks']}->{now['embedding_hooks']}")
        return drift


def _raw_block(model, ids, autocast=False, mask=False, trl_head=False, clip=False, fused=False,
               batch=None, marks=False, num_items=False, probe=None) -> tuple[list[float], list[float]]:
    """WARMUP + TIMED plain steps; returns the timed steps' seconds and every step's loss (read after the block).
    The options add one thing the Trainer does (ablation mode): bf16 autocast around the forward, an all-ones
    attention mask, TRL's fused loss head (entropy and top-1 included, as SFTTrainer asks) instead of the model's
    own loss, gradient-norm clipping at 1.0, torch's fused AdamW (one kernel for all parameters), or the Trainer's
    own batch (``batch``: the same rows as the collator made them; under Unsloth, padding-free: one row of 4 x 2048
    tokens with position ids and sequence lengths); or what a Trainer's batch carries under Unsloth: new tensors
    every step, the input ids and an all-ones attention mask marked for torch.compile as Unsloth's
    ``get_batch_samples`` marks them (batch dimension static, sequence dimension dynamic: ``marks``), and the
    batch's label-token count as a device tensor for the loss (``num_items``: ``num_items_in_batch``).
    ``probe`` (hostprofile mode) is started with the first timed step and stopped after the last."""
    import contextlib

    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, **({"fused": True} if fused else {}))
    kw = {"attention_mask": torch.ones_like(ids)} if mask else {}
    if batch is not None:
        kw.update({k: v for k, v in batch.items() if k != "input_ids"})
        ids = batch["input_ids"]
    if trl_head:
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(model.get_base_model(), outputs=("log_probs", "entropy", "is_top1"))
        kw["fused_lm_head"] = True
    times, losses = [], []
    if hasattr(model, "for_training"):  # Unsloth's model: its training mode arms its (offloaded) checkpointing,
        model.for_training()            # which the Trainer path gets; a bare model.train() left it off
    else:
        model.train()
    per_step = SYNC == "step"
    for step in range(WARMUP + TIMED):
        if per_step or step == WARMUP:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        if probe and step == WARMUP:
            probe.start()
        step_kw = {"input_ids": ids, "labels": ids, **kw}
        if marks:  # the raw loop's one tensor reused every step is unmarked; a Trainer's are new and marked
            step_kw = {k: v.clone() for k, v in step_kw.items()}
            step_kw.setdefault("attention_mask", torch.ones_like(ids))
            for name in ("input_ids", "attention_mask"):
                torch._dynamo.mark_static(step_kw[name], 0)
                torch._dynamo.mark_dynamic(step_kw[name], 1)
        if num_items:  # the Trainer's count: label tokens after the shift (none is -100 here)
            step_kw["num_items_in_batch"] = (step_kw["labels"][..., 1:] != -100).sum()
        with torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
            loss = model(**step_kw).loss
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if per_step and step >= WARMUP:
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        losses.append(loss.detach())
    if probe:
        probe.stop()
    if not per_step:
        torch.cuda.synchronize()
        times = [(time.perf_counter() - t0) / TIMED] * TIMED
    return times, [round(float(x), 5) for x in losses]


class GcPauses:
    """A probe that counts Python's garbage collections during the timed steps (``gc.callbacks``): how many of each
    generation and how long they held the host, which a launch-bound step (the 1B shape) cannot hide. ``summary``
    after ``stop``."""

    def __init__(self):
        self.summary, self._began, self._counts, self._ms = None, None, [0, 0, 0], 0.0

    def _callback(self, phase, info):
        if phase == "start":
            self._began = time.perf_counter()
        elif self._began is not None:
            self._ms += 1000 * (time.perf_counter() - self._began)
            self._counts[info["generation"]] += 1
            self._began = None

    def start(self):
        gc.callbacks.append(self._callback)

    def stop(self):
        gc.callbacks.remove(self._callback)
        self.summary = {"collections_by_generation": self._counts, "ms": round(self._ms, 1)}


def _trainer_block(cfg, settings, model, tok, ds, tweaks=None, seen=None, probe=None,
                   **options) -> tuple[list[float], list[float]]:
    """The project's trainer (fctune.train._make_trainer) for WARMUP + TIMED steps on the same rows. ``tweaks``
    (ablation mode) changes one thing: "no_clip" (max_grad_norm 0), "no_amp" (no autocast around the forward),
    "model_loss" (the model's own loss, the default on Unsloth since the 2026-11-30 run, as with trainable token
    rows), "trl_head" (TRL's fused loss head, the quiet one, the default before), "stock_steps"
    (the stock Trainer's steps, which walk the whole model three times a step: ``lean_steps = False``),
    "loader_worker" (the batches collated in one data-loader worker process instead of between steps), "list_rows"
    (the rows read as Python lists, not numpy arrays), "no_prefetch" (each step's batches made between steps, not
    on fctune.train.PrefetchedBatches' thread), "fused_adamw" (torch's fused AdamW, ``adamw_torch_fused``, instead
    of the foreach one);
    ``options`` replace TrainConfig fields (``padding_free``, ``step_metrics``); ``seen`` gets the first batch
    (shapes, and its tensors) and the trainer's classes; ``probe`` (hostprofile mode) is started when the warm-up
    ends and stopped after the last timed step."""
    import dataclasses

    import torch
    from transformers import TrainerCallback

    from fctune.train import _make_trainer

    times, losses, marks = [], [], []

    per_step = SYNC == "step"

    class Timer(TrainerCallback):  # a step's time: from the previous step's end (its batch's loading included)
        def on_step_begin(self, args, state, control, **kw):
            if not marks and per_step:
                torch.cuda.synchronize()
                marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            if probe and state.global_step == WARMUP + TIMED:
                probe.stop()
            if per_step or state.global_step in (WARMUP, WARMUP + TIMED):  # block: the warm-up's end, the last
                torch.cuda.synchronize()
                marks.append(time.perf_counter())
            if probe and state.global_step == WARMUP:
                probe.start()

    cfg = dataclasses.replace(cfg, max_steps=WARMUP + TIMED, **options)
    tweaks = tweaks or ()
    import fctune.train as fctune_train

    choose_class = fctune_train.sft_trainer_class
    if "model_loss" in tweaks:  # the model's own loss (Unsloth's fused cross-entropy) instead of TRL's loss head
        fctune_train.sft_trainer_class = lambda model_loss=False, step_metrics=False: choose_class(True, step_metrics)
    if "trl_head" in tweaks:  # TRL's fused loss head, nothing read back (Unsloth's default until the 2026-11-30 run)
        fctune_train.sft_trainer_class = lambda model_loss=False, step_metrics=False: choose_class(False, False)
    settings = dict(settings)
    if "fused_adamw" in tweaks:
        settings["optim"] = "adamw_torch_fused"
    try:
        trainer = _make_trainer(cfg, settings, "unsloth", model, tok, ds, None, Path("/tmp/fctune-bench-ckpt"))
    finally:
        fctune_train.sft_trainer_class = choose_class
    trainer.add_callback(Timer())
    trainer.args.shuffle_dataset = False
    step_fn = trainer.training_step

    def training_step(*a, **kw):  # keeps each step's loss on the device: no extra read-back inside the block
        loss = step_fn(*a, **kw)
        losses.append(loss.detach())
        return loss

    trainer.training_step = training_step
    if "no_clip" in tweaks:
        trainer.args.max_grad_norm = 0.0
    if "no_amp" in tweaks:  # accelerate wraps the forward in autocast when it prepares the model
        trainer.accelerator.native_amp = False
    if "stock_steps" in tweaks:
        trainer.lean_steps = False
    if "list_rows" in tweaks:  # the rows read as Python lists, as before the 2026-11-30 run (numpy_rows)
        trainer.numpy_rows = False
    if "no_prefetch" in tweaks:  # as before the 2026-12-01 run
        trainer.prefetch_batches = False
    if "loader_worker" in tweaks:  # read before the data loader is built, in train()
        trainer.args.dataloader_num_workers = 1
    collate = trainer.data_collator

    def collator(rows):
        batch = collate(rows)
        if seen is not None and "batch" not in seen:
            seen["batch"] = {k: list(v.shape) for k, v in batch.items() if hasattr(v, "shape")}
            seen["tensors"] = {k: v.clone() for k, v in batch.items() if hasattr(v, "clone")}
        return batch

    trainer.data_collator = collator
    if seen is not None:
        seen["trainer_mro"] = [f"{c.__module__}.{c.__qualname__}" for c in type(trainer).__mro__][:6]
        seen["max_grad_norm"] = trainer.args.max_grad_norm
        seen["mixed_precision"] = str(trainer.accelerator.mixed_precision)
    trainer.train()
    times = ([b - a for a, b in zip(marks[:-1], marks[1:], strict=True)][WARMUP:] if per_step
             else [(marks[1] - marks[0]) / TIMED] * TIMED)
    return times, [round(float(x), 5) for x in losses]


def _load_paired(path: Path, precision: str):
    """fctune.train's own loading and LoRA on one shape, a fixed random batch, and the same rows as a dataset."""
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
    return cfg, settings, model, tok, ids, ds


def run_paired(path: Path, precision: str, variants: dict | None = None, loaded: tuple | None = None,
               batch_shapes: dict | None = None, gc_rounds: dict | None = None, drift: dict | None = None,
               on_round=None) -> dict:
    """Raw Unsloth and the project's trainer (step metrics off and on) on one model, interleaved (module doc).
    ``variants`` (ablation mode) maps a name to raw-loop options ({"raw": {...}}) or trainer options
    ({"trainer": {...}, "tweaks": [...]}); ``batch_shapes`` gets each trainer variant's batch layout (padded rows
    or one padding-free row) from its first block, ``gc_rounds`` each block's garbage collections in its timed steps
    (GcPauses), ``drift`` what each block found changed from the loaded model beyond what ModelState restores;
    ``on_round`` is called with the blocks so far after each complete round (one block of every variant).
    """
    import torch

    cfg, settings, model, tok, ids, ds = loaded or _load_paired(path, precision)
    variants = variants or PAIRED
    state = ModelState(model)
    seen_batch = None
    if any(v.get("trainer_batch") for v in variants.values()):  # the collator's batch, made once, untimed
        seen = {}
        _trainer_block(cfg, settings, model, tok, ds, seen=seen)
        seen_batch = {k: v.cuda() for k, v in seen["tensors"].items()}  # the collator's output is still on the CPU
    blocks = {stack: [] for stack in variants}
    names = list(variants)
    for r in range(ROUNDS):
        # the order turns by one each round, so no variant always runs right after the same one (a block after
        # another variant's freed optimizer and trainer objects may start differently) — with as many rounds as
        # variants, each runs once in every position
        for stack in names[r % len(names):] + names[:r % len(names)]:
            v = variants[stack]
            changed = state.restore()
            if drift is not None:
                drift.setdefault(stack, []).append(changed)
            torch.cuda.synchronize()
            pauses = GcPauses()
            if "raw" in v:
                batch = seen_batch if v.get("trainer_batch") else None
                blocks[stack].append(_raw_block(model, ids, batch=batch, probe=pauses, **v["raw"]))
            else:
                seen = {} if r == 0 and batch_shapes is not None else None
                blocks[stack].append(_trainer_block(cfg, settings, model, tok, ds, tweaks=v.get("tweaks"),
                                                    seen=seen, probe=pauses, **v["trainer"]))
                if seen is not None:
                    batch_shapes[stack] = seen.get("batch")
            if gc_rounds is not None:
                gc_rounds.setdefault(stack, []).append(pauses.summary)
        if on_round is not None:
            on_round(blocks)
    return blocks


ABLATION = {  # what the Trainer does that the raw loop does not, one thing at a time (both directions)
    "raw": {"raw": {}},
    "raw+autocast": {"raw": {"autocast": True}},
    "raw+attention_mask": {"raw": {"mask": True}},
    "raw+trl_head": {"raw": {"trl_head": True}},
    "raw+clip": {"raw": {"clip": True}},
    "trainer": {"trainer": {}},
    "trainer-clip": {"trainer": {}, "tweaks": ["no_clip"]},
    "trainer-autocast": {"trainer": {}, "tweaks": ["no_amp"]},
    # padded batches / Unsloth's padding-free ones (one row of 4 x 2048 with position ids): since fctune's auto rule
    # pads rows that need no padding (these), "trainer" is the first; before it, it was the second. (A 2026-11-30
    # run measured "trainer-padding_free" by switching Unsloth's automatic padding-free off, which leaves TRL's
    # padded batches, as padding_free=false does.)
    "trainer-padding_free": {"trainer": {"padding_free": "false"}},
    "trainer+padding_free": {"trainer": {"padding_free": "true"}},
    "trainer+model_loss": {"trainer": {}, "tweaks": ["model_loss"]},  # the default since the 2026-11-30 run
    "trainer+trl_head": {"trainer": {}, "tweaks": ["trl_head"]},
    # the stock Trainer's per-step walks over the model (model.train(), the FLOP count, clipping over every
    # parameter), which the project's trainer skips since the 2026-11-30 run; and collation off the step's thread
    "trainer-lean": {"trainer": {}, "tweaks": ["stock_steps"]},
    "trainer+loader_worker": {"trainer": {}, "tweaks": ["loader_worker"]},
    # the rows' tokens read as Python lists, which TRL's collator turns into tensors one int at a time (the default
    # until the 2026-11-30 run, whose GPU-idle trace found the GPU waiting 4-6 ms a step for it)
    "trainer-numpy_rows": {"trainer": {}, "tweaks": ["list_rows"]},
    "raw+trainer_batch": {"raw": {}, "trainer_batch": True},
    # what a Trainer's batch carries under Unsloth that the raw loop's does not (2026-12-01, read from
    # unsloth_zoo.loss_utils._unsloth_get_batch_samples; not yet run): new tensors each step with torch.compile's
    # dynamic-sequence marks, and the label-token count passed to the loss; with autocast, as the trainer runs
    "raw+autocast+batch_marks": {"raw": {"autocast": True, "marks": True}},
    "raw+autocast+num_items": {"raw": {"autocast": True, "num_items": True}},
    # the two waits the 2026-11-30 run's GPU-idle trace left (a step's batch, the optimizer's host time): the next
    # step's batches made on a thread while the GPU runs (the default since the 2026-12-01 run, whose runs measured
    # it as "trainer+prefetch"), and one fused AdamW kernel (raw loop too; mixed in the 2026-12-01 run, not taken)
    "trainer-prefetch": {"trainer": {}, "tweaks": ["no_prefetch"]},
    "trainer+fused_adamw": {"trainer": {}, "tweaks": ["fused_adamw"]},
    "raw+fused_adamw": {"raw": {"fused": True}},
}

# raw Unsloth is timed with and without bf16 autocast: every Trainer run autocasts (accelerate, --bf16), so the raw
# loop with autocast is the like-for-like baseline; where a model's LoRA weights are fp32 (Phi-4-mini bf16) the raw
# loop without it trains them in fp32 and is 16% slower (2026-12-01). "unsloth" keeps its name (every
# earlier record's baseline).
PAIRED = {"unsloth": ABLATION["raw"], "raw+autocast": ABLATION["raw+autocast"], "fctune": ABLATION["trainer"],
          "fctune+step_metrics": {"trainer": {"step_metrics": True}}}
BASELINES = ("unsloth", "raw+autocast")  # each record's tokens/s is also given as a ratio to these (same run)


def _profiles(args, out: Path, loaded: tuple, state: ModelState, seen: dict) -> None:
    """torch.profiler over one raw block and one trainer block (operator tables by CPU and by GPU time), cProfile
    over one trainer block (Python functions by cumulative time); ``seen`` gets the trainer's batch and classes."""
    import cProfile
    import pstats

    from torch.profiler import ProfilerActivity, profile

    cfg, settings, model, tok, ids, ds = loaded
    state.restore()
    prof_raw = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    with prof_raw:
        _raw_block(model, ids)
    prof_tr = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    state.restore()
    with prof_tr:
        _trainer_block(cfg, settings, model, tok, ds, seen=seen)
    state.restore()
    seen.pop("tensors", None)
    for name, prof in (("raw", prof_raw), ("trainer", prof_tr)):
        ka = prof.key_averages()
        (out / f"profile_{name}_{args.shape}_{args.precision}.txt").write_text(
            ka.table(sort_by="self_cpu_time_total", row_limit=45) + "\n\n"
            + ka.table(sort_by="self_device_time_total", row_limit=30))
    pr = cProfile.Profile()
    pr.enable()
    _trainer_block(cfg, settings, model, tok, ds)
    pr.disable()
    with (out / f"cprofile_trainer_{args.shape}_{args.precision}.txt").open("w") as f:
        pstats.Stats(pr, stream=f).sort_stats("cumulative").print_stats(70)


def ablation(args) -> None:
    """Where the trainer's extra time per step goes: the ABLATION variants interleaved (as ``one``), then
    torch.profiler over one block of the raw loop and one of the trainer (operator tables by CPU and by GPU time)
    and cProfile over one trainer block (Python functions by cumulative time) unless --no-profile. Files in --out
    (a folder)."""
    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = Path(args.dir) / args.shape
    names = args.variants or list(ABLATION)
    loaded = _load_paired(path, args.precision)
    state = ModelState(loaded[2])
    blocks = run_paired(path, args.precision, {n: ABLATION[n] for n in names}, loaded)
    summary = {n: {"tokens_per_s": round(statistics.median(statistics.median(BATCH * SEQ / t for t in times)
                                                           for times, _ in runs)),
                   "step_ms_rounds": [round(1000 * statistics.median(times), 1) for times, _ in runs],
                   "loss_first_round": runs[0][1]} for n, runs in blocks.items()}
    seen = {}
    if not args.no_profile:
        _profiles(args, out, loaded, state, seen)
    rec = {"shape": args.shape, "precision": args.precision, "steps": f"{WARMUP}+{TIMED} x {ROUNDS} rounds",
           "variants": summary, "seen": seen, "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    (out / f"ablation_{args.shape}_{args.precision}.json").write_text(json.dumps(rec, indent=1))
    print(json.dumps({n: (v["tokens_per_s"], v["step_ms_rounds"]) for n, v in summary.items()}), flush=True)


class SyncTrace:
    """A probe that records every host-device synchronization (torch's sync debug mode, which warns at each one)
    with the Python stack that caused it; ``stacks`` counts the distinct stacks."""

    def __init__(self):
        import collections

        self.stacks = collections.Counter()
        self._caught = None

    def start(self):
        import traceback
        import warnings

        import torch

        self._caught = warnings.catch_warnings()
        self._caught.__enter__()
        warnings.simplefilter("always")  # every occurrence, not once per place

        def show(message, category, filename, lineno, file=None, line=None):
            # only torch's "called a synchronizing CUDA operation": other warnings raised meanwhile (a 2026-11-30
            # run counted torch.utils.checkpoint's, 16 a step, and the debug mode's own) are not syncs
            if "synchroniz" in str(message):
                frames = traceback.format_stack()[:-1]  # without this function
                self.stacks["".join(frames[-12:])] += 1

        warnings.showwarning = show
        torch.cuda.set_sync_debug_mode("warn")

    def stop(self):
        import torch

        torch.cuda.set_sync_debug_mode(0)
        self._caught.__exit__(None, None, None)


def idle_gaps(kernels: list[tuple[float, float]], host_ops: list[tuple[float, float, str]], steps: int,
              top: int = 25) -> dict:
    """Where the GPU waits: ``kernels`` are (start, end) of every GPU kernel/copy in µs, ``host_ops`` (start, end,
    name) the host's top-level operations on the same clock. The kernels' union is the busy time; the holes in it
    are idle time, split into launch gaps (< 100 µs: the host launching kernels one by one) and waits (≥ 100 µs),
    and each of the ``top`` longest waits is named by the host operations that overlap it (the host work the GPU
    waited for)."""
    spans = sorted(kernels)
    busy, gaps, cur = 0.0, [], None
    for s, e in spans:
        if cur is None:
            cur = [s, e]
        elif s > cur[1]:
            busy += cur[1] - cur[0]
            gaps.append((cur[1], s))
            cur = [s, e]
        else:
            cur[1] = max(cur[1], e)
    if cur is None:
        return {"kernels": 0}
    busy += cur[1] - cur[0]
    span = cur[1] - spans[0][0]
    small = sum(e - s for s, e in gaps if e - s < 100)
    waits = sorted(((e - s, s, e) for s, e in gaps if e - s >= 100), reverse=True)
    named = []
    for length, s, e in waits[:top]:
        over = sorted(((min(e, he) - max(s, hs), name) for hs, he, name in host_ops if hs < e and he > s),
                      reverse=True)
        named.append({"us": round(length), "host": [f"{n} ({round(o)} µs)" for o, n in over[:4]]})
    per = max(steps, 1) * 1000
    return {"kernels": len(spans), "span_ms_per_step": round(span / per, 2), "busy_ms_per_step": round(busy / per, 2),
            "launch_gaps_ms_per_step": round(small / per, 2),
            "waits_ms_per_step": round(sum(w[0] for w in waits) / per, 2), "waits": len(waits), "longest": named}


class GpuIdle:
    """A probe (torch.profiler, host and GPU activity) whose ``summary`` says how much of the timed steps the GPU
    sat idle and what the host was doing meanwhile (idle_gaps); ``table`` is the profiler's own per-op table."""

    def __init__(self):
        import torch

        self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                       torch.profiler.ProfilerActivity.CUDA])
        self.summary, self.table = None, ""

    def start(self):
        self.prof.start()

    def stop(self):
        from torch.autograd import DeviceType

        self.prof.stop()
        events = self.prof.events()
        kernels = [(e.time_range.start, e.time_range.end) for e in events if e.device_type == DeviceType.CUDA]
        host = [(e.time_range.start, e.time_range.end, e.name) for e in events
                if e.device_type == DeviceType.CPU and e.cpu_parent is None]
        self.summary = idle_gaps(kernels, host, TIMED)
        self.table = self.prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)


# the 2026-11-30 run's question: what the default trainer (the model's own loss, lean steps) still does that the raw
# loop does not — clipping and autocast are the two left
HOSTPROFILE_VARIANTS = ("raw", "trainer", "trainer-clip", "trainer-autocast")


def host_profile(args) -> None:
    """Where a step's host time goes, on the GPU host, for each of --variants (ablation names; default
    HOSTPROFILE_VARIANTS): the timed steps plain, under cProfile (Python functions by cumulative and by own time),
    under torch's sync debug mode (SyncTrace: each synchronization's stack) and under torch.profiler (GpuIdle: how
    long the GPU sat idle a step and what the host was doing then). Files in --out (a folder); a JSON summary on
    stdout.

    The torch.profiler runs come last, after the other runs of every variant: a profiler session can leave CUDA's
    profiling interface (CUPTI) attached, which slows every later kernel launch's host time (pytorch/pytorch#144455).
    Until the 2026-12-01 run each variant ran all four kinds in turn, so every variant after the first was timed
    after a profiler session: the 2026-11-30 run's cProfile texts show the same 6,016 ``torch.mm`` calls taking 0.124 s
    (raw, first), 0.169 s (second) and 0.193 s (third) of host time, as such a leftover would — though the host
    alone moved the same calls between 0.126 and 0.206 s in the 2026-11-30 run, before any profiler ran, so it is
    not shown to be the cause. ``TEARDOWN_CUPTI=1`` (unless set) asks the profiler to detach CUPTI at each session's
    end as well."""
    import cProfile
    import io
    import pstats

    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = Path(args.dir) / args.shape
    loaded = _load_paired(path, args.precision)
    cfg, settings, model, tok, ids, ds = loaded
    state = ModelState(model)

    def run(v, probe):
        if "raw" in v:
            return _raw_block(model, ids, probe=probe, **v["raw"])
        return _trainer_block(cfg, settings, model, tok, ds, probe=probe, tweaks=v.get("tweaks"), **v["trainer"])

    summary = {}
    names = args.variants or HOSTPROFILE_VARIANTS
    runs = [(kind, name) for kind in ("plain", "cprofile", "syncs") for name in names]
    for kind, name in runs + [("gpu_idle", name) for name in names]:  # the profiler last (docstring)
        v = ABLATION[name]
        rec = summary.setdefault(name, {})
        state.restore()
        torch.cuda.synchronize()
        prof = cProfile.Profile()
        profiled = lambda p=prof: SimpleNamespace(start=p.enable, stop=p.disable)  # noqa: E731
        probe = {"plain": lambda: None, "cprofile": profiled, "syncs": SyncTrace,
                 "gpu_idle": GpuIdle}[kind]()  # only the probe this kind uses is made
        times, _ = run(v, probe)
        rec[f"step_ms_{kind}"] = round(1000 * statistics.median(times), 1)
        if kind == "cprofile":
            text = io.StringIO()
            stats = pstats.Stats(prof, stream=text)
            stats.sort_stats("cumulative").print_stats(60)
            stats.sort_stats("tottime").print_stats(40)
            (out / f"cprofile_{name}_{args.shape}_{args.precision}.txt").write_text(text.getvalue())
        if kind == "syncs":
            rec["syncs_per_step"] = round(sum(probe.stacks.values()) / TIMED, 2)
            (out / f"syncs_{name}_{args.shape}_{args.precision}.json").write_text(json.dumps(
                [{"count": n, "stack": st} for st, n in probe.stacks.most_common()], indent=1))
        if kind == "gpu_idle":
            rec["gpu_idle"] = {k: x for k, x in probe.summary.items() if k != "longest"}
            (out / f"gpu_idle_{name}_{args.shape}_{args.precision}.json").write_text(json.dumps(probe.summary,
                                                                                              indent=1))
            (out / f"torchprof_{name}_{args.shape}_{args.precision}.txt").write_text(probe.table)
    rec = {"shape": args.shape, "precision": args.precision, "steps_timed": TIMED, "sync": SYNC, "runs": summary,
           "order": "plain, cProfile and sync-trace runs of every variant in turn, then the torch.profiler runs",
           "TEARDOWN_CUPTI": os.environ.get("TEARDOWN_CUPTI"),
           "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    (out / f"hostprofile_{args.shape}_{args.precision}.json").write_text(json.dumps(rec, indent=1))
    print(json.dumps(rec), flush=True)


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
    state = ModelState(model)
    blocks = []
    for _ in range(ROUNDS):
        state.restore()
        blocks.append(_raw_block(model, ids))
    return {"transformers": blocks}


def one(args) -> list[dict]:
    """One process: the stacks of one shape and precision, one record per stack."""
    import torch

    path = Path(args.dir) / args.shape
    torch.cuda.reset_peak_memory_stats()
    batch_shapes = {}  # the trainer variants' batch layouts, so a record says which batches it timed
    gc_rounds = {}  # each block's garbage collections during its timed steps
    drift = {}  # what each block found changed in the model beyond what ModelState restores (none expected)
    n = int((path / "n_params.txt").read_text())

    def records(blocks: dict) -> list[dict]:
        return _records(args, n, blocks, batch_shapes, gc_rounds, drift)

    def show_round(blocks: dict) -> None:
        # every complete round's records so far, so a run stopped by the budget keeps the rounds it finished ("all"
        # reads the last of these lines; three of the 2026-12-01 run's five device calls lost whole runs)
        print("ROUND " + json.dumps(records(blocks)), flush=True)

    if args.stack == "unsloth":  # the paired stacks, plus any ablation variants asked for (--extra)
        blocks = run_paired(path, args.precision, {**PAIRED, **{name: ABLATION[name] for name in args.extra}},
                            batch_shapes=batch_shapes, gc_rounds=gc_rounds, drift=drift, on_round=show_round)
    else:
        blocks = run_transformers(path, args.precision)
    return records(blocks)


def _records(args, n: int, blocks: dict, batch_shapes: dict, gc_rounds: dict, drift: dict) -> list[dict]:
    """One record per stack from its blocks (tokens/s per round, their median, loss curves, what changed)."""
    import torch

    from fctune.config import library_versions

    out = []
    for stack, runs in blocks.items():
        per_round = [statistics.median(BATCH * SEQ / t for t in times) for times, _ in runs]
        med = statistics.median(per_round)
        out.append({"shape": args.shape, "stack": stack, "precision": args.precision, "params": n,
                    "tokens_per_s": round(med), "tokens_per_s_rounds": [round(x) for x in per_round],
                    "rounds": len(runs), "steps_timed_per_round": TIMED, "warmup_per_round": WARMUP, "sync": SYNC,
                    "order": "variants rotated by one each round",
                    "loss_curves": [losses for _, losses in runs], "batch": batch_shapes.get(stack),
                    "gc_rounds": gc_rounds.get(stack), "state_drift": drift.get(stack),
                    "peak_gib_process": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                    "mfu": round(med * 6 * n / PEAK_FLOPS, 4), "gpu": torch.cuda.get_device_name(0),
                    "torch": torch.__version__, "cuda": torch.version.cuda, "versions": library_versions()})
    rates = {r["stack"]: r["tokens_per_s"] for r in out}
    for r in out:  # the goal's ratio, against both raw loops of the same process
        r["ratio_to"] = {b: round(r["tokens_per_s"] / rates[b], 3) for b in BASELINES if rates.get(b)}
    return out


def _stopped_records(output, shape: str, stack: str, precision: str, why: str) -> list[dict]:
    """What a configuration that did not finish leaves (``why``: the budget ran out, or the error that ended it):
    the records of its last complete round, each marked ``partial``, or one error record when no round finished.
    ``output`` is the child's stdout so far (bytes: subprocess.run's TimeoutExpired carries it undecoded)."""
    if isinstance(output, bytes):
        output = output.decode("utf-8", "replace")
    last = [x for x in (output or "").splitlines() if x.startswith("ROUND ")]
    if not last:
        return [{"shape": shape, "stack": stack, "precision": precision, "error": why}]
    recs = json.loads(last[-1][6:])
    for rec in recs:
        rec["partial"] = f"{rec['rounds']} of {ROUNDS} rounds, then: {why}"
    return recs


def main() -> int:
    global SYNC, TIMED, ROUNDS  # the options below set the module's timing constants every function reads
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["prepare", "one", "all", "ablation", "hostprofile"])
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
    ap.add_argument("--variants", nargs="*", choices=list(ABLATION), metavar="VARIANT",
                    help=f"ablation/hostprofile: some of {', '.join(ABLATION)}")
    ap.add_argument("--extra", nargs="*", default=[], choices=list(ABLATION), metavar="VARIANT",
                    help="one/all: ablation variants interleaved with the unsloth stack's three (records named so)")
    ap.add_argument("--no-profile", action="store_true", help="ablation: the variants only, no profiles")
    ap.add_argument("--sync", choices=["step", "block"], default="step",
                    help="synchronize the GPU after every step (per-step times) or only around the timed block (SYNC)")
    # a launch-bound shape (Llama-3.2-1B: 8 steps are ~1.2 s) needs longer blocks and more rounds than the host's
    # noise moves; the records say what was used (steps_timed_per_round, rounds)
    ap.add_argument("--timed-steps", type=int, default=TIMED, help=f"timed steps a block (default {TIMED})")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help=f"interleaved rounds (default {ROUNDS})")
    args = ap.parse_args()
    if args.timed_steps < 1 or args.rounds < 1:
        ap.error(f"--timed-steps and --rounds must be at least 1 (got {args.timed_steps} and {args.rounds})")
    SYNC, TIMED, ROUNDS = args.sync, args.timed_steps, args.rounds
    if args.mode == "prepare":
        if not args.tokenizer:
            ap.error("prepare needs --tokenizer DIR")
        prepare(Path(args.dir), args.shapes, args.tokenizer)
        return 0
    if args.mode == "ablation":
        ablation(args)
        return 0
    if args.mode == "hostprofile":
        os.environ.setdefault("TEARDOWN_CUPTI", "1")  # read by the profiler's Kineto; see host_profile's docstring
        host_profile(args)
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
            if "error" not in r and "partial" not in r:  # a partial record's configuration runs again
                done.add((r["shape"], r["stack"], r["precision"], r.get("sync", "step")))
    deadline = time.time() + args.budget_s if args.budget_s else None
    for shape in args.shapes:
        todo = [(p, s) for p in args.precisions for s in args.stacks if (shape, s, p, args.sync) not in done]
        if todo and args.tokenizer:
            prepare(Path(args.dir), [shape], args.tokenizer)
        for precision, stack in todo:
            left = deadline - time.time() if deadline else None
            if left is not None and left < 60:
                print(f"budget spent: {shape} {stack} {precision} and the rest not started", flush=True)
                return 0
            t0 = time.time()
            cmd = [sys.executable, __file__, "one", "--dir", args.dir, "--shape", shape, "--stack", stack,
                   "--precision", precision, "--sync", args.sync, "--timed-steps", str(TIMED), "--rounds", str(ROUNDS),
                   "--extra", *args.extra]
            try:  # subprocess.run kills the child when the budget runs out, so no process keeps the GPU
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=left)
                recs = [json.loads(x[7:]) for x in p.stdout.splitlines() if x.startswith("RESULT ")]
                recs = recs or _stopped_records(p.stdout, shape, stack, precision, (p.stderr or p.stdout)[-1500:])
            except subprocess.TimeoutExpired as stopped:
                recs = _stopped_records(stopped.stdout, shape, stack, precision, "budget spent while running")
            for rec in recs:
                rec["process_wall_s"] = round(time.time() - t0, 1)
                with open(args.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(json.dumps({k: rec.get(k) for k in ("shape", "stack", "precision", "tokens_per_s",
                                                          "tokens_per_s_rounds", "mfu", "error", "partial")})[:600],
                      flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
