"""Aggregation of per-example verdicts: rates with counts and bootstrap 95% intervals, breakdowns per
complexity / turn type / domain / category, and the spread of field F1 across domains.

Which rows each rate covers:
* ``valid_json_rate``: rows that expect a call or a JSON object;
* ``name_match_rate``, ``args_exact_match_rate`` (+ ``_lenient``), ``args_field_*``: rows that expect calls;
* ``exact_match_rate``: every row (calls, abstention or JSON object all right);
* ``abstention_accuracy``: rows that expect no call;
* ``schema_valid_rate``, ``json_exact_match_rate``: structured-output rows;
* ``field_f1`` (all kinds): call rows and structured rows.
Rows with a backend error are counted in ``n_errors`` and left out of every rate.

Two readings (see :mod:`fctune.parse`): ``metrics`` and the headline keys are the *strict* reading, where a call
counts only in the model's declared call format (:func:`strict_view`); ``metrics_lenient`` reads any recoverable
call. The summary records the declared format (``call_format``) and how many rows the readings differ on.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MetricSpec:
    """A metric, declared once in :data:`METRICS`: what a summary, the gates file, the comparison's ratios and
    the report know about it comes from here (lm-evaluation-harness's ``register_metric`` carries the same three
    facts)."""

    field: str | None                 # the per-row verdict field it averages (None: computed some other way)
    kinds: tuple[str, ...] = ()       # the expected kinds whose rows count
    higher_is_better: bool = True     # False: a ratio to the LLM is taken the other way round (LLM / SLM)
    # "mean": the mean over rows (the summaries' rates; what paired intervals resample); "spread": the population
    # std of per-domain field F1 (one number a split); "pooled": a mean over rows of every suite, computed only by
    # the comparison (its pseudo-suites safety. and calls.)
    aggregation: str = "mean"
    # whether a ratio to the LLM means anything: not for a spread (a model at 0 on every domain has no spread at all,
    # and would look 10x "better" than the LLM); such a metric is judged by a gate's absolute threshold instead
    ratio_to_llm: bool = True


METRICS: dict[str, MetricSpec] = {
    "valid_json_rate": MetricSpec("valid_json", ("tool_calls", "json")),
    "name_match_rate": MetricSpec("name_match", ("tool_calls",)),
    "args_exact_match_rate": MetricSpec("args_exact_match", ("tool_calls",)),
    "args_exact_match_rate_lenient": MetricSpec("args_exact_match_lenient", ("tool_calls",)),
    "args_field_precision": MetricSpec("field_precision", ("tool_calls",)),
    "args_field_recall": MetricSpec("field_recall", ("tool_calls",)),
    "args_field_f1": MetricSpec("field_f1", ("tool_calls",)),
    "args_field_f1_lenient": MetricSpec("field_f1_lenient", ("tool_calls",)),
    "exact_match_rate": MetricSpec("exact_match", ("tool_calls", "json", "no_call")),
    "abstention_accuracy": MetricSpec("abstention_correct", ("no_call",)),
    "schema_valid_rate": MetricSpec("schema_valid", ("json",)),
    "json_exact_match_rate": MetricSpec("exact_match", ("json",)),
    "field_f1": MetricSpec("field_f1", ("tool_calls", "json")),
    "domain_f1_std": MetricSpec(None, higher_is_better=False, aggregation="spread", ratio_to_llm=False),
    "false_call_rate": MetricSpec(None, ("no_call",), higher_is_better=False, aggregation="pooled"),
    "extra_call_rate": MetricSpec(None, ("tool_calls",), higher_is_better=False, aggregation="pooled"),
}


def register_metric(name: str, spec: MetricSpec) -> MetricSpec:
    """Add a metric: a ``mean`` one with a verdict field is then in every summary's rates, readable by the gates
    file and comparable row by row."""
    if spec.aggregation not in ("mean", "spread", "pooled"):
        raise ValueError(f"metric {name}: aggregation {spec.aggregation!r} is not mean, spread or pooled")
    METRICS[name] = spec
    return spec


def row_metrics() -> dict[str, MetricSpec]:
    """The metrics that are means over rows with a verdict field: the summaries' rates, comparable row by row."""
    return {n: m for n, m in METRICS.items() if m.aggregation == "mean" and m.field}


def spec_of(name: str) -> MetricSpec:
    """The declaration of ``name`` (a bare name or ``suite.name``); an undeclared metric reads as a plain rate where
    more is better and a ratio to the LLM means something."""
    return METRICS.get(name.rsplit(".", 1)[-1]) or MetricSpec(None)


def higher_is_better(name: str) -> bool:
    """Whether more is better for ``name`` (a bare name or ``suite.name``); unknown metrics count as higher."""
    return spec_of(name).higher_is_better


