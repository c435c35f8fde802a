#!/usr/bin/env python3
"""CPU evaluation through llama.cpp at 1, 2 and 4 requests in flight: llama.cpp's llama-server (parallel slots)
against llama-cpp-python's server (one request at a time), through the real evaluation command.

    python benchmarks/llama_concurrency.py --model /tmp/models/qwen2.5-coder-0.5b-instruct-awq.gguf \
        --suite single_turn --limit 12 --runs python:1 cpp:1 cpp:2 cpp:4 --repeats 3 \
        --out benchmarks/results/llama_concurrency_cpu.json

Each run is ``python -m fctune.evaluate --backend llamacpp --llama-server E --max-concurrency N`` in a fresh folder
(server start-up included in its wall time, excluded from ``generation_s``); runs are interleaved over the repeats.
The first repeat of each configuration is compared row by row with the first configuration's answers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from eval_engines import summarize


def answers(folder: Path, label: str, suite: str) -> dict:
    lines = (folder / f"{label}_{suite}_predictions.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--suite", default="single_turn")
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--runs", nargs="+", default=["python:1", "cpp:1", "cpp:2", "cpp:4"], help="server:concurrency")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", default="/tmp/llama_concurrency")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from fctune.config import hardware, library_versions

    records = []
    for repeat in range(args.repeats):
        for run in args.runs:
            server, _, n = run.partition(":")
            label = f"{server}-c{n}"
            folder = Path(args.work) / f"{label}_r{repeat}"
            cmd = [sys.executable, "-m", "fctune.evaluate", "--backend", "llamacpp", "--model", args.model,
                   "--suites", args.suite, "--limit", str(args.limit), "--max-concurrency", n, "--llama-server", server,
                   "--label", label, "--role", "llm", "--results-dir", str(folder), "--resume", "false"]
            t0 = time.time()
            p = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.time() - t0
            if p.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
            summary = json.loads((folder / f"{label}_{args.suite}.json").read_text())
            tp = summary["throughput"]
            records.append({"run": run, "repeat": repeat, "folder": str(folder), "label": label,
                            "command": " ".join(cmd[1:]), "served_by": summary["model"].get("served_by"),
                            "rows": tp["examples"], "generation_s": tp["generation_s"],
                            "process_wall_s": round(wall, 1),
                            "rows_per_s": round(tp["examples"] / tp["generation_s"], 4),
                            "generated_tokens": tp["generated_tokens"]})
            print(json.dumps({k: records[-1][k] for k in ("run", "repeat", "rows_per_s", "generation_s")}), flush=True)
    summary, same, repeat_same = summarize(records, args.runs,
                                           lambda r: answers(Path(r["folder"]), r["label"], args.suite))
    base = next((s["rows_per_s_median"] for s in summary if s["run"] == "cpp:1"), summary[0]["rows_per_s_median"])
    for s in summary:
        s["served_by"] = next(r["served_by"] for r in records if r["run"] == s["run"])
        s["speedup_vs_cpp_1"] = round(s["rows_per_s_median"] / base, 2)
    out = {"model": args.model, "suite": args.suite, "limit": args.limit, "summary": summary, "runs": records,
           "same_answers_as_first_run": same, "identical_rows_first_vs_last_repeat": repeat_same,
           "hardware": hardware(), "versions": library_versions()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({"summary": summary, "identical": {k: (v["identical"], v["rows"]) for k, v in same.items()},
                      "repeatable": repeat_same}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
