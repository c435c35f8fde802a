"""The decision rule, as pure functions over per-row scores (table-tested in tests/test_decision.py).

Every model is scored on the same rows, so a comparison with the LLM is *paired*: the interval of a ratio
SLM / LLM comes from resampling rows (the same rows for both models in each replicate), not from two independent
intervals, whose combination is far too wide (it once let "3.3% below the LLM" stand for a gap of up to 34.6%).

Per capability (its headline metric, e.g. single-turn exact match), against a bar (``1 - max_delta``):

* **pass** when the interval's lower bound clears the bar;
* **fail** when its upper bound is below the bar;
* **inconclusive** otherwise, with the number of rows that would decide it at the observed variance.

A model is judged on all its capabilities together (``aggregate``): with ``min`` (the default, the seed's
"within 10%" for each capability) it passes only if every capability passes and fails if any fails; with ``mean``
(an option, labelled wherever used) the replicates' mean ratio is judged instead. A veto (e.g. calling a function
where none fits on more than 10% of the rows) fails a model whatever its ratios.

Do no harm (:func:`harm_status`): a fine-tuned model is also compared with its own base, paired over the same rows;
a loss whose whole interval lies below ``-max_regression`` is a regression (in phase 2, a veto).
"""

from __future__ import annotations

import math

import numpy as np

N_BOOT = 2000
Z95 = 1.96


