"""Comparison of every evaluated model against the LLM baseline: capability tables with intervals, ratios
to the LLM, decision gates and the phase verdicts, failure analysis and cost. Reads saved results only.

Naming convention (what is read): every ``*.json`` summary in the results folders whose ``suite`` is one
of the suites, ``bfcl``, or a Fledgling track, written by the evaluation runner as
``<label>_<suite>.json`` with ``<label>_<suite>_details.jsonl`` beside it. Who a model is comes from the
summary's ``model`` block (``label``, ``approach``, ``role`` = base / finetuned / llm, ``family``), not
from the file name. Fledgling's gate decision is ``fledgling_gate.json``, one per Fledgling run folder (a run
fine-tunes one base model; several folders compare several).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fctune.errors import UserError
from fctune.io import DataFileError, read_json, read_jsonl_tolerant
from fctune.metrics import bootstrap_ci
from fctune.suite_specs import SUITES, capability_tables

log = logging.getLogger(__name__)

FLEDGLING_TRACKS = ("fledgling_structured", "fledgling_toolcall")


def suite_headline(suite: str) -> str | None:
    """The one number a suite is read by in the report's readings table (strict vs lenient)."""
    if suite in SUITES:
        return SUITES[suite].headline
    return "exact_match_rate" if suite in FLEDGLING_TRACKS else None


def ratio_to_llm(name: str, value: float | None, llm_value: float | None) -> float | None:
    """SLM / LLM for a metric where more is better, LLM / SLM where less is (a false-call rate): above 1 means better
    than the LLM either way. None when the denominator is 0 or missing, or when the metric declares that a ratio
    means nothing for it (a spread)."""
    from fctune.metrics import spec_of

    spec = spec_of(name)
    if not spec.ratio_to_llm:
        return None
    num, den = (value, llm_value) if spec.higher_is_better else (llm_value, value)
    if num is None or not den:
        return None
    return round(num / den, 4)


@dataclass
class CompareConfig:
    """Compare every evaluated model with the LLM baseline; write JSON, CSV and an HTML report."""

    results_dirs: list[str] = field(default_factory=lambda: ["paper_approach/eval_results", "fledgling/eval_results"],
                                    metadata={"help": "folders with <label>_<suite>.json results"})
    gates: str = field(default="comparison_framework/gates.yaml", metadata={"help": "gates, decisions and prices"})
    phase: int = field(default=1, metadata={"help": "which decision to take: 1 (proceed?) or 2 (deploy?)",
                                            "choices": [1, 2]})
    output_dir: str = field(default="comparison_framework/reports", metadata={"help": "where reports go"})
    llm_label: str | None = field(default=None, metadata={
        "help": "label of the LLM baseline (default: the model whose role is 'llm')"})
    served_dir: str = field(default="paper_approach/served_results", metadata={
        "help": "round-trip results (python -m fctune.roundtrip): served beside in-process scores, measured serving "
                "speed for the cost section"})


# -- loading -------------------------------------------------------------------------------------------------
@dataclass
class ModelResults:
    label: str
    info: dict
    suites: dict = field(default_factory=dict)     # suite -> summary
    details: dict = field(default_factory=dict)    # suite -> details path
    bfcl: dict | None = None
    bfcl_details: Path | None = None  # BFCL's per-row verdicts (valid, valid_lenient), where the run wrote them
    source_dir: str = ""
    rows_cache: dict = field(default_factory=dict, repr=False)  # (suite, reading) -> scored verdicts

    @property
    def role(self):
        return self.info.get("role")

    @property
    def approach(self):
        return self.info.get("approach")

    @property
    def family(self):
        return self.info.get("family")


def _matches(have, want) -> bool:
    """Equal, or one of a "+"-joined list (a base model shared by several families: "phi+llama")."""
    return have == want or (isinstance(have, str) and isinstance(want, str) and want in have.split("+"))


def discover(dirs: list[str], suites: list[str]) -> tuple[dict[str, ModelResults], list[str], list[dict]]:
    """Every result present, and every Fledgling gate decision; unreadable files are reported, not fatal."""
    models: dict[str, ModelResults] = {}
    problems, gates = [], []
    read_from: dict[tuple[str, str], Path] = {}  # (label, suite) -> the file its result came from
    known = set(suites) | {"bfcl", *FLEDGLING_TRACKS}
    for d in dirs:
        p = Path(d)
        if not p.is_dir():
            problems.append(f"{d}: folder not found")
            continue
        for f in sorted(p.glob("*.json")):
            if f.name.endswith(".run.json"):
                continue
            try:
                s = read_json(f)
            except DataFileError as e:
                problems.append(str(e))
                continue
            if f.name == "fledgling_gate.json":
                gates.append({**s, "results_dir": str(p)})
                continue
            if not isinstance(s, dict) or s.get("suite") not in known or "model" not in s:
                continue
            info = s["model"]
            if not isinstance(info, dict):  # who the model is decides where it goes: no guessing from a name
                raise DataFileError(f"{f}: field 'model' must be an object with label and role, got "
                                    f"{type(info).__name__}")
            label = info.get("label") or f.stem.rsplit("_", 1)[0]
            if not isinstance(label, str) or not all(isinstance(info.get(k, ""), (str, type(None)))
                                                     for k in ("role", "approach", "family")):
                raise DataFileError(f"{f}: fields model.label, role, approach and family must be text, got "
                                    + ", ".join(f"{k} {type(info.get(k)).__name__}" for k in
                                                ("label", "role", "approach", "family") if k in info))
            m = models.setdefault(label, ModelResults(label, info, source_dir=str(p)))
            first = m.bfcl if s["suite"] == "bfcl" else m.suites.get(s["suite"])
            # an identical copy (the LLM's tracks, written by each Fledgling run) is harmless
            if first is not None and first != s:
                problems.append(f"{f}: a second, different {s['suite']} result for {label!r} (the first: "
                                f"{read_from[label, s['suite']]}); the later file is used")
            read_from[label, s["suite"]] = f
            if s["suite"] == "bfcl":
                m.bfcl = s
                det = f.with_name(f.stem + "_details.jsonl")
                m.bfcl_details = det if det.exists() else None
            else:
                det = f.with_name(f.stem + "_details.jsonl")
                why = summary_disagrees(s, det) if det.exists() else None
                if why:  # its figures and its paired intervals would be two different runs: neither is used
                    problems.append(f"{f}: not used, {why} (score the predictions again: fctune score)")
                    continue
                m.suites[s["suite"]] = s
                if det.exists():
                    m.details[s["suite"]] = det
            if not m.info.get("role") and info.get("role"):
                m.info = info
    return models, problems, gates


