"""``fctune repair-tokens``: check a model's tool-call tags and repair untrained ones, by either repair.

The check and the text repair are :mod:`fctune.tool_tokens`, the fitted rows :mod:`fctune.tag_fit`; this command
runs them once and writes what they made: the repaired tokenizer (text), the fitted rows (fit), and for a GGUF the
file llama.cpp then serves, all named in ``repair.json`` beside the resolved config. Evaluation and serving do the
same on their own (``--repair-tokens``) and reuse what is cached here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fctune.tag_fit import FitSettings
from fctune.tool_tokens import REPAIRS, detect_gguf, detect_model, repair_tokenizer, repaired_gguf

_FIT = FitSettings()


@dataclass
class RepairConfig:
    """Check a model's tool-call tags and write the repair: a tokenizer that reads them as text, or fitted rows;
    for a GGUF, the file llama.cpp serves."""

    model: str = field(default="qwen2.5-coder-0.5b-instruct", metadata={
        "help": "hub id, folder, .gguf or a packaged name (default: the offline LLM stand-in)"})
    repair: str = field(default="auto", metadata={"help": "; ".join(f"{k} = {v}" for k, v in REPAIRS.items()),
                                                   "choices": list(REPAIRS)})
    prompt_format: str = field(default="auto", metadata={
        "help": "which prompt's call format to check: the chat template's (native) or the Hermes prompt's",
        "choices": ["auto", "native", "hermes"]})
    output_dir: str = field(default="repaired_tokens", metadata={
        "help": "where repair.json (and, for text, the repaired tokenizer/) go; fitted rows and repaired GGUFs are "
                "cached beside the model conversions ($FCTUNE_CACHE/models) and named in repair.json"})
    fit_train_rows: int = field(default=_FIT.train_rows, metadata={
        "min": 1, "help": "fit: data-engine rows the tag rows are fitted on (evaluation's --repair-tokens fit uses the "
                "defaults of these five; rows fitted with others are in the GGUF named in repair.json)"})
    fit_epochs: int = field(default=_FIT.epochs, metadata={"min": 1, "help": "fit: passes over those rows"})
    fit_lr: float = field(default=_FIT.lr, metadata={"gt": 0, "help": "fit: Adam's learning rate on the tag rows"})
    fit_seed: int = field(default=_FIT.seed, metadata={"help": "fit: seed of the engine rows and their order"})
    fit_targets: str = field(default=_FIT.targets, metadata={
        "help": "fit: the answers fitted on: gold (the engine's) or self (the model's own greedy answers with its "
                "tags fed as text, written back in the declared format)", "choices": ["gold", "self"]})


def repair_tokens(cfg: RepairConfig) -> dict:
    from fctune.config import run_metadata
    from fctune.io import write_json_atomic
    from fctune.models import cache_dir, load_causal_lm, load_tokenizer, resolve_model
    from fctune.parse import declared_call_format
    from fctune.render import PromptRenderer

    ref = resolve_model(cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    renderer = PromptRenderer(tokenizer, cfg.prompt_format)
    fmt = declared_call_format(renderer)
    model = None
    if ref.kind == "gguf":
        check = detect_gguf(ref.location, tokenizer, fmt, cfg.model)
    else:  # the rows are read from the loaded model (on the CPU)
        model = load_causal_lm(cfg.model)
        check = detect_model(model, tokenizer, fmt, cfg.model)
    repaired, info = repair_tokenizer(cfg.repair, tokenizer, check)
    out = Path(cfg.output_dir)
    if info["tags_as_text"]:
        repaired.save_pretrained(out / "tokenizer")
        info["tokenizer"] = str(out / "tokenizer")
        if ref.kind == "gguf":
            path, info["gguf"] = repaired_gguf(ref.location, [check.tags[t] for t in info["tags_as_text"]],
                                               cache_dir() / "models")
            info["gguf_path"] = str(path)
    if info["repair"] == "fit":
        from fctune.tag_fit import fit_dtype, fitted_gguf, fitted_rows

        settings = FitSettings(train_rows=cfg.fit_train_rows, epochs=cfg.fit_epochs, lr=cfg.fit_lr,
                               seed=cfg.fit_seed, targets=cfg.fit_targets)
        rows, info["fitted"] = fitted_rows(lambda: model if model is not None else load_causal_lm(
            cfg.model, dtype=fit_dtype()), tokenizer, check, ref.location, renderer.mode, settings)
        if ref.kind == "gguf":
            path, info["gguf"] = fitted_gguf(ref.location, rows, info["fitted"], cache_dir() / "models")
            info["gguf_path"] = str(path)
    info["model_description"] = ref.description
    write_json_atomic(out / "repair.json", {**info, "run": run_metadata(cfg)})
    return info


def _summary(info: dict) -> str:
    check = info["check"]
    if info["repair"] == "fit":
        f = info["fitted"]
        after = f["held_out_after"]
        return (f"{check['model']}: rows of {', '.join(f['tags'])} fitted ({f['rows_changed']} rows; held-out loss "
                f"{f['held_out_before']['loss']} -> {after['loss']}, tag recall {after['tag_recall']}, false tags "
                f"{after['false_tag_rate']:.2%}); rows in {f['path']}"
                + (f", GGUF {info['gguf_path']}" if info.get("gguf_path") else ""))
    if not info["tags_as_text"]:
        return (f"{check['model']}: nothing repaired ({check['how']}; untrained tags: "
                f"{', '.join(check['untrained']) or 'none'}); see repair.json")
    return (f"{check['model']}: tags {', '.join(info['tags_as_text'])} fed as text; tokenizer in {info['tokenizer']}"
            + (f", GGUF {info['gguf_path']}" if info.get("gguf_path") else ""))


def main(argv=None) -> int:
    """The command line (``fctune repair-tokens``)."""
    from fctune.cli import run_script

    return run_script(RepairConfig, repair_tokens, argv, summary=_summary)


if __name__ == "__main__":
    raise SystemExit(main())
