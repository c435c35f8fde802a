#!/usr/bin/env python3
"""Evaluation throughput of the local backend: batched generation against one example at a time.

    python benchmarks/eval_throughput.py --model smollm2 \
        --split comparison_framework/test_splits/single_turn_test.jsonl --rows 16 --batch-sizes 1 8 --repeats 3 \
        --out benchmarks/results/eval_throughput_cpu.json

Each configuration generates the same rows greedily (same prompts, same max_new_tokens) ``--repeats`` times; the
median (min, max) of examples/s and generated tokens/s is reported, with the device, dtype and library versions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--adapter")
    ap.add_argument("--split", default="comparison_framework/test_splits/single_turn_test.jsonl")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--out", default="benchmarks/results/eval_throughput.json")
    args = ap.parse_args()

    from fctune.backends.local import LocalBackend
    from fctune.config import hardware, library_versions
    from fctune.schema import read_examples

    examples = read_examples(args.split)[: args.rows]
    backend = LocalBackend(args.model, args.adapter, max_new_tokens=args.max_new_tokens, batch_size=1)
    list(backend.generate(examples[:2]))  # warm-up
    results = []
    for bs in args.batch_sizes:
        backend.batch_size = bs
        eps, tps = [], []
        for _ in range(args.repeats):
            t0 = time.time()
            tokens = sum(g.completion_tokens or 0 for g in backend.generate(examples))
            dt = time.time() - t0
            eps.append(len(examples) / dt)
            tps.append(tokens / dt)
        results.append({"batch_size": bs, "examples_per_s": round(statistics.median(eps), 3),
                        "examples_per_s_min": round(min(eps), 3), "examples_per_s_max": round(max(eps), 3),
                        "generated_tokens_per_s": round(statistics.median(tps), 1),
                        "generated_tokens_per_s_min": round(min(tps), 1),
                        "generated_tokens_per_s_max": round(max(tps), 1)})
        print(json.dumps(results[-1]), flush=True)
    base = results[0]["examples_per_s"]
    out = {"model": args.model, "adapter": args.adapter, "rows": len(examples), "repeats": args.repeats,
           "max_new_tokens": args.max_new_tokens, "device": backend.device, "dtype": backend.dtype,
           "results": results, "speedup_vs_first": {r["batch_size"]: round(r["examples_per_s"] / base, 2)
                                                     for r in results},
           "hardware": hardware(), "versions": library_versions()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out["speedup_vs_first"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
