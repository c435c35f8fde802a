#!/usr/bin/env python3
"""The local backend's decoding engines on BFCL, timed through the real command, with GPU utilisation, and
whether they write the same answers.

    python benchmarks/eval_engines.py --model smollm2 --categories non_live \
        --runs padded:64 static:256 static:256:nopool --repeats 3 --max-new-tokens 256 --work /tmp/eng \
        --out benchmarks/results/eval_engines_h200.json

Each run is ``python -m fctune.bfcl run --engine E [--batch-size N]`` in its own process and results folder (nothing
resumed), so a figure is what a user gets from that command: rows / generation seconds (model loading excluded, as
in the run's own ``throughput``) and rows / wall seconds. While it runs, ``nvidia-smi`` samples the GPU's
utilisation every 500 ms (median and mean over the run's samples). Afterwards the first repeat of every
configuration is compared with the first configuration's answers row by row: identical text, or where they part.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fctune.backends.local import ENGINES

POOLING = {"pool": "true", "nopool": "false"}  # a run's third field: --pool-tasks (absent: auto)
SAMPLE_MS = 500  # nvidia-smi's sampling interval


def parse_run(spec: str) -> dict:
    """``engine[:batch size[:pool|nopool]]``, e.g. ``static:256:nopool``."""
    engine, batch, pool, *rest = spec.split(":") + ["", ""]
    if engine not in ENGINES or (pool and pool not in POOLING) or any(rest):
        raise SystemExit(f"--runs {spec}: engine[:batch size[:pool|nopool]], the engine one of {', '.join(ENGINES)}")
    return {"name": spec, "engine": engine, "batch_size": int(batch) if batch else None,
            "pool_tasks": POOLING.get(pool, "auto")}


def gpu_sampler(out: Path) -> subprocess.Popen | None:
    """nvidia-smi writing this process's GPU utilisation (%) and memory (MiB) every 500 ms, or None without one."""
    gpu = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]
    try:
        return subprocess.Popen(["nvidia-smi", "-i", gpu, "--query-gpu=utilization.gpu,memory.used",
                                 "--format=csv,noheader,nounits", "-lms", str(SAMPLE_MS)], stdout=out.open("w"),
                                stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        return None


def read_samples(path: Path) -> dict | None:
    util, mem = [], []
    for line in path.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            util.append(int(parts[0]))
            mem.append(int(parts[1]))
    if not util:
        return None
    return {"samples": len(util), "util_median_pct": statistics.median(util),
            "util_mean_pct": round(statistics.fmean(util), 1), "memory_max_mib": max(mem)}


def one_run(args, run: dict, repeat: int) -> dict:
    """One ``fctune.bfcl run`` in a fresh folder; its own summary gives the rows and generation time."""
    folder = Path(args.work) / f"{run['name'].replace(':', '-')}_r{repeat}"
    cmd = [sys.executable, "-m", "fctune.bfcl", "run", "--model", args.model, "--label", "bench", "--role", "base",
           "--categories", *args.categories, "--max-new-tokens", str(args.max_new_tokens), "--engine", run["engine"],
           "--dtype", args.dtype, "--results-dir", str(folder), "--resume", "false", "--pool-tasks", run["pool_tasks"]]
    if run["batch_size"]:
        cmd += ["--batch-size", str(run["batch_size"])]
    if args.adapter:
        cmd += ["--adapter", args.adapter]
    if args.sample:
        cmd += ["--sample", str(args.sample)]
    samples = Path(tempfile.mkstemp(suffix=".csv")[1])
    sampler = gpu_sampler(samples)
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if sampler:
        sampler.terminate()
        sampler.wait()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return record(run["name"], repeat, folder, " ".join(cmd[1:]), wall, read_samples(samples) if sampler else None)


def record(name: str, repeat: int, folder: Path, command: str, wall: float, gpu: dict | None) -> dict:
    """One run's figures from its own summary (``bench_bfcl.json``)."""
    summary = json.loads((folder / "bench_bfcl.json").read_text())
    tp = summary["throughput"]
    if gpu:  # seconds of GPU work (mean utilisation over the samples' span) per second of generation: the samples
        # span the whole process (loading, compiling), where a median of them says little about a short run
        busy = gpu["util_mean_pct"] / 100 * gpu["samples"] * SAMPLE_MS / 1000
        gpu = {**gpu, "busy_s": round(busy, 1), "busy_per_generation_s": round(busy / tp["generation_s"], 2)}
    return {"run": name, "repeat": repeat, "folder": str(folder), "command": command,
            "rows": tp["examples"], "generation_s": tp["generation_s"], "load_s": tp.get("load_s"),
            "process_wall_s": round(wall, 1), "rows_per_s": round(tp["examples"] / tp["generation_s"], 3),
            "rows_per_s_wall": round(tp["examples"] / wall, 3), "generated_tokens": tp["generated_tokens"],
            "non_live_ast": summary.get("non_live_ast"), "gpu": gpu, "category_wall_s": category_seconds(summary)}


def category_seconds(summary: dict) -> dict:
    """Each category's wall seconds, in the order the run took them (from the run's summary): where the first
    costs far more than the others, that is the static engine's compilation. Categories answered in one pass
    (``--pool-tasks``) have a share of the pass's seconds by rows."""
    return {name: c.get("wall_s") for name, c in (summary.get("categories") or {}).items()}


def collect(work: str, log: str | None, names: list[str]) -> list[dict]:
    """Records rebuilt from the run folders of an interrupted benchmark (``NAME_rREPEAT``; the GPU samples from the
    lines it printed to ``log``, the wall time from each run's summary, which excludes the process start)."""
    printed = {}
    for line in Path(log).read_text().splitlines() if log else []:
        if line.startswith("{"):
            r = json.loads(line)
            if "run" in r:  # a run's line (the closing summary line has none); the first of its name and repeat,
                printed.setdefault((r["run"], r["repeat"]), r.get("gpu"))  # as a log may go on to a later benchmark
    out = []
    for folder in sorted(Path(work).iterdir()):
        if not (folder / "bench_bfcl.json").exists():
            continue
        stem, _, rep = folder.name.rpartition("_r")
        name = stem.replace("-", ":")  # one_run wrote the run's name with '-' for ':'
        wall = json.loads((folder / "bench_bfcl.json").read_text())["wall_s"]
        out.append(record(name, int(rep), folder, "(collected)", wall, printed.get((name, int(rep)))))
    return sorted((r for r in out if r["run"] in names), key=lambda r: (r["repeat"], names.index(r["run"])))


def answers(folder: str) -> dict:
    out = {}
    for f in sorted(Path(folder).glob("bench_bfcl_*_predictions.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            out[r["id"]] = r
    return out


def compare(reference: dict, other: dict) -> dict:
    """Row by row: the same text, or the first character where the two answers part (and both answers' length)."""
    differing = []
    for rid, ref in reference.items():
        got = other.get(rid)
        if got is None or got.get("output") != ref.get("output"):
            a, b = ref.get("output") or "", (got or {}).get("output") or ""
            at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            differing.append({"id": rid, "first_difference_at_char": at, "reference_chars": len(a),
                              "other_chars": len(b), "reference_finish": ref.get("finish_reason"),
                              "other_finish": (got or {}).get("finish_reason")})
    return {"rows": len(reference), "identical": len(reference) - len(differing), "differing": differing}


def summarize(records: list[dict], names: list[str], answers_of) -> tuple[list[dict], dict, dict]:
    """Per configuration, in ``names`` order: its repeats and median (min, max) rows/s; then, row by row, each
    configuration's first repeat against the first configuration's, and each one's first repeat against its last.
    ``answers_of(record)`` reads a run's answers by row id."""
    by_name = {n: [r for r in records if r["run"] == n] for n in names}
    summary = [{"run": n, "repeats": len(rs), "rows_per_s_median": statistics.median(r["rows_per_s"] for r in rs),
                "rows_per_s_min": min(r["rows_per_s"] for r in rs), "rows_per_s_max": max(r["rows_per_s"] for r in rs)}
               for n, rs in by_name.items()]
    reference = answers_of(by_name[names[0]][0])
    same = {n: compare(reference, answers_of(rs[0])) for n, rs in by_name.items() if n != names[0]}
    repeatable = {n: compare(answers_of(rs[0]), answers_of(rs[-1]))["identical"] for n, rs in by_name.items()
                  if len(rs) > 1}
    return summary, same, repeatable


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--adapter")
    ap.add_argument("--categories", nargs="+", default=["non_live"])
    ap.add_argument("--sample", type=int, help="a seeded sample of N rows per category (fctune.bfcl run --sample)")
    ap.add_argument("--runs", nargs="+", default=["padded:64", "continuous"], help="engine[:batch size] ...")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--once", nargs="*", default=[], metavar="RUN", help="configurations run in the first repeat only")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--work", default="/tmp/eval_engines")
    ap.add_argument("--out", required=True)
    ap.add_argument("--collect", metavar="WORK", help="do not run: rebuild the figures from WORK's run folders")
    ap.add_argument("--log", help="--collect: the log the interrupted benchmark printed (for its GPU samples)")
    args = ap.parse_args()
    runs = [parse_run(s) for s in args.runs]

    from fctune.config import hardware, library_versions

    records = collect(args.collect, args.log, [run["name"] for run in runs]) if args.collect else []
    # interleaved (A B A B ...), so a drift of the machine over time falls on every configuration alike
    for repeat in range(0 if args.collect else args.repeats):
        for run in runs:
            if repeat and run["name"] in args.once:
                continue
            records.append(one_run(args, run, repeat))
            print(json.dumps({k: records[-1][k] for k in ("run", "repeat", "rows", "rows_per_s", "gpu")}), flush=True)
    names = [run["name"] for run in runs]
    summary, identity, repeatability = summarize(records, names, lambda r: answers(r["folder"]))
    base = summary[0]["rows_per_s_median"]
    for s in summary:
        mine = [r for r in records if r["run"] == s["run"]]
        s["rows_per_s_wall_median"] = statistics.median(r["rows_per_s_wall"] for r in mine)
        s["gpu_util_median_pct"] = (statistics.median(r["gpu"]["util_median_pct"] for r in mine)
                                    if all(r["gpu"] for r in mine) else None)
        s["gpu_busy_per_generation_s_median"] = (statistics.median(r["gpu"]["busy_per_generation_s"] for r in mine)
                                                 if all(r["gpu"] for r in mine) else None)
        s["speedup_vs_first"] = round(s["rows_per_s_median"] / base, 2)
    out = {"collected_from": args.collect, "model": args.model, "adapter": args.adapter,
           "categories": args.categories, "sample": args.sample,
           "max_new_tokens": args.max_new_tokens, "dtype": args.dtype, "summary": summary, "runs": records,
           "same_answers_as_first_run": identity, "identical_rows_first_vs_last_repeat": repeatability,
           "hardware": None if args.collect else hardware(), "versions": None if args.collect else library_versions()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({"summary": summary, "identical": {k: (v["identical"], v["rows"]) for k, v in identity.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
