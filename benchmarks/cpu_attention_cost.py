#!/usr/bin/env python3
"""What a CPU evaluation's attention and prefill cost: the local backend on one split, one thread, as the main job
runs it, in turns (A B C A B C ...) with

* ``sdpa``: transformers' SDPA attention (keys and values repeated per query head at every masked call), the batch
  prefilled padded;
* ``grouped``: the grouped keys and values passed as they are (``fctune.backends.local.grouped_kv_sdpa``), the batch
  prefilled padded;
* ``grouped+rows``: grouped, each prompt prefilled on its own (``LocalBackend._prefill_each_row``, the default).

Per run: the generation's seconds, the prefill's (every forward pass of more than one token) and the median decoding
step's, and the answers; the answers of every run must be the same tokens (the record says whether they were).

    python benchmarks/cpu_attention_cost.py --split CLONE/fledgling/test_splits/fledgling_toolcall_test.jsonl \
        --max-new-tokens 512 --out benchmarks/results/cpu_main_job/grouped_kv_attention_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

VARIANTS = ("sdpa", "grouped", "grouped+rows")


def one_run(split: str, variant: str, limit: int, max_new_tokens: int, batch_size: int) -> dict:
    import torch

    from fctune.backends.local import LocalBackend, _register_grouped_kv_sdpa
    from fctune.schema import read_examples

    torch.set_num_threads(1)
    rows = read_examples(split)[:limit]
    backend = LocalBackend("smollm2", max_new_tokens=max_new_tokens, batch_size=batch_size)
    backend.model.set_attn_implementation("sdpa" if variant == "sdpa" else _register_grouped_kv_sdpa())
    backend.prefill_rows = variant.endswith("+rows")
    passes = []  # (query length, seconds) of every forward pass

    def before(module, args, kwargs):
        passes.append([kwargs["input_ids"].shape[1], time.perf_counter()])

    def after(module, args, kwargs, out):
        passes[-1][1] = time.perf_counter() - passes[-1][1]

    backend.model.register_forward_pre_hook(before, with_kwargs=True)
    backend.model.register_forward_hook(after, with_kwargs=True)
    t = time.perf_counter()
    answers = {g.id: g.output for g in backend.generate(rows)}
    seconds = time.perf_counter() - t
    steps = [s for q, s in passes if q == 1]
    return {"variant": variant, "attention": backend.model.config._attn_implementation, "dtype": backend.dtype,
            "generation_s": round(seconds, 2), "generated_tokens": backend.stats()["generated_tokens"],
            "prefill_s": round(sum(s for q, s in passes if q > 1), 2), "decoding_steps": len(steps),
            "decode_step_ms_median": round(statistics.median(steps) * 1000, 1) if steps else None,
            "answers": answers}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", required=True, help="a test split (JSONL of examples), e.g. a main job's")
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the variants, in turns")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = ap.parse_args()
    if not Path(args.split).is_file():
        sys.exit(f"--split {args.split}: no such file")
    from fctune.config import hardware, library_versions
    from fctune.errors import UserError
    from fctune.io import sha256_file

    runs = []
    for _ in range(args.rounds):
        for variant in args.variants:
            try:
                runs.append(one_run(args.split, variant, args.limit, args.max_new_tokens, args.batch_size))
            except UserError as e:  # a bad row: the library's message names the file, row and field
                sys.exit(str(e))
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "answers"}), flush=True)
    same = all(r["answers"] == runs[0]["answers"] for r in runs)
    by = {v: [r["generation_s"] for r in runs if r["variant"] == v] for v in args.variants}
    rec = {"command": " ".join(sys.argv), "split": args.split, "split_sha256": sha256_file(args.split),
           "limit": args.limit, "threads": 1,
           "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size, "hardware": hardware(),
           "versions": library_versions(), "same_answers_in_every_run": same,
           "generation_s_median": {a: statistics.median(v) for a, v in by.items()},
           "over_the_first": {v: round(statistics.median(t) / statistics.median(by[args.variants[0]]), 3)
                              for v, t in by.items()},
           "runs": [{k: v for k, v in r.items() if k != "answers"} for r in runs],
           "answers": runs[0]["answers"]}
    print(json.dumps({k: rec[k] for k in ("same_answers_in_every_run", "generation_s_median", "over_the_first")}))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
