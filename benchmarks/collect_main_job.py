#!/usr/bin/env python3
r"""One fresh clone's main job as a record under benchmarks/results/cpu_main_job/ (BENCHMARKS.md, table 8).

    git clone REPO /tmp/X && cd /tmp/X && s=$(date +%s); FCTUNE_CACHE=/tmp/X_cache ./run_phase1_experiment.sh \
        > /tmp/X.log 2>&1; echo "rc=$? wall=$(( $(date +%s)-s ))" > /tmp/X.done
    python benchmarks/collect_main_job.py /tmp/X /tmp/X.log /tmp/X.done benchmarks/results/cpu_main_job/DATE.json "NOTE"

What it keeps: the job's step times (paper_approach/logs/timings.json) and, where they have their commands' times,
how busy each step kept its workers (``step_use``), the wall time with the bootstrap, each evaluation job's first
and last log line, every suite's rows, seconds and generated tokens (the evaluation summaries; equal tokens across
runs mean equal answers), the verdict line, and the machine's CPU — the same job took 521 s of steps on one 2-core
machine and 1,603 s on another (BENCHMARKS.md), so a time means little without it.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path


def cpu() -> dict:
    """The CPU's model name and the vector extensions that move this job's speed (the keys of the records so far)."""
    from fctune.config import cpu_info

    info = cpu_info()
    return {"model_name": info["model_name"], "avx512f": info.get("avx512f"), "amx_tile": info.get("amx_tile")}


def job_spans(log: str) -> dict:
    """Each evaluation job's first and last timestamped line (the pipeline prefixes a job's lines with its name)."""
    spans = {}
    for m in re.finditer(r"^\[([\w.-]+)\] (\d\d:\d\d:\d\d) ", log, re.M):
        spans.setdefault(m.group(1), {"first_log": m.group(2)})["last_log"] = m.group(2)
    return spans


def step_use(timings: dict) -> dict:
    """Per step with command times (timings.json since the 2026-12-01 run): how many commands ran at once at
    most, the sum of their seconds (the step's work, in worker-seconds) and the worker-seconds left idle. The sum over
    the peak is the least the step could take with that many workers, whatever the order."""
    use = {}
    for name, t in timings.items():
        cmds = t.get("commands") if isinstance(t, dict) else None
        if not cmds or any("seconds" not in c for c in cmds.values()):
            continue  # older records, or a step that failed midway
        edges = sorted([(c["start_s"], 1) for c in cmds.values()] + [(c["start_s"] + c["seconds"], -1)
                                                                         for c in cmds.values()])
        level = peak = 0
        for _, d in edges:
            level += d
            peak = max(peak, level)
        work = sum(c["seconds"] for c in cmds.values())
        use[name] = {"seconds": t["seconds"], "peak_commands_at_once": peak, "command_seconds_sum": round(work, 1),
                     "idle_worker_seconds": round(peak * t["seconds"] - work, 1),
                     "least_seconds_at_that_width": round(work / peak, 1)}
    return use


def evaluations(clone: Path) -> dict:
    """Per evaluated model: each suite's rows, seconds and generated tokens, and what served it."""
    evals = {}
    for folder in ("fledgling/eval_results", "paper_approach/eval_results"):
        for f in sorted((clone / folder).glob("*.json")):
            r = json.loads(f.read_text())
            if not isinstance(r, dict) or "throughput" not in r or not isinstance(r.get("model"), dict):
                continue  # run records, gates, the Fledgling run summary
            model, t = r["model"], r["throughput"]
            e = evals.setdefault(model["label"], {"suites": {}, "served_by": None, "adapter_version_id": None,
                                                  "wall_s": 0.0})
            e["suites"][f.stem] = {"rows": t.get("examples"), "wall_s": t.get("wall_s"),
                                   "generated_tokens": t.get("generated_tokens")}
            e["wall_s"] = round(e["wall_s"] + (t.get("wall_s") or 0), 2)
            e["adapter_version_id"] = model.get("adapter_version_id")
            e["served_by"] = (r.get("run") or {}).get("served_by") or e["served_by"]
    return evals


def main() -> int:
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    clone, log, done, out = (Path(a) for a in sys.argv[1:5])
    note = sys.argv[5]
    timings = clone / "paper_approach/logs/timings.json"
    for path in (timings, log, done):
        if not path.is_file():
            raise SystemExit(f"{path}: no such file (the job's step times, its log, its rc/wall line)")
    wall = re.search(r"wall=(\d+)", done.read_text())
    if not wall:
        raise SystemExit(f"{done}: no 'wall=SECONDS' (the line the command in this script's usage writes: rc=N wall=S)")
    text = log.read_text(errors="replace")
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    command = f"FCTUNE_CACHE=<empty> ./run_phase1_experiment.sh (fresh clone, {os.cpu_count()} cores)"
    steps = json.loads(timings.read_text())
    record = {"clone_of": head, "command": command,
              "cpu": cpu(), "timings": steps, "wall_s_with_bootstrap": int(wall.group(1)), "step_use": step_use(steps),
              "evaluation_jobs_log_span": job_spans(text), "note": note, "evaluations": evaluations(clone),
              "verdict_line": next((x for x in text.splitlines() if x.startswith("phase 1 verdict")), None)}
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{out}: {record['timings']['total_seconds']} s of steps, {record['cpu']['model_name']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
