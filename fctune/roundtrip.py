"""The round trip: export a fine-tuned adapter, serve it, and evaluate the served model through the OpenAI backend —
the code path an Azure deployment takes — on the suites (and a BFCL sample), then set the served scores beside the
in-process ones row by row. A team deploys the served model, so the verdict must hold for it.

    python -m fctune.roundtrip --adapter paper_approach/adapters/phi --label paper-phi-ft --bfcl-sample 10

Writes ``SERVED_DIR/<label>-served_*`` (the served model's results, kept out of the comparison's folders) and
``SERVED_DIR/<label>_roundtrip.json``: per capability and veto metric, the in-process and served values with a paired
bootstrap 95% interval of their difference (``differs`` when it excludes 0), BFCL per category the same way, and the
served model's measured latency (p50/p95) and generated tokens/s on this machine, for the cost section.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from fctune.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class RoundTripConfig:
    """Export an adapter, serve it with tool calling, evaluate it through the OpenAI backend, compare it with the
    in-process results."""

    adapter: str = field(default="", metadata={"help": "the fine-tuned adapter folder"})
    label: str = field(default="", metadata={"help": "the in-process results' label (e.g. paper-phi-ft)"})
    results_dir: str = field(default="paper_approach/eval_results", metadata={"help": "the in-process results"})
    served_dir: str = field(default="paper_approach/served_results", metadata={
        "help": "where the served model's results go (apart, so the comparison does not judge them as a new model)"})
    export_dir: str | None = field(default=None, metadata={"help": "export folder (default paper_approach/exported/"
                                                                   "<adapter>)"})
    gguf_type: str = field(default="f16", metadata={"help": "GGUF to serve (f16 keeps the in-process weights' "
                                                             "precision closest)"})
    suites: list[str] = field(default_factory=list,
                              metadata={"help": "suites (default: those with in-process results)"})
    splits_dir: str = field(default="comparison_framework/test_splits", metadata={"help": "the suites' splits"})
    bfcl_sample: int = field(default=0, metadata={"min": 0, "help": "BFCL non-live rows per category (0: none; the "
                                                                    "in-process run must have the same sample)"})
    limit: int | None = field(default=None, metadata={"min": 1, "help": "first N rows of each suite (as in-process)"})
    max_new_tokens: int | None = field(default=None, metadata={"min": 1, "help": "as in-process (default: the "
                                                                               "suites' budgets)"})
    n_ctx: int = field(default=4096, metadata={"min": 256, "help": "server context size"})
    threads: int | None = field(default=None, metadata={"min": 1, "help": (
        "server CPU threads, for decoding and for prompts (default: OMP_NUM_THREADS where set, else every core)")})
    request_timeout_s: float = field(default=300.0, metadata={"gt": 0, "help": "per request (CPU serving is slow)"})
    gates: str = field(default="comparison_framework/gates.yaml", metadata={"help": "capabilities and vetoes"})


def _latency(served_dir: Path, label: str) -> dict:
    """p50/p95 latency and generated tokens/s over every served request (one at a time, so tokens/s is per stream)."""
    lat, toks = [], 0
    for f in sorted(served_dir.glob(f"{label}_*_predictions.jsonl")):
        for line in f.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r.get("error") is None and r.get("latency_s") is not None:
                lat.append(float(r["latency_s"]))
                toks += int(r.get("completion_tokens") or 0)
    if not lat:
        return {"requests": 0}
    q = statistics.quantiles(lat, n=20, method="inclusive") if len(lat) > 1 else [lat[0]] * 19
    return {"requests": len(lat), "latency_p50_s": round(statistics.median(lat), 3), "latency_p95_s": round(q[18], 3),
            "generated_tokens": toks, "generated_tokens_per_s": round(toks / sum(lat), 2) if sum(lat) else None,
            "machine": machine()}


def machine() -> dict:
    """The serving machine, named: its GPU, else its CPU model and core count."""
    from fctune.config import hardware

    info = hardware()
    cpu = info["cpu"]["model_name"]
    gpus = info.get("gpus") or []
    # llama.cpp here runs on the CPU even where a GPU exists (llama-cpp-python is built for the CPU)
    info["description"] = f"{cpu or 'CPU'} ({info.get('cpu_count')} cores), llama.cpp on the CPU" + (
        f"; GPU present but not used: {gpus[0]}" if gpus else "")
    return info


def _bfcl_rows(path: Path) -> dict[str, dict[str, float]]:
    """category -> row id -> 1/0 from a BFCL details file."""
    out: dict[str, dict[str, float]] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if r.get("error") is None and r.get("category"):
            out.setdefault(r["category"], {})[r["id"]] = 1.0 if r.get("valid") else 0.0
    return out


def compare_served(cfg: RoundTripConfig, served_label: str, suites: list[str]) -> dict:
    from fctune.compare import discover, load_gates, row_scores
    from fctune.decision import paired_difference
    from fctune.evaluate import result_paths

    gates = load_gates(cfg.gates)
    inproc = discover([cfg.results_dir], suites)[0].get(cfg.label)
    served = discover([cfg.served_dir], suites)[0].get(served_label)
    if inproc is None or served is None:
        raise UserError(f"no results for {cfg.label!r} in {cfg.results_dir} or {served_label!r} in {cfg.served_dir}")
    metrics = [(c["name"], c["metric"]) for c in gates["capabilities"]] + [(v["name"], v["metric"])
                                                                          for v in gates["vetoes"]]
    rows = []
    for name, path in metrics:
        d = paired_difference(row_scores(served, path), row_scores(inproc, path))
        d.update(name=name, metric=path, served=d.pop("a", None), in_process=d.pop("b", None))
        d["differs"] = bool(d["ci"] and (d["ci"][0] > 0 or d["ci"][1] < 0))
        rows.append(d)
    bfcl = []
    a = _bfcl_rows(result_paths(cfg.served_dir, served_label, "bfcl")[1])
    b = _bfcl_rows(result_paths(cfg.results_dir, cfg.label, "bfcl")[1])
    for cat in sorted(set(a) & set(b)):
        d = paired_difference(a[cat], b[cat])
        d.update(category=cat, served=d.pop("a", None), in_process=d.pop("b", None))
        d["differs"] = bool(d["ci"] and (d["ci"][0] > 0 or d["ci"][1] < 0))
        bfcl.append(d)
    return {"metrics": rows, "bfcl": bfcl}


def _parity_rows(cfg: RoundTripConfig, suites: list[str]) -> str | None:
    """The rows the exported template is checked on: the adapter's validation split when it is here (export's own
    default), else the first suite split the round trip evaluates (so the check runs wherever the adapter came from)."""
    from fctune.io import read_json
    from fctune.suites import SUITES

    meta = Path(cfg.adapter) / "metadata.json"
    val = ((read_json(meta) if meta.exists() else {}).get("dataset") or {}).get("val_file")
    if val and Path(val).exists():
        return None
    return next((str(p) for s in suites if s in SUITES and (p := Path(cfg.splits_dir) / SUITES[s].file).exists()),
                None)


def roundtrip(cfg: RoundTripConfig) -> dict:
    from fctune.bfcl import BfclConfig, run_bfcl
    from fctune.evaluate import EvalConfig, evaluate
    from fctune.export import ExportConfig, export
    from fctune.io import write_json_atomic
    from fctune.llama_server import LlamaServer

    if not cfg.adapter or not cfg.label:
        raise UserError("--adapter and --label (the in-process results' label) are required")
    suites = cfg.suites or sorted({f.name[len(cfg.label) + 1:-5] for f in Path(cfg.results_dir).glob(
        f"{cfg.label}_*.json") if not f.name.endswith((".run.json", "_bfcl.json", "_roundtrip.json"))})
    if not suites:
        raise UserError(f"no in-process results for {cfg.label!r} in {cfg.results_dir}: evaluate the adapter first")
    info = export(ExportConfig(adapter=cfg.adapter, output=cfg.export_dir, gguf_types=[cfg.gguf_type],
                               parity_file=_parity_rows(cfg, suites)))
    gguf = next(Path(info["merged"]).parent / n for n in info["gguf"])
    served_label = f"{cfg.label}-served"
    Path(cfg.served_dir).mkdir(parents=True, exist_ok=True)
    common = dict(backend="openai", model=gguf.name, label=served_label, role="served", results_dir=cfg.served_dir,
                  # llama-cpp-python's server accepts response_format text/json_object only: the schema goes in the
                  # system prompt, where the renderer put it in training
                  tools_mode="native", structured_mode="prompt", max_concurrency=1,
                  request_timeout_s=cfg.request_timeout_s, max_new_tokens=cfg.max_new_tokens, api_names="as-is")
    with LlamaServer(str(gguf), tokenizer=info["merged"], n_ctx=cfg.n_ctx, n_threads=cfg.threads,
                     log_path=str(Path(cfg.served_dir) / f"{served_label}_server.log")) as srv:
        evaluate(EvalConfig(**common, base_url=srv.base_url, suites=suites, splits_dir=cfg.splits_dir,
                            limit=cfg.limit))
        if cfg.bfcl_sample:
            run_bfcl(BfclConfig(**common, base_url=srv.base_url, categories=["non_live"], sample=cfg.bfcl_sample))
    out = {"adapter": cfg.adapter, "label": cfg.label, "served_label": served_label, "export": info["merged"],
           "gguf": gguf.name, "served_by": "llama.cpp server (llama-cpp-python) with fctune's template handler",
           "suites": suites, **compare_served(cfg, served_label, suites),
           "served_throughput": _latency(Path(cfg.served_dir), served_label)}
    write_json_atomic(Path(cfg.served_dir) / f"{cfg.label}_roundtrip.json", out)
    return out


def summary(r: dict) -> str:
    lines = [f"{r['label']}: in-process vs served ({r['gguf']})"]
    for m in r["metrics"] + r["bfcl"]:
        lines.append(f"  {m.get('name') or 'BFCL ' + m['category']}: {m['in_process']} vs {m['served']} "
                     f"(difference {m['difference']} {m['ci']}){'  DIFFERS' if m['differs'] else ''}")
    t = r["served_throughput"]
    lines.append(f"  served: p50 {t.get('latency_p50_s')} s, p95 {t.get('latency_p95_s')} s, "
                 f"{t.get('generated_tokens_per_s')} generated tokens/s over {t.get('requests')} requests")
    return "\n".join(lines)


def main(argv=None) -> int:
    from fctune.cli import run_script

    return run_script(RoundTripConfig, roundtrip, argv, summary=summary)


if __name__ == "__main__":
    raise SystemExit(main())
