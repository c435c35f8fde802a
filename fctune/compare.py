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

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fctune.errors import UserError
from fctune.io import DataFileError, read_json, read_jsonl_tolerant
from fctune.metrics import bootstrap_ci

log = logging.getLogger(__name__)

CAPABILITIES = {
    "single_turn": ["args_exact_match_rate", "args_field_f1", "args_field_precision", "args_field_recall",
                    "name_match_rate", "valid_json_rate", "args_exact_match_rate_lenient"],
    "multi_turn": ["args_exact_match_rate", "args_field_f1", "args_field_precision", "args_field_recall",
                   "name_match_rate", "valid_json_rate"],
    "domain_diverse": ["args_field_f1", "args_exact_match_rate", "valid_json_rate", "domain_f1_std"],
    "structured_json": ["valid_json_rate", "schema_valid_rate", "json_exact_match_rate", "field_f1"],
    "json_quality": ["valid_json_rate"],
}
LOWER_IS_BETTER = {"domain_f1_std"}
FLEDGLING_TRACKS = ("fledgling_structured", "fledgling_toolcall")


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


# -- loading -------------------------------------------------------------------------------------------------
@dataclass
class ModelResults:
    label: str
    info: dict
    suites: dict = field(default_factory=dict)     # suite -> summary
    details: dict = field(default_factory=dict)    # suite -> details path
    bfcl: dict | None = None
    source_dir: str = ""

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
            m = models.setdefault(label, ModelResults(label, info, source_dir=str(p)))
            first = m.bfcl if s["suite"] == "bfcl" else m.suites.get(s["suite"])
            if first is not None and first != s:  # an identical copy (the LLM's tracks by each Fledgling run) is harmless
                problems.append(f"{f}: a second, different {s['suite']} result for {label!r} (the first: "
                                f"{read_from[label, s['suite']]}); the later file is used")
            read_from[label, s["suite"]] = f
            if s["suite"] == "bfcl":
                m.bfcl = s
            else:
                m.suites[s["suite"]] = s
                det = f.with_name(f.stem + "_details.jsonl")
                if det.exists():
                    m.details[s["suite"]] = det
            if not m.info.get("role") and info.get("role"):
                m.info = info
    return models, problems, gates


def metric(m: ModelResults, path: str) -> dict | None:
    """``{"value", "ci", "n"}`` for ``suite.metric`` (``json_quality`` pools every suite's verdicts)."""
    suite, name = path.split(".", 1)
    if suite == "json_quality":
        vals = []
        for det in m.details.values():
            rows, _ = read_jsonl_tolerant(det)
            vals += [1.0 if r["valid_json"] else 0.0 for r in rows
                     if r.get("error") is None and r.get("valid_json") is not None
                     and r.get("expected_kind") in ("tool_calls", "json")]
        if not vals:
            return None
        return {"value": round(sum(vals) / len(vals), 4), "ci": bootstrap_ci(vals), "n": len(vals)}
    s = m.suites.get(suite)
    if s is None:
        return None
    if name in (s.get("metrics") or {}):
        return dict(s["metrics"][name])
    if s.get(name) is not None:
        return {"value": s[name], "ci": None, "n": s.get("n_scored")}
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