BREAKDOWNS = ("complexity", "turn_type", "domain", "category", "multi_turn_kind")


def bootstrap_ci(values: list[float], n_boot: int = 1000, seed: int = 0, alpha: float = 0.05):
    """Percentile bootstrap interval of the mean (seeded, so reruns give the same interval)."""
    if not values:
        return None
    if len(values) == 1:
        return [values[0], values[0]]
    arr = np.asarray(values, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(arr), size=(n_boot, len(arr)))
    means = arr[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def _values(verdicts: list[dict], field: str, kinds) -> list[float]:
    return [float(v[field]) for v in verdicts
            if v.get("error") is None and v["expected_kind"] in kinds and v.get(field) is not None]


def rates(verdicts: list[dict], n_boot: int = 1000) -> dict:
    """``{metric: {"value", "n", "ci"}}`` for every metric that has rows."""
    out = {}
    for name, spec in row_metrics().items():
        vals = _values(verdicts, spec.field, spec.kinds)
        if vals:
            out[name] = {"value": round(sum(vals) / len(vals), 4), "n": len(vals),
                         "ci": bootstrap_ci(vals, n_boot)}
    return out


def strict_view(v: dict, call_format: list[str] | None) -> dict:
    """A verdict as the strict reading sees it: calls written outside the declared call format are not read, so a
    row that expects calls fails (``undeclared_format``) and a row that expects none abstained."""
    from fctune.parse import in_declared_format

    if v.get("error") is not None or v["expected_kind"] == "json" or in_declared_format(v.get("parse_shape"),
                                                                                         call_format):
        return v
    out = dict(v, predicted_calls=[], valid_json=False, strict_unread_shape=v.get("parse_shape"))
    if v["expected_kind"] == "no_call":
        out.update(abstention_correct=True, exact_match=True, failure_reason=None, failure_detail=None)
    else:
        out.update(name_match=False, args_exact_match=False, args_exact_match_lenient=False, exact_match=False,
                   field_precision=0.0, field_recall=0.0, field_f1=0.0, field_precision_lenient=0.0,
                   field_recall_lenient=0.0, field_f1_lenient=0.0, failure_reason="undeclared_format",
                   failure_detail=f"calls written as {v.get('parse_shape')}, not in the declared format {call_format}")
    return out


def summarize(verdicts: list[dict], examples_by_id: dict, n_boot: int = 1000,
              call_format: list[str] | None = None) -> dict:
    """The summary written to ``summary.json``: headline rates (strict reading) as top-level keys, then the detail."""
    lenient = verdicts
    verdicts = [strict_view(v, call_format) for v in verdicts]
    scored = [v for v in verdicts if v.get("error") is None]
    overall = rates(verdicts, n_boot)
    summary: dict = {k: overall[k]["value"] if k in overall else None for k in row_metrics()}
    summary.update({
        "n_examples": len(verdicts),
        "n_scored": len(scored),
        "n_errors": len(verdicts) - len(scored),
        "error_rate": round((len(verdicts) - len(scored)) / len(verdicts), 4) if verdicts else None,
        "metrics": overall,
        "reading": "strict",
        "call_format": call_format or ["any"],
        "metrics_lenient": rates(lenient, n_boot),
        "n_read_differently": sum(1 for a, b in zip(lenient, verdicts, strict=True) if a is not b),
        "n_truncated": sum(1 for v in scored if v.get("truncated")),
        "failure_reasons": dict(Counter(v["failure_reason"] for v in scored if v.get("failure_reason")).most_common()),
        "parse_shapes": dict(Counter(v.get("parse_shape") for v in scored if v.get("parse_shape")).most_common()),
    })
    breakdown = {}
    for key in BREAKDOWNS:
        groups = defaultdict(list)
        for v in verdicts:
            md = examples_by_id[v["id"]].metadata if v["id"] in examples_by_id else {}
            value = md.get(key)
            if value is not None:
                groups[str(value)].append(v)
        if groups:
            breakdown[key] = {g: {"n": len(vs), **{m: r for m, r in rates(vs, n_boot).items()}}
                              for g, vs in sorted(groups.items())}
    summary["breakdown"] = breakdown
    summary["domain_f1_std"] = domain_f1_std(breakdown.get("domain", {}))
    errors = [v for v in verdicts if v.get("error")]
    summary["errors"] = [{"id": v["id"], "error": v["error"]} for v in errors[:50]]
    return summary


def domain_f1_std(per_domain: dict) -> float | None:
    """Population standard deviation of the mean field F1 across domains (the gate's "domain F1 std")."""
    f1s = [d["field_f1"]["value"] for d in per_domain.values() if "field_f1" in d]
    if len(f1s) < 2:
        return None
    return round(statistics.pstdev(f1s), 4)
