"""BFCL evaluation: run any backend over BFCL categories and score with the leaderboard-style checker.

Summaries (``<label>_bfcl.json``): per-category accuracy with counts and bootstrap 95% intervals;
``non_live_ast`` = unweighted mean of simple_python, multiple, parallel, parallel_multiple (as the
leaderboard's non-live AST column, Python only); ``live_ast`` = mean over all live_simple / live_multiple /
live_parallel / live_parallel_multiple rows (weighted by count, as the leaderboard); ``hallucination`` =
irrelevance and live_irrelevance accuracy (no call made).

Two readings, side by side: ``accuracy`` (strict: only calls in the model's declared call format are read, as a
leaderboard decoder reads them, and integers in an array of floats are rejected, as the leaderboard's checker does)
and ``accuracy_lenient`` (any recoverable call; such integers accepted). Comparisons use the strict reading.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fctune.bfcl.checker import check_bfcl
from fctune.errors import UserError
from fctune.evaluate import (
    Answered,
    EvalConfig,
    EvalTask,
    default_label,
    predictions_path,
    result_paths,
    run_tasks,
    with_model,
)
from fctune.formats.bfcl import CATEGORIES, LIVE, NON_LIVE, load_category, package_version
from fctune.io import (
    read_json,
    read_jsonl,
    require_folder_or_absent,
    sha256_json,
    write_json_atomic,
    write_jsonl_atomic,
)
from fctune.metrics import bootstrap_ci
from fctune.parse import in_declared_format, parse_tool_calls, rename_calls
from fctune.score import CUT_FINISH_REASONS, index_predictions, require_answers, require_complete

log = logging.getLogger(__name__)
NON_LIVE_AST = ("simple_python", "multiple", "parallel", "parallel_multiple")
LIVE_AST = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")


def score_rows(examples, predictions: list[dict], where: str = "predictions",
               call_format: list[str] | None = None) -> tuple[list[dict], dict]:
    """Verdict per row in both readings (pure scoring over saved outputs): ``valid`` strict (calls only in
    ``call_format``), ``valid_lenient`` any recoverable call; errors are excluded from accuracy. Rows are checked and
    indexed as the suites' are (:func:`fctune.score.index_predictions`)."""
    by_id, issues = index_predictions(predictions, [e.id for e in examples], where)
    details = []
    for e in examples:
        p = by_id.get(e.id)
        if p is None:
            continue
        b = e.metadata["bfcl"]
        row = {"id": e.id, "category": b["category"], "output": p.get("output")}
        if p.get("tool_calls"):
            row["raw_tool_calls"] = p["tool_calls"]
        if p.get("error"):
            row.update(valid=None, error=p["error"])
        else:
            parsed = rename_calls(parse_tool_calls(p.get("output"), p.get("tool_calls"), tool_names=e.tool_names),
                                  p.get("renamed_tools"))  # parsed once, read both ways
            any_calls = [(c.name, c.arguments) for c in parsed.calls]
            calls = any_calls if in_declared_format(parsed.shape, call_format) else []
            err = check_bfcl(b["category"], b["functions"], b["possible_answer"], calls, strict=True)
            err_lenient = check_bfcl(b["category"], b["functions"], b["possible_answer"], any_calls, strict=False)
            if err and p.get("finish_reason") in CUT_FINISH_REASONS:
                err = ("truncated", f"{CUT_FINISH_REASONS[p['finish_reason']]} ({err[0]}: {err[1]})")
            row.update(valid=err is None, error_type=err[0] if err else None, reason=err[1] if err else None,
                       valid_lenient=err_lenient is None, finish_reason=p.get("finish_reason"),
                       calls=[{"name": n, "arguments": a} for n, a in any_calls])
        details.append(row)
    return details, issues