def relative_scores(m: ModelResults, llm: ModelResults, metrics: list[str], aggregate: str) -> dict:
    """Per-metric ratio SLM / LLM (with bounds from both intervals) and their aggregate."""
    per, lows, highs = {}, [], []
    for path in metrics:
        a, b = metric(m, path), metric(llm, path)
        if not a or not b or a["value"] is None or b["value"] is None:
            per[path] = {"ratio": None, "why": "missing"}
            continue
        if b["value"] == 0:
            per[path] = {"slm": a["value"], "llm": 0.0, "ratio": None, "why": "the LLM scores 0: ratio undefined"}
            continue
        ratio = a["value"] / b["value"]
        lo = hi = ratio
        if a.get("ci") and b.get("ci"):
            lo = a["ci"][0] / b["ci"][1] if b["ci"][1] else ratio
            hi = a["ci"][1] / b["ci"][0] if b["ci"][0] else float("inf")
        per[path] = {"slm": a["value"], "llm": b["value"], "ratio": round(ratio, 4), "ratio_range": [
            round(lo, 4), round(hi, 4) if hi != float("inf") else None], "slm_ci": a.get("ci"), "llm_ci": b.get("ci")}
        lows.append(lo)
        highs.append(hi)
    ratios = [p["ratio"] for p in per.values() if p["ratio"] is not None]
    agg = (min if aggregate == "min" else (lambda xs: sum(xs) / len(xs)))
    return {"per_metric": per, "score": round(agg(ratios), 4) if ratios else None,
            "score_range": [round(agg(lows), 4), round(agg([h for h in highs if h != float("inf")] or [0]), 4)]
            if ratios else None, "metrics_used": len(ratios)}


def _ci_overlap(a, b) -> bool:
    return bool(a and b and a[0] <= b[1] and b[0] <= a[1])


def phase1_decision(models, llm, rel: dict, cfg: dict) -> dict:
    p1 = cfg["phase1"]
    slms = [m for m in models.values() if m.role == "finetuned"]
    scored = [(m, rel[m.label]) for m in slms if rel.get(m.label, {}).get("score") is not None]
    numbers = {m.label: {"relative_score": r["score"], "range": r["score_range"]} for m, r in scored}
    notes = []
    if llm is None:
        return {"verdict": "INCOMPLETE", "reason": "no LLM baseline result: nothing to compare against",
                "numbers": numbers}
    above = [(m, r) for m, r in scored if r["score"] >= p1["proceed_ratio"]]
    if above:
        best = max(above, key=lambda mr: mr[1]["score"])
        for m, r in above:
            if r["score_range"] and r["score_range"][0] < p1["proceed_ratio"]:
                notes.append(f"{m.label}: {r['score']:.1%} of the LLM, but the interval reaches down to "
                             f"{r['score_range'][0]:.1%}: the difference to the {p1['proceed_ratio']:.0%} bar is "
                             "inside the confidence interval")
        return {"verdict": "PROCEED TO PHASE 2", "reason": f"{', '.join(m.label for m, _ in above)} reach "
                f">= {p1['proceed_ratio']:.0%} of the LLM (best {best[0].label}: {best[1]['score']:.1%})",
                "numbers": numbers, "notes": notes}
    paper = {m.family: (m, r) for m, r in scored if m.approach == "paper" and m.family}
    if len(paper) >= 2:
        (fa, (ma, ra)), (fb, (mb, rb)) = sorted(paper.items(), key=lambda kv: -kv[1][1]["score"])[:2]
        margin = ra["score"] - rb["score"]
        wa, wb = metric(ma, p1["winner_metric"]), metric(mb, p1["winner_metric"])
        overlap = _ci_overlap(wa and wa.get("ci"), wb and wb.get("ci"))
        numbers["winner_check"] = {"leader": ma.label, "runner_up": mb.label, "margin": round(margin, 4),
                                   p1["winner_metric"]: {ma.label: wa, mb.label: wb}, "ci_overlap": overlap}
        if margin >= p1["winner_margin"] and not overlap:
            return {"verdict": "FOCUS ON WINNER", "winner": fa, "reason": f"{fa} ({ma.label}) leads {fb} by "
                    f"{margin:.1%} of the LLM and its {p1['winner_metric']} interval does not overlap", "numbers": numbers,
                    "notes": notes}
        if margin >= p1["winner_margin"]:
            notes.append(f"{fa} leads {fb} by {margin:.1%}, but their {p1['winner_metric']} intervals overlap: the "
                         "difference is inside the confidence interval, so there is no clear winner")
    for m, r in scored:
        if r["score_range"] and r["score_range"][1] >= p1["proceed_ratio"]:
            notes.append(f"{m.label}: {r['score']:.1%} of the LLM, but the interval reaches {r['score_range'][1]:.1%}: "
                         f"reaching {p1['proceed_ratio']:.0%} is inside the confidence interval, not ruled out")
    reason = (f"no approach reaches {p1['proceed_ratio']:.0%} of the LLM" if scored else
              "no fine-tuned model has a relative score (missing results or the LLM scores 0 everywhere)")
    return {"verdict": "ITERATE", "reason": reason, "numbers": numbers, "notes": notes}