def summary_disagrees(summary: dict, details: Path) -> str | None:
    """Why a suite's summary cannot stand beside its own details file, or None: torn lines, another row count, or a
    headline rate (strict reading) that the rows do not give. The report's figures come from the summary and its
    paired intervals from the rows, so both must be one run's."""
    from fctune.metrics import rates, strict_view

    rows, torn = read_jsonl_tolerant(details)
    if torn:
        return f"{details.name} has {torn} torn line(s)"
    n = summary.get("n_examples")
    if isinstance(n, int) and len(rows) != n:
        return f"{details.name} has {len(rows)} rows where the summary counts {n}"
    try:
        again = rates([strict_view(r, summary.get("call_format") or ["any"]) for r in rows], n_boot=1)
    except (KeyError, TypeError, AttributeError, ValueError):
        return f"{details.name} does not hold scored rows (fields missing or of the wrong type)"
    for name, v in again.items():  # the headline is written twice: top level and under "metrics"
        for have in (summary.get(name), ((summary.get("metrics") or {}).get(name) or {}).get("value")):
            if isinstance(have, (int, float)) and abs(have - v["value"]) > 5e-4:
                return f"its {name} is {have} where its {len(rows)} rows give {v['value']}"
    return None


# -- gates and decisions -------------------------------------------------------------------------------------
def _passes(value, op, threshold) -> bool:
    return {">=": value >= threshold, ">": value > threshold, "<": value < threshold, "<=": value <= threshold}[op]


def gate_table(models: dict[str, ModelResults], gates: list[dict]) -> list[dict]:
    rows = []
    for m in models.values():
        for g in gates:
            v = metric(m, g["metric"])
            row = {"model": m.label, "role": m.role, "gate": g["name"], "metric": g["metric"], "op": g["op"],
                   "threshold": g["threshold"], "value": v["value"] if v else None, "ci": v["ci"] if v else None}
            if v is None or v["value"] is None:
                row["status"] = "missing"
            else:
                row["status"] = "pass" if _passes(v["value"], g["op"], g["threshold"]) else "fail"
                ci = v.get("ci")
                row["threshold_inside_ci"] = bool(ci and ci[0] <= g["threshold"] <= ci[1])
            rows.append(row)
    return rows


# -- per-row scores (what the paired intervals resample) ------------------------------------------------------
def legacy_call_format(info: dict) -> list[str]:
    """The declared call format of a result written before summaries recorded it, from how the model was prompted."""
    if info.get("tools_mode") == "prompt" or (info.get("prompt") or {}).get("prompt_format") == "hermes":
        return ["hermes_tags"]
    if info.get("tools_mode") == "native":
        return ["openai_tool_calls"]
    return ["any"]


def call_format_of(m: ModelResults) -> list[str]:
    for s in m.suites.values():
        if s.get("call_format"):
            return s["call_format"]
    return legacy_call_format(m.info)


def _rows(m: ModelResults, suite: str, reading: str = "strict") -> list[dict]:
    """A suite's scored verdicts in the strict (default) or lenient reading (cached on the model)."""
    from fctune.metrics import strict_view

    if (suite, reading) not in m.rows_cache:
        det = m.details.get(suite)
        rows = [r for r in (read_jsonl_tolerant(det)[0] if det else []) if r.get("error") is None]
        fmt = call_format_of(m) if reading == "strict" else ["any"]
        m.rows_cache[suite, reading] = [strict_view(r, fmt) for r in rows]
    return m.rows_cache[suite, reading]


def _extra_call(r: dict) -> float:
    if r.get("n_expected_calls") is not None:
        return 1.0 if len(r.get("predicted_calls") or []) > r["n_expected_calls"] else 0.0
    return 1.0 if r.get("failure_reason") == "extra_call" else 0.0  # results written before n_expected_calls


# pseudo-suites pooled over every suite's rows: metric -> (expected kinds, value of a row)
POOLED = {
    "json_quality.valid_json_rate": (("tool_calls", "json"), lambda r: 1.0 if r.get("valid_json") else 0.0),
    "safety.abstention_accuracy": (("no_call",), lambda r: 1.0 if r.get("abstention_correct") else 0.0),
    "safety.false_call_rate": (("no_call",), lambda r: 0.0 if r.get("abstention_correct") else 1.0),
    "calls.extra_call_rate": (("tool_calls",), _extra_call),
}


def row_scores(m: ModelResults, path: str, reading: str = "strict") -> dict[str, float]:
    """Row id -> the row's score for ``suite.metric`` (strict reading), for the metrics that are means over rows."""
    from fctune.metrics import row_metrics

    if path in POOLED:
        kinds, value = POOLED[path]
        return {f"{suite}/{r['id']}": value(r) for suite in sorted(m.details) for r in _rows(m, suite, reading)
                if r.get("expected_kind") in kinds and (path != "json_quality.valid_json_rate"
                                                        or r.get("valid_json") is not None)}
    suite, name = path.split(".", 1)
    spec = row_metrics().get(name)
    if spec is None or suite not in m.details:
        return {}
    return {r["id"]: float(r[spec.field]) for r in _rows(m, suite, reading)
            if r.get("expected_kind") in spec.kinds and r.get(spec.field) is not None}


def metric(m: ModelResults, path: str, reading: str = "strict") -> dict | None:
    """``{"value", "ci", "n"}`` for ``suite.metric`` (strict reading), pooled pseudo-suites included."""
    if path in POOLED:
        vals = list(row_scores(m, path, reading).values())
        if not vals:
            return None
        return {"value": round(sum(vals) / len(vals), 4), "ci": bootstrap_ci(vals), "n": len(vals)}
    suite, name = path.split(".", 1)
    s = m.suites.get(suite)
    if s is None:
        return None
    if name in (s.get("metrics") or {}):
        return dict(s["metrics"][name])
    if s.get(name) is not None:
        return {"value": s[name], "ci": None, "n": s.get("n_scored")}
    return None


