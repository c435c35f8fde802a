#!/usr/bin/env python3
"""What a CPU evaluation gains when finished rows leave their batch and a model's suites share one pass: the local
backend (the packaged SmolLM2-135M, optionally with an adapter) on a main job's five suite splits, one thread, as a
main-job worker runs it, in turns (A B C ... A B C ...):

* ``suites:8``: suite by suite, batches of 8, every batch decoded until its longest answer ends (the engine until
  the 2026-12-01 run);
* ``pooled:8+leave``: the five suites in one pass, batches of 8, finished rows leaving (each row cut at its own
  suite's budget);
* ``pooled:40``: one pass, one batch of 40, no row leaving;
* ``pooled:40+leave``: one pass, one batch of 40, finished rows leaving (the smoke profile's default since then).

First, what a decoding step costs against the batch's width (the reason wide batches pay on a CPU: reading the
weights dominates), with the backend's own attention and cache. With ``--prefix``, also a candidate not taken: each
prompt prefilled from the keys and values of the longest prefix it shares with an earlier prompt (the system prompt
and its tools), against each prompt prefilled whole as the engine does: the time, and how far the keys differ.

Per run: the generation's seconds, the prefill's (every forward pass of more than one token), the decoding steps and
the rows they carried, and the answers, which must be the same tokens in every run (the record says whether they
were).

    python benchmarks/cpu_rows_leave.py --splits CLONE/comparison_framework/test_splits \
        --adapter CLONE/paper_approach/adapters/phi-llama --out benchmarks/results/cpu_main_job/rows_leave_cpu.json
    python benchmarks/cpu_rows_leave.py --splits ... --adapter ... --skip-steps --variants --prefix \
        --out benchmarks/results/cpu_main_job/shared_prefix_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

SUITE_ORDER = ("single_turn", "multi_turn", "domain_diverse", "structured_json", "no_call")  # the main job's
VARIANTS = {"suites:8": (False, 8, False), "pooled:8+leave": (True, 8, True), "pooled:40": (True, 40, False),
            "pooled:40+leave": (True, 40, True)}  # name: (one pass, batch width, rows leave)


def _backend(adapter: str | None, max_new_tokens: int, batch_size: int):
    import torch

    from fctune.backends.local import LocalBackend

    torch.set_num_threads(1)
    return LocalBackend("smollm2", adapter=adapter, max_new_tokens=max_new_tokens, batch_size=batch_size)


def step_cost(adapter: str | None, widths=(1, 8, 16, 32, 40), prompt: int = 450, steps: int = 12) -> list[dict]:
    """Per batch width: the median decoding step (ms) after a ``prompt``-token prefill, over the backend's own
    attention and preallocated cache."""
    import torch

    from fctune.backends.local import preallocated_cache

    model = _backend(adapter, 8, 8).model
    out = []
    for width in widths:
        ids = torch.randint(100, 20000, (width, prompt), generator=torch.Generator().manual_seed(width))
        with torch.inference_mode():
            cache = preallocated_cache(model.config)
            nxt = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits.argmax(-1)
            times = []
            for pos in range(prompt, prompt + steps):
                t = time.perf_counter()
                logits = model(input_ids=nxt, past_key_values=cache, use_cache=True, logits_to_keep=1,
                               cache_position=torch.tensor([pos])).logits
                times.append(time.perf_counter() - t)
                nxt = logits.argmax(-1)
        ms = statistics.median(times) * 1000
        out.append({"width": width, "step_ms": round(ms, 1), "ms_per_row": round(ms / width, 1)})
        print(json.dumps(out[-1]), flush=True)
    return out


def shared_prefix_prefill(suites: dict, adapter: str | None, least: int = 16) -> dict:
    """Every prompt prefilled whole, then from the longest prefix (at least ``least`` tokens) it shares with an
    earlier prompt (shortest first, as the engine sorts them): seconds, tokens saved, the largest key difference."""
    import torch
    from transformers import DynamicCache

    backend = _backend(adapter, 8, 8)
    model, rows = backend.model, []
    for examples, _ in suites.values():
        rows += [backend.tokenizer(backend.prompt_for(e), add_special_tokens=False)["input_ids"][:-1] for e in examples]
    rows.sort(key=len)

    def common(a, b):
        return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))

    whole, shared, saved = [], [], 0
    with torch.inference_mode():
        t = time.perf_counter()
        for ids in rows:
            whole.append(DynamicCache(config=model.config))
            model(input_ids=torch.tensor([ids]), past_key_values=whole[-1], use_cache=True, logits_to_keep=1)
        whole_s, t = time.perf_counter() - t, time.perf_counter()
        for r, ids in enumerate(rows):
            n, donor = max(((common(ids, rows[q]), q) for q in range(r)), default=(0, None))
            n = min(n, len(ids) - 1) if n >= least else 0
            cache = DynamicCache(config=model.config)
            for i, layer in enumerate(shared[donor].layers if n else []):
                cache.update(layer.keys[:, :, :n].clone(), layer.values[:, :, :n].clone(), i)
            model(input_ids=torch.tensor([ids[n:]]), past_key_values=cache, use_cache=True, logits_to_keep=1,
                  cache_position=torch.arange(n, len(ids)))
            shared.append(cache)
            saved += n
        shared_s = time.perf_counter() - t
    diff = max((a.keys - b.keys).abs().max().item() for x, y in zip(whole, shared, strict=True)
               for a, b in zip(x.layers, y.layers, strict=True))
    return {"prompt_tokens": sum(map(len, rows)), "tokens_from_a_shared_prefix": saved,
            "whole_prompts_s": round(whole_s, 2), "shared_prefixes_s": round(shared_s, 2), "max_key_difference": diff,
            "same_keys": diff == 0.0}


def one_run(suites: dict, adapter: str | None, variant: str) -> dict:
    pooled, width, leave = VARIANTS[variant]
    backend = _backend(adapter, max(b for _, b in suites.values()), width)
    backend.rows_leave = leave
    passes = []  # (query length, rows, seconds) of every forward pass

    def before(module, args, kwargs):
        passes.append([kwargs["input_ids"].shape[1], kwargs["input_ids"].shape[0], time.perf_counter()])

    def after(module, args, kwargs, out):
        passes[-1][2] = time.perf_counter() - passes[-1][2]

    backend.model.register_forward_pre_hook(before, with_kwargs=True)
    backend.model.register_forward_hook(after, with_kwargs=True)
    groups = [[(rows, budget) for rows, budget in suites.values()]] if pooled else [[s] for s in suites.values()]
    answers, t = {}, time.perf_counter()
    for group in groups:
        examples = [e for rows, _ in group for e in rows]
        budgets = [budget for rows, budget in group for _ in rows]
        answers.update({g.id: (g.output, g.completion_tokens, g.finish_reason)
                        for g in backend.generate(examples, budgets)})
    seconds = time.perf_counter() - t
    steps = [(n, s) for q, n, s in passes if q == 1]
    return {"variant": variant, "dtype": backend.dtype, "seconds": round(seconds, 2),
            "prefill_s": round(sum(s for q, _, s in passes if q > 1), 2),
            "decoding_s": round(sum(s for _, s in steps), 2), "decoding_steps": len(steps),
            "row_steps": sum(n for n, _ in steps), "generated_tokens": backend.stats()["generated_tokens"],
            "answers": answers}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", required=True, help="a main job's comparison_framework/test_splits folder")
    ap.add_argument("--adapter", help="a LoRA adapter folder for the packaged SmolLM2 (a main job's)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=8, help="rows per suite (the smoke profile's 8)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the variants, in turns")
    ap.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS),
                    help="none: only the step cost and --prefix")
    ap.add_argument("--skip-steps", action="store_true", help="leave out the step cost against the batch width")
    ap.add_argument("--prefix", action="store_true", help="also prefill from shared prompt prefixes (not taken)")
    args = ap.parse_args()
    files = {s: Path(args.splits) / f"{s}_test.jsonl" for s in SUITE_ORDER}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        sys.exit(f"--splits: no such split: {', '.join(missing)}")
    from fctune.config import hardware, library_versions
    from fctune.errors import UserError
    from fctune.evaluate import answer_budget
    from fctune.io import sha256_file
    from fctune.schema import read_examples

    try:  # each suite's budget as the evaluation sizes it: from the whole split (answer_budget)
        splits = {s: read_examples(f) for s, f in files.items()}
    except UserError as e:  # a bad row: the library's message names the file, row and field
        sys.exit(str(e))
    suites = {s: (rows[:args.limit], answer_budget(rows)) for s, rows in splits.items()}
    rec = {"command": " ".join(sys.argv), "adapter": args.adapter, "limit": args.limit, "threads": 1,
           "budgets": {s: b for s, (_, b) in suites.items()},
           "split_sha256": {s: sha256_file(f) for s, f in files.items()}, "hardware": hardware(),
           "versions": library_versions()}
    if not args.skip_steps:
        rec["steps"] = step_cost(args.adapter)
    if args.prefix:
        rec["shared_prefix_prefill"] = shared_prefix_prefill(suites, args.adapter)
        print(json.dumps(rec["shared_prefix_prefill"]), flush=True)
    runs = []
    for _ in range(args.rounds):
        for variant in args.variants:
            runs.append(one_run(suites, args.adapter, variant))
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "answers"}), flush=True)
    by = {v: [r["decoding_s"] for r in runs if r["variant"] == v] for v in args.variants}
    if runs:
        rec.update({"same_answers_in_every_run": all(r["answers"] == runs[0]["answers"] for r in runs),
                    "decoding_s_median": {v: statistics.median(t) for v, t in by.items()},
                    "decoding_over_the_first": {v: round(statistics.median(t) / statistics.median(by[args.variants[0]]),
                                                         3) for v, t in by.items()},
                    "runs": [{k: v for k, v in r.items() if k != "answers"} for r in runs],
                    "answers": {i: list(a) for i, a in runs[0]["answers"].items()}})
        print(json.dumps({k: rec[k] for k in ("same_answers_in_every_run", "decoding_s_median",
                                              "decoding_over_the_first")}))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