def category_summary(category: str, details: list[dict]) -> dict:
    scored = [d for d in details if d.get("valid") is not None]
    vals = [1.0 if d["valid"] else 0.0 for d in scored]
    lenient = [1.0 if d.get("valid_lenient", d["valid"]) else 0.0 for d in scored]
    return {"category": category, "accuracy": round(sum(vals) / len(vals), 4) if vals else None,
            "accuracy_lenient": round(sum(lenient) / len(lenient), 4) if lenient else None,
            "n_truncated": sum(1 for d in scored if d.get("finish_reason") in CUT_FINISH_REASONS),
            "correct": int(sum(vals)), "total": len(scored), "n_errors": len(details) - len(scored),
            "ci": bootstrap_ci(vals) if vals else None,
            "error_types": dict(Counter(d["error_type"] for d in scored if d.get("error_type")).most_common())}


def overall_summary(per_category: dict) -> dict:
    non_live = [c for c in NON_LIVE_AST if per_category.get(c, {}).get("accuracy") is not None]
    live = [c for c in LIVE_AST if per_category.get(c, {}).get("total")]
    total = sum(per_category[c]["total"] for c in live)
    return {
        "non_live_ast": round(sum(per_category[c]["accuracy"] for c in non_live) / len(non_live), 4) if non_live
        else None,
        "non_live_ast_lenient": round(sum(per_category[c].get("accuracy_lenient", per_category[c]["accuracy"])
                                          for c in non_live) / len(non_live), 4) if non_live else None,
        "non_live_ast_categories": non_live,
        "live_ast": round(sum(per_category[c]["correct"] for c in live) / total, 4) if total else None,
        "live_ast_categories": live,
        "hallucination": {c: per_category[c]["accuracy"] for c in ("irrelevance", "live_irrelevance")
                          if c in per_category},
    }


@dataclass
class BfclConfig(EvalConfig):
    """Evaluate a model on BFCL categories (data from the bfcl-eval package; scoring is fctune's)."""

    categories: list[str] = field(default_factory=lambda: list(NON_LIVE), metadata={
        "help": f"BFCL categories ({', '.join(CATEGORIES)}); 'non_live', 'live' and 'all' are shorthands"})
    sample: int | None = field(default=None, metadata={
        "min": 1, "help": "a seeded random subset of N rows per category"})
    seed: int = field(default=0, metadata={"help": "seed for --sample"})


def expand_categories(cats: list[str]) -> list[str]:
    out = []
    for c in cats:
        out += list(NON_LIVE) if c == "non_live" else list(LIVE) if c == "live" else list(CATEGORIES) if c == "all" \
            else [c]
    bad = [c for c in out if c not in CATEGORIES]
    if bad:
        raise UserError(f"unknown BFCL categories {bad}; known: {', '.join(CATEGORIES)}")
    return list(dict.fromkeys(out))