# -- the verdict: paired ratios per capability, vetoes, and the phase decisions --------------------------------
def capability_ratios(m: ModelResults, llm: ModelResults, caps: list[dict], reading: str = "strict") -> dict:
    """Capability name -> paired ratio to the LLM over the rows both answered (see :mod:`fctune.decision`)."""
    from fctune.decision import paired_ratio

    out = {}
    for c in caps:
        r = paired_ratio(row_scores(m, c["metric"], reading), row_scores(llm, c["metric"], reading))
        out[c["name"]] = {**r, "metric": c["metric"]}
    return out


def veto_checks(m: ModelResults, vetoes: list[dict], reading: str = "strict") -> dict:
    from fctune.decision import check_veto

    out = {}
    for v in vetoes:
        got = metric(m, v["metric"], reading)
        value = got["value"] if got else None
        out[v["name"]] = {"metric": v["metric"], "op": v["op"], "threshold": v["threshold"], "value": value,
                          "ci": got.get("ci") if got else None, "n": got.get("n") if got else 0,
                          "status": check_veto(value, v["op"], v["threshold"])}
    return out


# -- do no harm: every fine-tuned model against its own base ------------------------------------------------------
NO_HARM_VETO = "no regression against its base"
DEFAULT_MAX_REGRESSION = 0.02


def bases_of(m: ModelResults, models: dict) -> list[ModelResults]:
    """The results of ``m``'s own base model: role base, the same base model, no adapter (several when it was
    evaluated more than once, e.g. with and without its tool-call tags repaired)."""
    want = m.info.get("model")
    return [b for b in models.values() if b is not m and b.role == "base" and want and b.info.get("model") == want
            and not b.info.get("adapter")]


def bfcl_row_scores(m: ModelResults, category: str, reading: str = "strict") -> dict[str, float]:
    """Row id -> 1/0 for one BFCL category (strict: ``valid``; lenient: ``valid_lenient``)."""
    if m.bfcl_details is None:
        return {}
    key = "valid" if reading == "strict" else "valid_lenient"
    if ("bfcl", category, reading) not in m.rows_cache:
        rows = read_jsonl_tolerant(m.bfcl_details)[0]
        m.rows_cache["bfcl", category, reading] = {
            r["id"]: 1.0 if r.get(key) else 0.0 for r in rows
            if r.get("category") == category and r.get(key) is not None and not r.get("error")}
    return m.rows_cache["bfcl", category, reading]


def do_no_harm(m: ModelResults, bases: list[ModelResults], gcfg: dict) -> dict:
    """``m`` (strict reading) against its base on every capability and BFCL category, paired over the same rows; the
    base in its best reading there (the higher of strict and lenient, over every result of the base model)."""
    from fctune.decision import harm_status, paired_difference

    limit = (gcfg.get("do_no_harm") or {}).get("max_regression", DEFAULT_MAX_REGRESSION)
    items = [(c["name"], lambda x, r, p=c["metric"]: row_scores(x, p, r), c["metric"]) for c in gcfg["capabilities"]]
    items += [(f"BFCL {cat}", lambda x, r, c=cat: bfcl_row_scores(x, c, r), f"bfcl.{cat}")
              for cat in sorted((m.bfcl or {}).get("categories") or {})]
    checks = {}
    for name, scores, path in items:
        mine = scores(m, "strict")
        if not mine:
            continue
        best = None
        for b in bases:
            for reading in ("strict", "lenient"):
                theirs = scores(b, reading)
                shared = set(mine) & set(theirs)
                if shared:
                    mean = sum(theirs[i] for i in shared) / len(shared)
                    if best is None or mean > best[0]:
                        best = (mean, b.label, reading, theirs)
        if best is None:
            checks[name] = {"metric": path, "status": "missing", "n": 0}
            continue
        d = paired_difference(mine, best[3])
        checks[name] = {"metric": path, "base": best[1], "base_reading": best[2], "finetuned": d.get("a"),
                        "base_value": d.get("b"), "difference": d["difference"], "ci": d["ci"], "n": d["n"],
                        "status": harm_status(d["ci"], limit)}
    regressions = [n for n, c in checks.items() if c["status"] == "regression"]
    return {"bases": [b.label for b in bases], "max_regression": limit, "checks": checks, "regressions": regressions}


def harm_sentence(label: str, nh: dict) -> str | None:
    """The verdict box's sentence about a fine-tune worse than its base; None when it is not."""
    if not nh or not nh.get("regressions"):
        return None
    parts = [f"{n} {nh['checks'][n]['difference'] * 100:+.1f} points [{nh['checks'][n]['ci'][0] * 100:+.1f}, "
             f"{nh['checks'][n]['ci'][1] * 100:+.1f}] against {nh['checks'][n]['base']} "
             f"({nh['checks'][n]['base_reading']})" for n in nh["regressions"]]
    return (f"{label} is worse than its own base (paired, the same rows; a loss beyond {nh['max_regression']:.0%}): "
            + "; ".join(parts))


def judge_models(models: dict, llm: ModelResults, gcfg: dict, bar: float, reading: str = "strict",
                 regression_veto: bool = False) -> dict:
    """Label -> the verdict of every model but the LLM against ``bar`` (replicates dropped: not for the report).
    Fine-tuned models are also compared with their own base (:func:`do_no_harm`); ``regression_veto`` (phase 2)
    makes a regression a veto."""
    from fctune.decision import judge

    out = {}
    for m in models.values():
        if m is llm or m.role == "llm":  # another LLM measurement is a reference, not a candidate
            continue
        caps = capability_ratios(m, llm, gcfg["capabilities"], reading)
        vetoes = veto_checks(m, gcfg["vetoes"], reading)
        nh = do_no_harm(m, bases_of(m, models), gcfg) if m.role == "finetuned" else None
        if nh is not None and regression_veto:
            vetoes[NO_HARM_VETO] = {"metric": "do_no_harm (regressions)", "value": len(nh["regressions"]),
                                    "op": "<=", "threshold": 0, "ci": None, "n": len(nh["checks"]),
                                    "status": "veto" if nh["regressions"] else "ok",
                                    "why": harm_sentence(m.label, nh)}
        j = judge(caps, vetoes, bar, gcfg["relative"]["aggregate"])
        if nh is not None:
            j["do_no_harm"] = nh
            if NO_HARM_VETO in j["vetoed_by"]:
                j["why"] += f" ({harm_sentence(m.label, nh)})"
        for name, c in caps.items():
            c.pop("replicates", None)
            c.update(j["capabilities"][name])
        out[m.label] = {**j, "capabilities": caps, "vetoes": vetoes, "role": m.role, "approach": m.approach,
                        "family": m.family, "reading": reading}
    return out