def _resample(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def paired_ratio(slm: dict, llm: dict, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Ratio of means SLM / LLM over the rows both were scored on, with a paired percentile-bootstrap 95% interval.

    ``slm`` and ``llm`` map row id -> score of that row (0/1, or an F1). Returns ``{"slm", "llm", "ratio", "ci",
    "n", "replicates"}``; ``ratio`` is None when the LLM scores 0 on these rows (no ratio exists), and ``n`` is 0 when
    no row is shared."""
    ids = sorted(set(slm) & set(llm))
    out: dict = {"n": len(ids), "slm": None, "llm": None, "ratio": None, "ci": None, "replicates": None}
    if not ids:
        return out
    a = np.array([float(slm[i]) for i in ids])
    b = np.array([float(llm[i]) for i in ids])
    out["slm"], out["llm"] = round(float(a.mean()), 4), round(float(b.mean()), 4)
    if b.mean() == 0:
        return out
    out["ratio"] = round(float(a.mean() / b.mean()), 4)
    idx = _resample(len(ids), n_boot, seed)
    ma, mb = a[idx].mean(axis=1), b[idx].mean(axis=1)
    # a replicate where the LLM happens to score 0 has no ratio: count it as unbounded in the SLM's favour when the
    # SLM scored, as equal when both are 0 (rare: only with a handful of rows, where the interval is wide anyway)
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = np.where(mb > 0, ma / np.where(mb > 0, mb, 1), np.where(ma > 0, np.inf, 1.0))
    lo, hi = np.quantile(reps, [0.025, 0.975], method="inverted_cdf")  # no interpolation with inf
    out["ci"] = [round(float(lo), 4), None if math.isinf(hi) else round(float(hi), 4)]
    out["replicates"] = reps
    return out


def paired_difference(a: dict, b: dict, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Difference of means A - B over shared rows, with a paired bootstrap 95% interval."""
    ids = sorted(set(a) & set(b))
    if not ids:
        return {"n": 0, "difference": None, "ci": None}
    x = np.array([float(a[i]) - float(b[i]) for i in ids])
    reps = x[_resample(len(ids), n_boot, seed)].mean(axis=1)
    lo, hi = np.quantile(reps, [0.025, 0.975], method="inverted_cdf")  # no interpolation with inf
    return {"n": len(ids), "a": round(float(np.mean([a[i] for i in ids])), 4),
            "b": round(float(np.mean([b[i] for i in ids])), 4), "difference": round(float(x.mean()), 4),
            "ci": [round(float(lo), 4), round(float(hi), 4)]}


def status(ci: list | None, bar: float) -> str:
    """pass / fail / inconclusive for an interval against a bar (``missing`` without an interval)."""
    if not ci:
        return "missing"
    lo, hi = ci[0], (math.inf if ci[1] is None else ci[1])
    if lo >= bar:
        return "pass"
    if hi < bar:
        return "fail"
    return "inconclusive"


def rows_needed(n: int, ratio: float | None, ci: list | None, bar: float) -> int | None:
    """Rows that would put the interval clear of the bar at the observed variance (the interval narrows as
    1/sqrt(rows)); None where no number of rows decides (a ratio exactly at the bar, or no interval)."""
    if not n or ratio is None or not ci or ci[1] is None or ratio == bar:
        return None
    se = (ci[1] - ci[0]) / (2 * Z95)
    if se == 0:
        return n
    return max(n, math.ceil(n * (Z95 * se / abs(ratio - bar)) ** 2))


def check_veto(value: float | None, op: str, threshold: float) -> str:
    """``ok``, ``veto`` (the rule is broken) or ``missing``."""
    if value is None:
        return "missing"
    holds = {"<=": value <= threshold, "<": value < threshold, ">=": value >= threshold, ">": value > threshold}[op]
    return "ok" if holds else "veto"


def harm_status(ci: list | None, max_regression: float) -> str:
    """``regression`` when a fine-tune's paired difference to its base (fine-tune - base) has its whole 95% interval
    below ``-max_regression``; ``ok`` otherwise (a straddling interval is not a regression); ``missing`` without an
    interval."""
    if not ci:
        return "missing"
    return "regression" if ci[1] < -max_regression else "ok"


def judge(capabilities: dict, vetoes: dict, bar: float, aggregate: str = "min") -> dict:
    """One model's verdict from its capabilities (name -> :func:`paired_ratio` result) and vetoes (name ->
    {"status"}): ``pass`` / ``fail`` / ``inconclusive`` / ``incomplete``, with why and the rows that would decide."""
    per = {}
    for name, c in capabilities.items():
        s = status(c.get("ci"), bar) if c.get("ratio") is not None else "missing"
        per[name] = {"status": s, "rows_needed": rows_needed(c["n"], c.get("ratio"), c.get("ci"), bar)
                     if s == "inconclusive" else None}
        if s == "missing":
            per[name]["missing_why"] = ("no row scored for both models" if not c.get("n") else
                                        f"the LLM scores 0 on its {c['n']} rows: no ratio exists")
    vetoed = sorted(n for n, v in vetoes.items() if v["status"] == "veto")
    missing = sorted(n for n, p in per.items() if p["status"] == "missing")
    out = {"capabilities": per, "vetoed_by": vetoed, "aggregate": aggregate, "bar": bar}
    if aggregate == "mean":
        reps = [c["replicates"] for c in capabilities.values() if c.get("replicates") is not None]
        if reps and not missing:
            stacked = np.vstack(reps)
            mean = np.mean([c["ratio"] for c in capabilities.values()])
            agg = np.mean(stacked, axis=0)
            lo, hi = np.quantile(agg, [0.025, 0.975], method="inverted_cdf")
            ci = [round(float(lo), 4), None if math.isinf(hi) else round(float(hi), 4)]
            out["mean_ratio"], out["mean_ci"] = round(float(mean), 4), ci
            s = status(ci, bar)
            n_min = min(c["n"] for c in capabilities.values())
            out["rows_needed"] = rows_needed(n_min, float(mean), ci, bar) if s == "inconclusive" else None
        else:
            s = "missing"
    else:
        states = {p["status"] for p in per.values()}
        s = ("fail" if "fail" in states else "missing" if "missing" in states else
             "inconclusive" if "inconclusive" in states else "pass")
        needed = [p["rows_needed"] for p in per.values() if p["rows_needed"]]
        out["rows_needed"] = max(needed) if needed and s == "inconclusive" else None
    if vetoed:
        out["status"], out["why"] = "fail", f"vetoed by {', '.join(vetoed)}"
    elif s == "missing":
        out["status"] = "incomplete"
        out["why"] = "no ratio to the LLM on " + ("; ".join(f"{n} ({per[n]['missing_why']})" for n in missing)
                                                  or "the aggregate")
    else:
        out["status"] = s
        out["why"] = _why(s, per, out, bar)
    ratios = [c["ratio"] for c in capabilities.values() if c.get("ratio") is not None]
    out["min_ratio"] = round(min(ratios), 4) if ratios else None
    return out


def _why(s: str, per: dict, out: dict, bar: float) -> str:
    if out["aggregate"] == "mean":
        return (f"mean ratio {out['mean_ratio']:.1%} (mean of capabilities, an option), interval "
                f"[{_pct(out['mean_ci'][0])}, {_pct(out['mean_ci'][1])}] against the bar {bar:.0%}")
    if s == "pass":
        return f"every capability's paired lower bound clears {bar:.0%}"
    if s == "fail":
        return "below the bar on " + ", ".join(n for n, p in per.items() if p["status"] == "fail")
    return "the bar is inside the interval on " + ", ".join(n for n, p in per.items() if p["status"] == "inconclusive")


def _pct(x) -> str:
    return "unbounded" if x is None else f"{x:.1%}"