def phase2_decision(models, llm, rel: dict, cfg: dict) -> dict:
    limit = cfg["phase2"]["max_delta"]
    scored = {m.label: rel[m.label] for m in models.values()
              if m.role == "finetuned" and rel.get(m.label, {}).get("score") is not None}
    if llm is None or not scored:
        return {"verdict": "INCOMPLETE", "reason": "no LLM baseline or no fine-tuned results", "numbers": {}}
    best_label, best = max(scored.items(), key=lambda kv: kv[1]["score"])
    delta = 1 - best["score"]
    numbers = {k: {"relative_score": v["score"], "delta": round(1 - v["score"], 4), "range": v["score_range"]}
               for k, v in scored.items()}
    notes = []
    if best["score_range"] and (1 - best["score_range"][0]) > limit >= delta:
        notes.append(f"{best_label}: delta {delta:.1%} is within {limit:.0%}, but the interval allows up to "
                     f"{1 - best['score_range'][0]:.1%}: inside the confidence interval")
    if delta <= limit:
        return {"verdict": "DEPLOY TO PRODUCTION", "model": best_label,
                "reason": f"{best_label} is {delta:.1%} below the LLM (<= {limit:.0%})", "numbers": numbers,
                "notes": notes}
    if best["score_range"] and 1 - best["score_range"][1] <= limit:
        notes.append(f"{best_label}: delta {delta:.1%}, but the interval reaches {best['score_range'][1]:.1%} of the LLM: "
                     f"a gap within {limit:.0%} is inside the confidence interval, not ruled out")
    return {"verdict": "ANALYZE FAILURE MODES", "reason": f"the best SLM ({best_label}) is {delta:.1%} below the "
            f"LLM (> {limit:.0%})", "numbers": numbers, "notes": notes}


# -- failure analysis and cost -------------------------------------------------------------------------------
def failure_analysis(m: ModelResults, per_reason: int = 3) -> dict:
    out = {}
    for suite, det in m.details.items():
        rows, _ = read_jsonl_tolerant(det)
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