def _rule(j: dict) -> str:
    """How the bar is applied, in the words of the aggregate that judged ``j``."""
    return "on the mean of its capability ratios" if j.get("aggregate") == "mean" else "on every capability"


def _passing_claim(j: dict, bar: float) -> str:
    """What a passing model's numbers show, true of them under either aggregate."""
    if j.get("aggregate") == "mean":
        lo, hi = j["mean_ci"]
        return (f"{bar:.0%} of the LLM on the mean of its capability ratios ({j['mean_ratio']:.1%}, paired 95% "
                f"interval [{lo:.1%}, {'unbounded' if hi is None else f'{hi:.1%}'}]; the mean of capabilities, an "
                f"option; its lowest capability is at {j['min_ratio']:.1%})")
    return (f"{bar:.0%} of the LLM on every capability (paired lower bounds; lowest ratio "
            f"{j['min_ratio']:.1%})")


def _harm_claim(j: dict) -> str:
    """What the do-no-harm check says of a model that passed it."""
    nh = j.get("do_no_harm") or {}
    if not nh.get("bases"):
        return "with no result of its base model to check it against"
    n = sum(c["status"] == "ok" for c in nh["checks"].values())
    return f"no worse than its base on the {n} capabilities and BFCL categories compared"


def _needed(j: dict) -> str:
    return f"; about {j['rows_needed']} test rows would decide it at the observed variance" if j.get(
        "rows_needed") else ""


NO_FINETUNED = {"verdict": "INCOMPLETE", "reason": "no fine-tuned model was evaluated"}


def _candidates(judged: dict) -> tuple[list, list]:
    """The fine-tuned models' verdicts, and those that pass."""
    ft = [(k, j) for k, j in judged.items() if j["role"] == "finetuned"]
    return ft, [(k, j) for k, j in ft if j["status"] == "pass"]


def _best(cands: list[tuple[str, dict]]):
    return max(cands, key=lambda kv: kv[1]["min_ratio"] if kv[1]["min_ratio"] is not None else -1)


def phase1_decision(models, llm, judged: dict, cfg: dict) -> dict:
    """PROCEED TO PHASE 2 when a fine-tuned model clears ``proceed_ratio`` on every capability; FOCUS ON WINNER when
    one paper family beats the other (paired); ITERATE when every fine-tuned model is clearly below; else
    INCONCLUSIVE."""
    from fctune.decision import paired_difference

    p1 = cfg["phase1"]
    ft, passed = _candidates(judged)
    if not ft:
        return dict(NO_FINETUNED)  # a copy: the caller adds to it
    if passed:
        k, j = _best(passed)
        return {"verdict": "PROCEED TO PHASE 2", "model": k, "reason": f"{', '.join(x for x, _ in passed)} "
                f"{'clears' if len(passed) == 1 else 'clear'} {_passing_claim(j, p1['proceed_ratio'])}"
                + ("" if len(passed) == 1 else f"; best {k}")}
    paper = {j["family"]: (k, j) for k, j in ft if j["approach"] == "paper" and j["family"]}
    winner = None
    if len(paper) >= 2:
        (fa, (ka, ja)), (fb, (kb, jb)) = sorted(paper.items(), key=lambda kv: -(kv[1][1]["min_ratio"] or -1))[:2]
        reading = ja.get("reading", "strict")
        diff = paired_difference(row_scores(models[ka], p1["winner_metric"], reading),
                                 row_scores(models[kb], p1["winner_metric"], reading))
        # the margin compares like with like: the weakest of the capabilities both have a ratio on
        shared = [c for c, v in ja["capabilities"].items()
                  if v.get("ratio") is not None and jb["capabilities"][c].get("ratio") is not None]
        margin = (min(ja["capabilities"][c]["ratio"] for c in shared)
                  - min(jb["capabilities"][c]["ratio"] for c in shared)) if shared else None
        winner = {"leader": ka, "runner_up": kb, "margin": None if margin is None else round(margin, 4),
                  "margin_over": shared, "metric": p1["winner_metric"], **diff}
        if margin is not None and margin >= p1["winner_margin"] and diff["ci"] and diff["ci"][0] > 0:
            return {"verdict": "FOCUS ON WINNER", "winner": fa, "winner_check": winner,
                    "reason": f"{fa} ({ka}) leads {fb} by {margin:.1%} of the LLM on the weakest of the "
                              f"{len(shared)} capabilities both have a ratio on, and its {p1['winner_metric']} is "
                              f"higher by {diff['difference']:.3f} on the same rows (paired 95% interval "
                              f"[{diff['ci'][0]:.3f}, {diff['ci'][1]:.3f}])"}
    if all(j["status"] == "fail" for _, j in ft):
        k, j = _best(ft)
        return {"verdict": "ITERATE", "winner_check": winner, "reason": f"no fine-tuned model both clears "
                f"{p1['proceed_ratio']:.0%} of the LLM {_rule(j)} and passes every veto: the best, {k}, {j['why']}"}
    k, j = _best([(k, j) for k, j in ft if j["status"] in ("inconclusive", "incomplete")])
    if j["status"] == "incomplete":
        return {"verdict": "INCOMPLETE", "winner_check": winner, "reason": f"{k}: {j['why']}"}
    return {"verdict": "INCONCLUSIVE", "model": k, "winner_check": winner, "rows_needed": j.get("rows_needed"),
            "reason": f"{k}: {j['why']}{_needed(j)}"}


