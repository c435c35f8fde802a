"""Self-distillation: training targets the base model already writes, so fine-tuning keeps what the base could do.

Why: a fine-tune that learns templated requests by heart forgets single calls its base could make (RESULTS.md:
every recipe tried lost points on BFCL simple and multiple). The usual remedy is to train on the base model's own
correct answers: where the base, answering a training prompt greedily, already makes the gold call (the lenient
reading: any shape it writes), the row's target becomes the base's own call, argument values as the base wrote them,
and training renders it in the declared call format like any other; everywhere else (wrong answers, no-call,
clarify and JSON rows) the gold target stays.

    fctune distill --model qwen2.5-coder-0.5b-instruct --train-file paper_approach/datasets/hermes_train.jsonl \\
        --output-dir paper_approach/datasets_distilled

The base's answers are written as they come (``distill_predictions.jsonl``) and a rerun resumes them; the split is
written beside the source's other files with ``dataset_stats.json`` extended by ``self_distillation`` (rows answered,
rows whose target is now the base's, by row kind).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from fctune.errors import UserError
from fctune.evaluate import answer_budget, generate_pooled
from fctune.io import OutputLock, read_json, sha256_file, write_json_atomic
from fctune.schema import Expected, ToolCall, read_examples, write_examples
from fctune.score import score_example
from fctune.tool_tokens import REPAIRS

log = logging.getLogger(__name__)


@dataclass
class DistillConfig:
    """Answer a training split with the base model; where it makes the gold call, train on its own answer."""

    model: str = field(default="smollm2", metadata={"help": "the base model the adapter will be trained from"})
    train_file: str = field(default="paper_approach/datasets/hermes_train.jsonl", metadata={
        "help": "the training split to distill (val and test splits are copied unchanged)"})
    output_dir: str = field(default="paper_approach/datasets_distilled", metadata={
        "help": "where the distilled split, its dataset_stats.json and the base's answers go"})
    limit: int | None = field(default=None, metadata={"min": 1, "help": "only the first N rows (the rest are left "
                                                                         "out of the output split)"})
    batch_size: int = field(default=8, metadata={"min": 1, "help": "local backend: prompts per generate() call"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    dtype: str = field(default="auto", metadata={"help": "auto, bf16, fp16 or fp32",
                                                 "choices": ["auto", "bf16", "fp16", "fp32"]})
    prompt_format: str = field(default="auto", metadata={
        "help": "the prompt the training will use (auto, native, hermes)", "choices": ["auto", "native", "hermes"]})
    repair_tokens: str = field(default="auto", metadata={
        "help": "as for train and eval: " + "; ".join(f"{k} = {v}" for k, v in REPAIRS.items()),
        "choices": list(REPAIRS)})


def distilled_target(example, output: str | None) -> list[ToolCall] | None:
    """The base's own calls when they are the gold calls in the lenient reading (pure), else None."""
    if example.expected.kind != "tool_calls":
        return None
    v = score_example(example, output)
    if not v.exact_match or not v.predicted_calls:
        return None
    return [ToolCall.from_dict(c) for c in v.predicted_calls]


def distill(cfg: DistillConfig) -> dict:

    src = Path(cfg.train_file)
    if not src.exists():
        raise UserError(f"{src}: split not found (run paper_approach/prepare_hermes_dataset.py first)")
    rows = read_examples(src)[: cfg.limit]
    out = Path(cfg.output_dir)
    if out.resolve() == src.parent.resolve():
        raise UserError(f"--output-dir {out}: the source split's own folder; choose another so both stay")
    out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out, "distill", "self-distillation"):
        return _distill(cfg, src, rows, out)


def _distill(cfg: DistillConfig, src: Path, rows: list, out: Path) -> dict:
    from fctune.backends.local import LocalBackend
    from fctune.config import run_metadata

    asked = [e for e in rows if e.expected.kind == "tool_calls"]
    backend = LocalBackend(cfg.model, None, answer_budget(asked) if asked else 128, cfg.batch_size,
                           cfg.prompt_format, cfg.device, cfg.dtype, repair_tokens=cfg.repair_tokens)
    try:
        ident = {**backend.identity(), "train_file_sha256": sha256_file(src)}
        preds, counts = generate_pooled(backend, [(asked, out / "distill_predictions.jsonl", ident)],
                                   desc="self-distillation")[0]
    finally:
        backend.close()
    by_id = {p["id"]: p for p in preds}
    kept, by_kind = 0, {}
    new_rows = []
    for e in rows:
        p = by_id.get(e.id)
        calls = distilled_target(e, p.get("output")) if p and not p.get("error") else None
        kind = e.metadata.get("row_kind") or e.expected.kind
        stat = by_kind.setdefault(kind, {"rows": 0, "base_answer": 0})
        stat["rows"] += 1
        if calls is not None:
            kept += 1
            stat["base_answer"] += 1
            e.expected = Expected("tool_calls", calls)
            e.metadata = {**e.metadata, "target": "base answer (self-distillation)"}
        new_rows.append(e)
    write_examples(out / src.name, new_rows)
    for other in src.parent.glob("*.jsonl"):  # val and test stay as they are: only training targets change
        if other.name != src.name and not (out / other.name).exists():
            shutil.copyfile(other, out / other.name)
    stats_path = src.parent / "dataset_stats.json"
    stats = read_json(stats_path) if stats_path.exists() else {}
    stats["self_distillation"] = {
        "model": cfg.model, "rows": len(rows), "rows_answered": len(asked), "base_answer_rows": kept,
        "errors": sum(1 for p in preds if p.get("error")), "by_kind": by_kind,
        "resumed_answers": counts["resumed"], "generated_answers": counts["generated"],
        "rule": "a tool-call row whose base answer is the gold call in the lenient reading takes the base's calls as "
                "its target; every other row keeps its gold target",
        "base_identity": {k: ident.get(k) for k in ("model", "model_description", "dtype", "device", "prompt",
                                                      "call_format", "tool_tokens")},
        "run": run_metadata(cfg, [src])}
    write_json_atomic(out / "dataset_stats.json", stats)
    log.info("self-distillation: %d of %d tool-call rows take the base's own answer", kept, len(asked))
    return stats["self_distillation"]


def main(argv=None) -> int:
    """The command line (``fctune distill``)."""
    from fctune.cli import run_script

    return run_script(DistillConfig, distill, argv, summary=lambda s: (
        f"self-distillation: {s['base_answer_rows']} of {s['rows_answered']} tool-call rows take {s['model']}'s own "
        f"answer; split and dataset_stats.json in the output folder"))


if __name__ == "__main__":
    raise SystemExit(main())