def cost_summary(models: dict[str, ModelResults], prices: dict) -> dict:
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
    (("relative", "metrics"), list, "the metrics compared with the LLM, as <suite>.<metric>"),
    (("relative", "aggregate"), str, "mean or min"),
    (("phase1", "proceed_ratio"), (int, float), "a number"),
    (("phase1", "winner_margin"), (int, float), "a number"),
    (("phase1", "winner_metric"), str, "<suite>.<metric>"),
    (("phase2", "max_delta"), (int, float), "a number"),
    (("suites",), list, "the suite names"),
    (("prices",), dict, "the ROI prices"),
]


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
    for keys, typ, what in _GATES_SCHEMA:
        v = g
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if not isinstance(v, typ) or isinstance(v, bool):
            raise DataFileError(f"{path}: field {'.'.join(keys)} is missing or not {what}")
    if g["relative"]["aggregate"] not in ("mean", "min"):
        raise DataFileError(f"{path}: field relative.aggregate is {g['relative']['aggregate']!r}, not mean or min")
    for i, gate in enumerate(g["gates"]):
        if not isinstance(gate, dict) or not {"name", "metric", "op", "threshold"} <= set(gate):
            raise DataFileError(f"{path}: gates[{i}] needs name, metric, op and threshold")
        if gate["op"] not in (">=", ">", "<=", "<"):
            raise DataFileError(f"{path}: gates[{i}].op is {gate['op']!r}, not one of >=, >, <=, <")
    for m in g["relative"]["metrics"] + [g["phase1"]["winner_metric"]]:
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
    suites = sorted({m.split(".", 1)[0] for m in metrics} - {"json_quality"})
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
    require_llm_results(llm, gcfg["relative"]["metrics"], cfg)
    missing_models = []
    for want in gcfg.get("expected_models", []):
        if not any(all(_matches(m.info.get(k), v) for k, v in want.items()) for m in models.values()):
            skipped = (want.get("approach") == "fledgling" and want.get("role") == "finetuned" and fledgling_gates
                       and all(g.get("fine_tune") is False for g in fledgling_gates))
            missing_models.append({**want, "note": "skipped by the Fledgling gate" if skipped else "no result"})
    missing_suites = [{"model": m.label, "suite": s} for m in models.values() for s in gcfg["suites"]
                      if s not in m.suites and m.approach != "fledgling"]

    capabilities = {}
    for cap, names in CAPABILITIES.items():
        table = {}
        for m in models.values():
            row = {}
            for name in names:
                v = metric(m, f"{cap}.{name}")
                if v:
                    row[name] = v
                    if llm is not None and m is not llm and name not in LOWER_IS_BETTER:
                        base = metric(llm, f"{cap}.{name}")
                        if base and base["value"]:
                            row[name] = {**v, "ratio_to_llm": round(v["value"] / base["value"], 4)}
            if row:
                table[m.label] = row
        capabilities[cap] = table
    per_domain = {m.label: {d: v["args_field_f1"]["value"] for d, v in
                            ((m.suites.get("domain_diverse") or {}).get("breakdown") or {}).get("domain", {}).items()
                            if "args_field_f1" in v} for m in models.values() if "domain_diverse" in m.suites}
    rel = {m.label: relative_scores(m, llm, gcfg["relative"]["metrics"], gcfg["relative"]["aggregate"])
           for m in models.values() if llm is not None and m is not llm}
    decision = phase1_decision(models, llm, rel, gcfg) if cfg.phase == 1 else phase2_decision(models, llm, rel, gcfg)
    gates = gate_table(models, gcfg["gates"])
    costs = cost_summary(models, gcfg["prices"])
    best = max((m for m in models.values() if m.role == "finetuned" and rel.get(m.label, {}).get("score") is not None),
               key=lambda m: rel[m.label]["score"], default=None)
    bfcl = {m.label: {"non_live_ast": m.bfcl.get("non_live_ast"), "live_ast": m.bfcl.get("live_ast"),
                      "hallucination": m.bfcl.get("hallucination"),
                      "categories": {c: {k: v[k] for k in ("accuracy", "correct", "total", "ci")}
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
                                                              "model_description")},
                             "suites": sorted(m.suites), "results_dir": m.source_dir} for m in models.values()},
        "missing_models": missing_models,
        "missing_suites": missing_suites,
        "problems": problems,
        "capabilities": capabilities,
        "per_domain_field_f1": per_domain,
        "relative_to_llm": rel,
        "gates": gates,
        "bfcl": bfcl,
        "fledgling": fledgling,
        "failure_analysis": {m.label: failure_analysis(m) for m in models.values()},
        "cost": costs,
        "roi": roi_line(costs, llm.label if llm else None, best.label if best else None),
        "data_sources": sources,
        "run": run_metadata(cfg),
    }
    out = Path(cfg.output_dir)
    write_json_atomic(out / f"phase{cfg.phase}_comparison.json", report)
    report["csv_files"] = write_csvs(report, out / "csv")
    report["html"] = str(write_html(report, out / f"phase{cfg.phase}_report.html"))
    return report