def phase2_decision(models, llm, judged: dict, cfg: dict) -> dict:
    """DEPLOY TO PRODUCTION when a fine-tuned model is within ``max_delta`` of the LLM on every capability (paired
    lower bounds) and no veto applies; ANALYZE FAILURE MODES when every one is clearly below or vetoed; else
    INCONCLUSIVE (with the rows that would decide) or INCOMPLETE (a capability without a ratio)."""
    limit = cfg["phase2"]["max_delta"]
    ft, passed = _candidates(judged)
    if not ft:
        return dict(NO_FINETUNED)  # a copy: the caller adds to it
    if passed:
        k, j = _best(passed)
        return {"verdict": "DEPLOY TO PRODUCTION", "model": k, "reason": f"{k} clears "
                f"{_passing_claim(j, 1 - limit)}, {_harm_claim(j)}, and no safety veto applies"}
    if all(j["status"] == "fail" for _, j in ft):
        k, j = _best(ft)
        return {"verdict": "ANALYZE FAILURE MODES", "model": k, "reason": f"no fine-tuned model is both within "
                f"{limit:.0%} of the LLM {_rule(j)} and clear of every veto: the best, {k}, {j['why']}"}
    open_ = [(k, j) for k, j in ft if j["status"] == "inconclusive"]
    if open_:
        k, j = _best(open_)
        return {"verdict": "INCONCLUSIVE", "model": k, "rows_needed": j.get("rows_needed"),
                "reason": f"{k}: {j['why']}{_needed(j)}"}
    k, j = _best([(k, j) for k, j in ft if j["status"] == "incomplete"])
    return {"verdict": "INCOMPLETE", "model": k, "reason": f"{k}: {j['why']}"}


# -- the seed's four questions, each answered from the numbers ---------------------------------------------------
def _ci(ci) -> str:
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "(no interval)"


def _compare_pair(models, a: str, b: str, metric_path: str) -> str:
    from fctune.decision import paired_difference

    d = paired_difference(row_scores(models[a], metric_path), row_scores(models[b], metric_path))
    if not d["n"]:
        return f"no shared rows on {metric_path}"
    clear = d["ci"][0] > 0 or d["ci"][1] < 0
    return (f"{metric_path} {d['a']:.3f} vs {d['b']:.3f} on the same {d['n']} rows, difference {d['difference']:+.3f} "
            f"(paired 95% interval {_ci(d['ci'])}: {'a real difference' if clear else 'not distinguishable'})")


def seed_questions(models: dict, llm, judged: dict, costs: dict, per_domain: dict, gcfg: dict) -> list[dict]:
    """The seed's four questions with a one-sentence answer each, or "not measurable" and what is missing."""
    ft = {k: j for k, j in judged.items() if j["role"] == "finetuned"}
    key = gcfg["phase1"]["winner_metric"]
    out = []

    def ask(q, answer, measurable=True):
        out.append({"question": q, "answer": answer, "measurable": measurable})

    def weakest(k):
        j = ft[k]
        if j.get("min_ratio") is None:
            return "no ratio to the LLM on any capability"
        measured = [c for c in j["capabilities"].values() if c.get("ratio") is not None]
        where = ("its weakest capability" if len(measured) == len(j["capabilities"]) else
                 f"its weakest of the {len(measured)} of {len(j['capabilities'])} capabilities with a ratio")
        return f"{j['min_ratio']:.0%} of the LLM on {where}"

    paper = sorted(k for k, j in ft.items() if j["approach"] == "paper")
    fl = sorted(k for k, j in ft.items() if j["approach"] == "fledgling")
    q = "Does fine-tuning on Hermes data (paper) beat xLAM data (Fledgling)?"
    if not paper or not fl:
        ask(q, f"Not measurable: missing a fine-tuned {'paper' if not paper else 'Fledgling'} model.", False)
    else:
        a, b = max(paper, key=lambda k: ft[k]["min_ratio"] or -1), max(fl, key=lambda k: ft[k]["min_ratio"] or -1)
        same = models[a].info.get("model") == models[b].info.get("model")
        confounded = "" if same else (f" Their base models differ ({models[a].info.get('model')} vs "
                                      f"{models[b].info.get('model')}): data and base model are confounded.")
        ask(q, f"{a} (Hermes) reaches {weakest(a)}, {b} (xLAM) {weakest(b)}; "
               f"{_compare_pair(models, a, b, key)}.{confounded}")
    fams = {ft[k]["family"]: k for k in paper if ft[k]["family"]}
    q = "Is Llama-3.1-8B worth about twice the cost of Phi-4-mini?"
    shared = next((k for f, k in fams.items() if {"phi", "llama"} <= set(f.split("+"))), None)
    if shared:  # one fine-tune stood for both families: they were given the same base model
        ask(q, f"Not measurable: both families were given the same model ({models[shared].info.get('model')}), a "
               f"stand-in, trained and evaluated once as {shared}; run the full profile with the real models.", False)
    elif "llama" not in fams or "phi" not in fams:
        ask(q, f"Not measurable: missing a fine-tuned paper {'llama' if 'llama' not in fams else 'phi'} model.", False)
    elif models[fams["llama"]].info.get("model") == models[fams["phi"]].info.get("model"):
        ask(q, f"Not measurable: both families ran the same model ({models[fams['phi']].info.get('model')}), a "
               "stand-in; run the full profile with the real models.", False)
    else:
        lc, pc = (costs.get(fams["llama"]) or {}), (costs.get(fams["phi"]) or {})
        cost = (f"; per 1M tokens ${lc['cost_per_1m_tokens_usd']:.2f} vs ${pc['cost_per_1m_tokens_usd']:.2f}"
                if lc and pc else "")
        ask(q, f"Llama reaches {weakest(fams['llama'])}, Phi {weakest(fams['phi'])}; "
               f"{_compare_pair(models, fams['llama'], fams['phi'], key)}{cost}.")
    q = "Can either fine-tuned model match the LLM?"
    if not ft:
        ask(q, "Not measurable: no fine-tuned model was evaluated.", False)
    else:
        passed = [k for k, j in ft.items() if j["status"] == "pass"]
        undecided = [k for k, j in ft.items() if j["status"] in ("inconclusive", "incomplete")]
        if passed:
            ask(q, f"Yes: {', '.join(passed)} within the bar ({ft[passed[0]]['bar']:.0%} of the LLM) on every "
                   "capability, no veto.")
        elif undecided:
            k = max(undecided, key=lambda k: ft[k]["min_ratio"] or -1)
            ask(q, f"Not decided: {k} {ft[k]['why']}{_needed(ft[k])}.")
        else:
            k = max(ft, key=lambda k: ft[k]["min_ratio"] or -1)
            ask(q, f"No: the best, {k}, {ft[k]['why']} ({weakest(k)}).")
    q = "Which model generalizes across domains?"
    spread = {k: v for k, v in per_domain.items() if len(v) >= 2 and k in judged}
    if not spread:
        ask(q, "Not measurable: no domain_diverse results with two or more domains.", False)
    else:
        def worst(k):
            return min(spread[k].values())
        k = max(spread, key=worst)
        lab = llm.label if llm else None
        llm_part = (f"; the LLM's worst domain is at {min(per_domain[lab].values()):.2f}"
                    if len(per_domain.get(lab) or {}) >= 2 else "")
        per = ((models[k].suites.get("domain_diverse") or {}).get("breakdown") or {}).get("domain", {})
        sizes = sorted(v.get("n", 0) for v in per.values())
        ask(q, f"{k}: its worst of {len(spread[k])} domains has field F1 {worst(k):.2f} "
               f"({min(spread[k], key=spread[k].get)}){llm_part}. Per-domain rows are few ({sizes[0]}–{sizes[-1]} "
               "per domain): read the heat map, not the ranking, for a close call.")
    return out


