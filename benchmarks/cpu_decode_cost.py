#!/usr/bin/env python3
"""What a local evaluation's time on the CPU is made of, for the packaged SmolLM2-135M in bf16 on one thread (as the
main job runs two evaluations at a time, one core each):

* ``steps``: one decoding step's cost against the batch size (a prompt of 600 random tokens per row, DynamicCache),
  and the prefill's tokens/s — is a step bound by the rows or by reading the weights?
* ``cache``: a step over transformers' DynamicCache (grown by concatenation every step) against a StaticCache of
  the prompt + 512 tokens (written in place, attention over its whole length), batch 8, 1,000-token prompts;
* ``runs FOLDER...``: from a main job's evaluation folders (the local backend's ``*_predictions.jsonl`` beside their
  summaries), how many decoding steps the padded batches ran (each batch runs until its longest answer ends) and how
  many would have been run had every answer that ran to the budget left its batch when the last answer that stopped
  on its own stopped — the ceiling of what stopping runaway answers early could save.

    python benchmarks/cpu_decode_cost.py --out benchmarks/results/cpu_main_job/decode_cost_cpu.json \
        --runs CLONE/paper_approach/eval_results CLONE/fledgling/eval_results
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def _load():
    import torch
    from transformers import AutoModelForCausalLM

    from fctune.models import materialize, resolve_model

    torch.set_num_threads(1)
    return AutoModelForCausalLM.from_pretrained(materialize(resolve_model("smollm2")), dtype=torch.bfloat16).eval()


def _decode_ms(model, cache, first, start: int, steps: int = 20) -> float:
    import torch

    nxt, pos, t = first, start, time.perf_counter()
    for _ in range(steps):
        out = model(input_ids=nxt, past_key_values=cache, use_cache=True, cache_position=torch.tensor([pos]))
        nxt, pos = out.logits[:, -1:].argmax(-1), pos + 1
    return (time.perf_counter() - t) / steps * 1000


def step_cost(model, batch_sizes=(1, 2, 8, 16, 32, 64), prompt: int = 600) -> list[dict]:
    """Per batch size: prefill tokens/s and one decoding step's milliseconds (median of 2 repeats)."""
    import torch
    from transformers import DynamicCache

    rows = []
    for bs in batch_sizes:
        ids = torch.randint(100, 20000, (bs, prompt), generator=torch.Generator().manual_seed(bs))
        pre, dec = [], []
        for _ in range(2):
            with torch.no_grad():
                cache = DynamicCache(config=model.config)
                t = time.perf_counter()
                out = model(input_ids=ids, past_key_values=cache, use_cache=True)
                pre.append(bs * prompt / (time.perf_counter() - t))
                dec.append(_decode_ms(model, cache, out.logits[:, -1:].argmax(-1), prompt))
        ms = statistics.median(dec)
        rows.append({"batch": bs, "prefill_tokens_per_s": round(statistics.median(pre)),
                     "decode_step_ms": round(ms, 1), "decode_ms_per_row": round(ms / bs, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def cache_cost(model, bs: int = 8, prompt: int = 1000, budget: int = 512) -> dict:
    """One decoding step over a DynamicCache and over a StaticCache of prompt + budget (2 interleaved repeats)."""
    import torch
    from transformers import DynamicCache, StaticCache

    ids = torch.randint(100, 20000, (bs, prompt), generator=torch.Generator().manual_seed(0))
    ms = {"dynamic": [], "static": []}
    for _ in range(2):
        for kind in ms:
            with torch.no_grad():
                cache = (StaticCache(config=model.config, max_cache_len=prompt + budget) if kind == "static"
                         else DynamicCache(config=model.config))
                out = model(input_ids=ids, past_key_values=cache, use_cache=True)
                ms[kind].append(round(_decode_ms(model, cache, out.logits[:, -1:].argmax(-1), prompt), 1))
    rec = {"batch": bs, "prompt": prompt, "static_length": prompt + budget, "decode_step_ms": ms}
    print(json.dumps(rec), flush=True)
    return rec


def budget_bound_steps(folders: list[str]) -> dict:
    """Decoding steps of the local backend's padded batches in a run's evaluation folders, and the steps had the
    answers that ran to the budget left when the last self-stopped answer of their batch stopped."""
    per, run_steps, stop_steps = [], 0, 0
    for folder in folders:
        for pred in sorted(Path(folder).glob("*_predictions.jsonl")):
            summary = pred.with_name(pred.name.replace("_predictions.jsonl", ".json"))
            if not summary.exists() or json.loads(summary.read_text())["model"].get("backend") != "local":
                continue
            rows = [json.loads(x) for x in pred.read_text().splitlines() if x.strip()]
            batches: dict = {}
            for r in rows:  # a padded batch's rows share one latency (the batch's time over its rows): its key
                batches.setdefault(r["latency_s"], []).append(r)
            ran = sum(max(r["completion_tokens"] for r in b) for b in batches.values())
            needed = sum(max([r["completion_tokens"] for r in b if r["finish_reason"] == "stop"] or [0])
                         for b in batches.values())
            per.append({"predictions": pred.name, "rows": len(rows), "batches": len(batches), "steps": ran,
                        "steps_without_budget_bound_rows": needed,
                        "rows_at_budget": sum(r["finish_reason"] == "length" for r in rows)})
            run_steps, stop_steps = run_steps + ran, stop_steps + needed
    return {"evaluations": per, "steps": run_steps, "steps_without_budget_bound_rows": stop_steps,
            "share_of_steps_after_the_last_self_stopped_answer": round(1 - stop_steps / run_steps, 3)
            if run_steps else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", nargs="*", default=[], help="a main job's evaluation folders, read from their "
                                                         "predictions files")
    ap.add_argument("--skip-model", action="store_true", help="only --runs")
    args = ap.parse_args()
    missing = [f for f in args.runs if not Path(f).is_dir()]
    if missing:
        ap.error(f"--runs: no such folder: {', '.join(missing)}")
    from fctune.config import hardware, library_versions

    rec = {"threads": 1, "dtype": "bfloat16", "model": "smollm2 (the packaged SmolLM2-135M-Instruct)",
           "hardware": hardware(), "versions": library_versions()}
    if not args.skip_model:
        model = _load()
        rec["steps"] = step_cost(model)
        rec["cache"] = cache_cost(model)
    if args.runs:
        rec["runs"] = {"folders": args.runs, **budget_bound_steps(args.runs)}
        print(json.dumps({k: v for k, v in rec["runs"].items() if k != "evaluations"}))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