def run_bfcl(cfg: BfclConfig) -> dict:
    """Answer each category through the suites' loop (:func:`fctune.evaluate.run_tasks`) and score it with the
    leaderboard-style checker; one summary and one details file over all categories."""
    from fctune.config import run_metadata

    cfg = with_model(cfg)
    cats = expand_categories(cfg.categories)
    label = default_label(cfg)
    per_category, all_details = {}, []
    t_start = time.time()

    def tasks():
        for cat in cats:
            examples = load_category(cat, limit=cfg.limit, sample=cfg.sample, seed=cfg.seed)
            # the budget is sized from the whole category; the identity is the rows asked for (a sample or a prefix)
            yield EvalTask(f"bfcl_{cat}", examples, load_category(cat), {"rows": sha256_json([e.id for e in examples])})

    def score(a: Answered) -> None:
        cat = a.task.name.removeprefix("bfcl_")
        details, _ = score_rows(a.task.examples, a.predictions, where=str(a.pred_path),
                                call_format=a.identity.get("call_format"))
        per_category[cat] = {**category_summary(cat, details), "max_new_tokens": a.max_new_tokens,
                             "wall_s": a.throughput["wall_s"], "resumed": a.throughput["resumed"],
                             "torn_lines": a.throughput["torn_lines"], "generated": a.throughput["generated"],
                             # answered in one pass with these categories (--pool-tasks): wall_s is a share by rows
                             "pooled_with": [n.removeprefix("bfcl_") for n in a.throughput["pooled_with"]]
                             if a.throughput.get("pooled_with") else None}
        all_details.extend(details)
        log.info("%s BFCL %s: %s/%s = %s", label, cat, per_category[cat]["correct"], per_category[cat]["total"],
                 per_category[cat]["accuracy"])

    ident, stats = run_tasks(cfg, label, tasks(), score)
    summary = {"model": {"label": label, "approach": cfg.approach, "role": cfg.role, "family": cfg.family, **ident},
               "suite": "bfcl", "bfcl_eval_version": package_version(), "categories": per_category,
               **overall_summary(per_category), "sample": cfg.sample, "limit": cfg.limit,
               "wall_s": round(time.time() - t_start, 1), "throughput": stats,
               "run": run_metadata(cfg)}
    summary_path, details_path = result_paths(cfg.results_dir, label, "bfcl")
    write_jsonl_atomic(details_path, all_details)
    write_json_atomic(summary_path, summary)
    return summary


def rescore(results_dir: str, label: str, categories: list[str], sample: int | None = None, seed: int = 0,
            limit: int | None = None) -> dict:
    """Summarize a model's saved BFCL predictions (no backend): what finished is scored, what did not is listed."""
    results = Path(results_dir)
    if not results.is_dir():
        raise UserError(f"--results-dir {results}: {'not a folder' if results.exists() else 'no such folder'}")
    per_category, all_details, missing = {}, [], []
    old, details_path = result_paths(results, label, "bfcl")
    ident: dict = read_json(old).get("model", {}) if old.exists() else {}
    for cat in expand_categories(categories):
        pred_path = predictions_path(results, label, f"bfcl_{cat}")
        if not pred_path.exists():
            missing.append(cat)
            continue
        examples = load_category(cat, limit=limit, sample=sample, seed=seed)
        preds = read_jsonl(pred_path)
        details, issues = score_rows(examples, preds, where=str(pred_path), call_format=ident.get("call_format"))
        # saved files may have been edited or appended to by hand: what does not match the category is counted
        per_category[cat] = {**category_summary(cat, details),
                             "missing_predictions": len(issues["missing_predictions"]),
                             "duplicate_ids": issues["duplicate_ids"], "unknown_ids": issues["unknown_ids"]}
        all_details.extend(details)
    if not per_category:  # an empty summary would read as a scored run of nothing
        cats = ", ".join(expand_categories(categories))
        raise UserError(f"{results}: no saved BFCL predictions of {label!r} for {cats} (looked for "
                        f"{predictions_path(results, label, 'bfcl_CATEGORY').name})")
    summary = {"model": ident or {"label": label}, "suite": "bfcl", "bfcl_eval_version": package_version(),
               "categories": per_category, **overall_summary(per_category), "sample": sample, "limit": limit,
               "categories_without_predictions": missing, "rescored_from_saved_predictions": True}
    write_jsonl_atomic(details_path, all_details)
    write_json_atomic(old, summary)
    return summary


def score_command(category: str, predictions: str, out: str, allow_partial: bool = False) -> dict:
    require_folder_or_absent(out)
    examples = load_category(category)
    details, issues = score_rows(examples, read_jsonl(predictions), where=predictions)
    require_complete(issues, len(examples), predictions, allow_partial)
    require_answers(details, predictions)
    summary = {**category_summary(category, details), **issues, "predictions_file": predictions,
               "bfcl_eval_version": package_version()}
    write_jsonl_atomic(Path(out) / "details.jsonl", details)
    write_json_atomic(Path(out) / "summary.json", summary)
    return summary