# -- failure analysis and cost -------------------------------------------------------------------------------
def failure_analysis(m: ModelResults, per_reason: int = 2) -> dict:
    """Failure reasons per suite (strict reading), with ``per_reason`` example rows each."""
    out = {}
    for suite, det in m.details.items():
        rows = _rows(m, suite) + [r for r in read_jsonl_tolerant(det)[0] if r.get("error") is not None]
        failed = [r for r in rows if r.get("failure_reason")]
        counts = Counter(r["failure_reason"] for r in failed)
        out[suite] = {"n": len(rows), "n_failed": len(failed), "n_errors": sum(1 for r in rows if r.get("error")),
                      "reasons": [{"reason": reason, "count": c,
                                   "ids": [r["id"] for r in failed if r["failure_reason"] == reason][:10],
                                   "examples": [{"id": r["id"], "detail": r.get("failure_detail"),
                                                 "output": (r.get("output") or "")[:400]}
                                                for r in failed if r["failure_reason"] == reason][:per_reason]}
                                  for reason, c in counts.most_common()]}
    return out


def load_roundtrips(folder: str) -> dict[str, dict]:
    """In-process label -> its round trip (``<label>_roundtrip.json``); unreadable files are skipped with a warning."""
    out = {}
    for f in sorted(Path(folder).glob("*_roundtrip.json")) if Path(folder).is_dir() else []:
        try:
            r = json.loads(f.read_text())
            out[r["label"]] = r
        except (json.JSONDecodeError, KeyError, OSError) as e:
            log.warning("%s: not a round-trip result (%s)", f, e)
    return out


def cost_summary(models: dict[str, ModelResults], prices: dict, served: dict | None = None) -> dict:
    """$ per 1M tokens per model: API prices for the LLM; for a local model the hourly price over its generated
    tokens/s — measured when it was served in a round trip (the machine named), else a GPU run's own speed, else
    the gates file's assumed default."""
    served = served or {}
    out = {}
    for m in models.values():
        prompt = sum((s.get("token_usage") or {}).get("prompt_tokens", 0) for s in m.suites.values())
        completion = sum((s.get("token_usage") or {}).get("completion_tokens", 0) for s in m.suites.values())
        total = prompt + completion
        if not total:
            continue
        if m.info.get("backend") == "openai" and m.info.get("kind") == "azure" or m.role == "llm":
            per_1m = (prompt * prices["api_input_per_1m"] + completion * prices["api_output_per_1m"]) / total
            basis = "API list prices (input/output weighted by this run's tokens)"
        elif (served.get(m.label) or {}).get("served_throughput", {}).get("generated_tokens_per_s"):
            t = served[m.label]["served_throughput"]
            rate = t["generated_tokens_per_s"]
            per_1m = prices["gpu_hour"] / (rate * 3600) * 1e6
            where = (t.get("machine") or {}).get("description") or "the machine it was measured on"
            basis = (f"served: {rate:.1f} generated tokens/s measured in the round trip on {where} "
                     f"(p50 {t.get('latency_p50_s')} s, p95 {t.get('latency_p95_s')} s per request), "
                     f"at ${prices['gpu_hour']}/h")
        else:
            tps = [(s.get("throughput") or {}).get("generated_tokens_per_s") for s in m.suites.values()]
            gpu = m.info.get("device") == "cuda"
            rate = max([t for t in tps if t] or [0]) if gpu else 0
            rate = rate or prices["local_tokens_per_s_default"]
            per_1m = prices["gpu_hour"] / (rate * 3600) * 1e6
            basis = (f"GPU at ${prices['gpu_hour']}/h and {rate:.0f} generated tokens/s"
                     + ("" if gpu else " (assumed: this run was not on a GPU)"))
        out[m.label] = {"prompt_tokens": prompt, "completion_tokens": completion,
                        "cost_per_1m_tokens_usd": round(per_1m, 4), "basis": basis}
    return out


def roi_line(costs: dict, llm_label: str | None, best_slm: str | None) -> str | None:
    if not llm_label or not best_slm or llm_label not in costs or best_slm not in costs:
        return None
    a, b = costs[llm_label]["cost_per_1m_tokens_usd"], costs[best_slm]["cost_per_1m_tokens_usd"]
    if not b:
        return None
    return (f"ROI: {best_slm} costs ${b:.2f} per 1M tokens against ${a:.2f} for the API baseline ({llm_label}), "
            f"{a / b:.1f}x {'cheaper' if a > b else 'more expensive'} per token.")


# -- inputs that must hold before any verdict ----------------------------------------------------------------
# (key path, type, what it is): every reader of the gates file relies on these
_GATES_SCHEMA = [
    (("gates",), list, "a list of {name, metric, op, threshold}"),
    (("capabilities",), list, "a list of {name, metric}: the headline metric of each capability"),
    (("vetoes",), list, "a list of {name, metric, op, threshold}"),
    (("relative", "aggregate"), str, "min or mean"),
    (("phase1", "proceed_ratio"), (int, float), "a number"),
    (("phase1", "winner_margin"), (int, float), "a number"),
    (("phase1", "winner_metric"), str, "<suite>.<metric>"),
    (("phase2", "max_delta"), (int, float), "a number"),
    (("do_no_harm", "max_regression"), (int, float), "a number between 0 and 1 (default 0.02)"),
    (("suites",), list, "the suite names"),
    (("prices",), dict, "the ROI prices"),
]


def _entry_fields(path, where: str, entry: dict) -> None:
    for k in ("name", "metric"):  # text the report prints and the metric lookup splits
        if not isinstance(entry[k], str) or not entry[k]:
            raise DataFileError(f"{path}: {where}.{k} is {entry[k]!r}, not a name")


def load_gates(path) -> dict:
    """The gates file, checked field by field: a missing or mistyped field is one error naming the file and field."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: gates file not found")
    try:
        g = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DataFileError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(g, dict):
        raise DataFileError(f"{path}: expected a mapping of sections (gates, relative, phase1, phase2, ...)")
    # older gates files have no do_no_harm section: the default applies, and is what the report states
    g.setdefault("do_no_harm", {"max_regression": DEFAULT_MAX_REGRESSION})
    for keys, typ, what in _GATES_SCHEMA:
        v = g
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if not isinstance(v, typ) or isinstance(v, bool) or isinstance(v, float) and not math.isfinite(v):
            raise DataFileError(f"{path}: field {'.'.join(keys)} is missing or not {what}")
    if not 0 <= g["do_no_harm"]["max_regression"] <= 1:  # NaN fails this too
        raise DataFileError(f"{path}: field do_no_harm.max_regression is {g['do_no_harm']['max_regression']!r}, not a "
                            "number between 0 and 1")
    if any(not isinstance(x, str) for x in g["suites"]):
        raise DataFileError(f"{path}: field suites must be a list of suite names, got {g['suites']!r}")
    if g["relative"]["aggregate"] not in ("mean", "min"):
        raise DataFileError(f"{path}: field relative.aggregate is {g['relative']['aggregate']!r}, not min or mean")
    for section in ("gates", "vetoes"):
        for i, gate in enumerate(g[section]):
            if not isinstance(gate, dict) or not {"name", "metric", "op", "threshold"} <= set(gate):
                raise DataFileError(f"{path}: {section}[{i}] needs name, metric, op and threshold")
            _entry_fields(path, f"{section}[{i}]", gate)
            if gate["op"] not in (">=", ">", "<=", "<"):
                raise DataFileError(f"{path}: {section}[{i}].op is {gate['op']!r}, not one of >=, >, <=, <")
            t = gate["threshold"]
            if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
                raise DataFileError(f"{path}: {section}[{i}].threshold is {t!r}, not a number")
    from fctune.metrics import higher_is_better, row_metrics

    for i, c in enumerate(g["capabilities"]):
        if not isinstance(c, dict) or not {"name", "metric"} <= set(c):
            raise DataFileError(f"{path}: capabilities[{i}] needs name and metric")
        _entry_fields(path, f"capabilities[{i}]", c)
        if not higher_is_better(c["metric"]):  # a capability is a ratio whose lower bound must clear the bar
            raise DataFileError(f"{path}: capabilities[{i}].metric {c['metric']!r} is better when lower; judge it "
                                "as a veto (with op and threshold) instead")

    per_row = row_metrics()
    for m in [c["metric"] for c in g["capabilities"]] + [g["phase1"]["winner_metric"]]:
        # a capability is compared row by row: its metric must be a mean over rows
        if m not in POOLED and (not isinstance(m, str) or "." not in m or m.split(".", 1)[1] not in per_row):
            raise DataFileError(f"{path}: metric {m!r} is not <suite>.<per-row metric> (one of "
                                f"{', '.join(per_row)}) or one of {', '.join(POOLED)}")
    for m in [x["metric"] for x in g["gates"] + g["vetoes"]]:
        if not isinstance(m, str) or "." not in m:
            raise DataFileError(f"{path}: metric {m!r} is not <suite>.<metric>")
    return g


def require_llm_results(llm: ModelResults | None, metrics: list[str], cfg: CompareConfig) -> None:
    """No verdict against nothing: the LLM baseline must exist and have scored rows on the compared metrics."""
    if llm is None:
        raise UserError(f"no LLM baseline result in {', '.join(cfg.results_dirs)} (no summary with role 'llm'): "
                        "nothing to compare against; evaluate the LLM first or name its label with --llm-label")
    # every suite a compared metric reads must have scored rows (json_quality pools the others: on its own it would
    # let, say, two Fledgling tracks stand in for the four suites)
    suites = sorted({m.split(".", 1)[0] for m in metrics} - {m.split(".", 1)[0] for m in POOLED})
    missing = [s for s in suites if not (llm.suites.get(s) or {}).get("n_scored")]
    if missing or not any((metric(llm, m) or {}).get("value") is not None for m in metrics):
        n_err = {s: (llm.suites.get(s) or {}).get("n_errors") for s in missing}
        where = ", ".join(missing) or "any compared metric"
        raise UserError(f"the LLM baseline {llm.label!r} has no scored rows on {where} (errors: {n_err}; found: "
                        f"{', '.join(sorted(llm.suites)) or 'nothing'}): nothing to compare against; evaluate the LLM "
                        "on every suite the gates file compares")


# -- the whole comparison ------------------------------------------------------------------------------------
def compare(cfg: CompareConfig) -> dict:
    from fctune.config import run_metadata
    from fctune.io import write_json_atomic
    from fctune.report import write_csvs, write_html

    gcfg = load_gates(cfg.gates)
    models, problems, fledgling_gates = discover(cfg.results_dirs, gcfg["suites"])
    if cfg.llm_label:
        llm = models.get(cfg.llm_label)
        if llm is None:
            raise DataFileError(f"--llm-label {cfg.llm_label!r}: no such model among {sorted(models)}")
    else:
        llms = sorted((m for m in models.values() if m.role == "llm"), key=lambda m: -len(m.suites))
        llm = llms[0] if llms else None
        if len(llms) > 1:
            problems.append(f"several LLM baselines ({[m.label for m in llms]}); using {llm.label} "
                            "(choose with --llm-label)")
    require_llm_results(llm, [c["metric"] for c in gcfg["capabilities"]], cfg)
    missing_models = []
    for want in gcfg.get("expected_models", []):
        if not any(all(_matches(m.info.get(k), v) for k, v in want.items()) for m in models.values()):
            skipped = (want.get("approach") == "fledgling" and want.get("role") == "finetuned" and fledgling_gates
                       and all(g.get("fine_tune") is False for g in fledgling_gates))
            missing_models.append({**want, "note": "skipped by the Fledgling gate" if skipped else "no result"})
    missing_suites = [{"model": m.label, "suite": s} for m in models.values() for s in gcfg["suites"]
                      if s not in m.suites and m.approach != "fledgling"]

    capabilities = {}
    for cap, names in capability_tables().items():
        table = {}
        for m in models.values():
            row = {}
            for name in names:
                v = metric(m, f"{cap}.{name}")
                if v:
                    row[name] = v
                    base = metric(llm, f"{cap}.{name}") if llm is not None and m is not llm else None
                    ratio = ratio_to_llm(name, v["value"], base["value"]) if base else None
                    if ratio is not None:
                        row[name] = {**v, "ratio_to_llm": ratio}
            if row:
                table[m.label] = row
        capabilities[cap] = table
    per_domain = {m.label: {d: v["args_field_f1"]["value"] for d, v in
                            ((m.suites.get("domain_diverse") or {}).get("breakdown") or {}).get("domain", {}).items()
                            if "args_field_f1" in v} for m in models.values() if "domain_diverse" in m.suites}
    for m in models.values():  # a model whose calls the strict reading does not read: say so next to the verdict
        differ = sum(s.get("n_read_differently") or 0 for s in m.suites.values())
        scored = sum(s.get("n_scored") or 0 for s in m.suites.values())
        if scored and differ / scored >= 0.1:
            problems.append(f"{m.label}: {differ} of {scored} rows carry calls outside its declared call format "
                            f"({', '.join(call_format_of(m))}); the strict reading does not read them (see the strict "
                            "and lenient readings)")
    bar = gcfg["phase1"]["proceed_ratio"] if cfg.phase == 1 else 1 - gcfg["phase2"]["max_delta"]
    # in phase 2 a fine-tune worse than its own base cannot be deployed (a veto); in phase 1 it is shown
    judged = judge_models(models, llm, gcfg, bar, regression_veto=cfg.phase == 2)
    decision = phase1_decision(models, llm, judged, gcfg) if cfg.phase == 1 else phase2_decision(models, llm, judged,
                                                                                                  gcfg)
    decision.update(aggregate=gcfg["relative"]["aggregate"], bar=bar, reading="strict")
    decision["regressions"] = [t for k, j in judged.items() if (t := harm_sentence(k, j.get("do_no_harm")))]
    # the same rule in the lenient reading, shown beside the verdict (never instead of it): what changes when every
    # recoverable call counts, e.g. for an LLM whose calls are not in its declared format
    lenient = judge_models(models, llm, gcfg, bar, reading="lenient", regression_veto=cfg.phase == 2)
    decision["lenient"] = (phase1_decision if cfg.phase == 1 else phase2_decision)(models, llm, lenient, gcfg)
    gates = gate_table(models, gcfg["gates"])
    served = load_roundtrips(cfg.served_dir)
    costs = cost_summary(models, gcfg["prices"], served)
    best = decision.get("model")
    bfcl = {m.label: {"non_live_ast": m.bfcl.get("non_live_ast"), "live_ast": m.bfcl.get("live_ast"),
                      "hallucination": m.bfcl.get("hallucination"),
                      "non_live_ast_lenient": m.bfcl.get("non_live_ast_lenient"),
                      "categories": {c: {k: v.get(k) for k in ("accuracy", "accuracy_lenient", "correct", "total",
                                                               "ci", "n_truncated")}
                                     for c, v in m.bfcl["categories"].items()}}
            for m in models.values() if m.bfcl}
    fledgling = {"gates": fledgling_gates,
                 "tracks": {m.label: {t: {k: m.suites[t].get(k) for k in ("valid_json_rate", "schema_valid_rate",
                                                                              "exact_match_rate", "field_f1")}
                                      for t in FLEDGLING_TRACKS if t in m.suites}
                            for m in models.values() if any(t in m.suites for t in FLEDGLING_TRACKS)}}
    sources = sorted({str(s.get("split_source")) for m in models.values() for s in m.suites.values()
                      if s.get("split_source")})
    report = {
        "phase": cfg.phase,
        "decision": decision,
        "llm_baseline": llm.label if llm else None,
        "models": {m.label: {**{k: m.info.get(k) for k in ("approach", "role", "family", "backend", "model",
                                                              "adapter", "adapter_version_id", "endpoint_host",
                                                              "device", "dtype", "tools_mode", "served_by",
                                                              "model_description", "tool_tokens")},
                             "suites": sorted(m.suites), "results_dir": m.source_dir} for m in models.values()},
        "missing_models": missing_models,
        "missing_suites": missing_suites,
        "problems": problems,
        "capabilities": capabilities,
        "per_domain_field_f1": per_domain,
        "verdicts": judged,
        "do_no_harm": {k: j["do_no_harm"] for k, j in judged.items() if j.get("do_no_harm")},
        "questions": seed_questions(models, llm, judged, costs, per_domain, gcfg),
        "readings": {m.label: {"call_format": call_format_of(m), **{
            suite: {"strict": (sm.get("metrics") or {}).get(k, {}).get("value"),
                    "lenient": (sm.get("metrics_lenient") or {}).get(k, {}).get("value"), "metric": k}
            for suite, sm in m.suites.items() if sm.get("metrics_lenient") is not None
            for k in [suite_headline(suite)] if k}} for m in models.values()},
        "gates": gates,
        "bfcl": bfcl,
        "fledgling": fledgling,
        "failure_analysis": {m.label: failure_analysis(m) for m in models.values()},
        "cost": costs,
        "served": served,
        "roi": roi_line(costs, llm.label if llm else None, best),
        "data_sources": sources,
        "run": run_metadata(cfg),
    }
    out = Path(cfg.output_dir)
    write_json_atomic(out / f"phase{cfg.phase}_comparison.json", report)
    report["csv_files"] = write_csvs(report, out / "csv")
    report["html"] = str(write_html(report, out / f"phase{cfg.phase}_report.html"))
    return report


def main(argv=None) -> int:
    """The command line (``fctune compare``, and the documented script)."""
    from fctune.cli import run_script

    return run_script(CompareConfig, compare, argv, summary=lambda r: (
        f"phase {r['phase']} verdict: {r['decision']['verdict']} ({r['decision'].get('reason', '')})\n"
        f"models: {', '.join(r['models'])}; missing: {len(r['missing_models'])} models, "
        f"{len(r['missing_suites'])} model/suite results\nreport: {r['html']}"))


if __name__ == "__main__":
    raise SystemExit(main())
