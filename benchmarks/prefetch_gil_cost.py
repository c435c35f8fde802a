#!/usr/bin/env python3
"""Can a thread hide a batch's making from a host-bound training loop? A CPU proxy for the 1B shape's launch-bound
steps: the main thread dispatches OPS small torch ops (each releases Python's GIL while it runs, as a kernel launch
does), and one batch of train_throughput.py's shape (4 x 2048 rows read as numpy from the Arrow dataset, TRL's
collator, a torch DataLoader: the trainer's path since the 2026-11-30 run) is made either after the ops (inline), on
a waiting thread started with them (fctune.train.PrefetchedBatches' way), or by a persistent DataLoader worker
process, the main thread only taking it over after the ops (``dataloader_num_workers=1``, no shared GIL).
``hidden_ms`` = inline - threaded: what the thread saved the main thread (negative: it cost more than making the
batch inline); ``worker_hidden_ms`` the same for the worker process. Python's switch interval
(how long a thread waits for the GIL before asking its holder to drop it) and the ops' size are varied. A proxy
only: a GPU step's launches release the GIL for longer than these ops, and the GPU may leave the host idle; the
device figures (BENCHMARKS.md) decide.

    python benchmarks/prefetch_gil_cost.py --out benchmarks/results/prefetch_gil_cost_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

BATCH, SEQ, ROUNDS, OPS = 4, 2048, 21, 2000


def batch_maker(workers: int = 0):
    """One batch per call, as the trainer's data loader makes them (a new epoch when one ends); ``workers`` > 0: made
    ahead by that many persistent worker processes."""
    import numpy as np
    from datasets import Dataset
    from torch.utils.data import DataLoader
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rng = np.random.default_rng(0)
    rows = [{"input_ids": rng.integers(0, 50_000, SEQ).tolist(), "assistant_masks": [1] * SEQ}
            for _ in range(BATCH)]
    ds = Dataset.from_list(rows * 64).with_format("numpy")
    collate = DataCollatorForLanguageModeling(pad_token_id=0)
    state = {"it": None}

    def one():
        try:
            return next(state["it"])
        except (StopIteration, TypeError):  # TypeError: no iterator yet
            state["it"] = iter(DataLoader(ds, batch_size=BATCH, collate_fn=collate, shuffle=False,
                                          num_workers=workers, persistent_workers=workers > 0))
            return next(state["it"])

    return one


def measure(one_batch, from_worker, switch_s: float, op_size: int) -> dict:
    import torch

    sys.setswitchinterval(switch_s)
    a, b = torch.ones(op_size), torch.ones(op_size)

    def ops():
        for _ in range(OPS):
            torch.add(a, b)

    go, made = queue.Queue(), queue.Queue()

    def worker():  # a thread that waits for its cue, as PrefetchedBatches' thread waits for room in its queue
        while go.get():
            t0 = time.perf_counter()
            one_batch()
            made.put(time.perf_counter() - t0)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    for _ in range(3):  # warm-up
        ops()
        one_batch()
        from_worker()
    t = {"ops_alone": [], "batch_alone": [], "inline": [], "threaded": [], "batch_in_thread": [], "worker": []}
    for _ in range(ROUNDS):  # interleaved, so a drift of the machine falls on all alike
        t0 = time.perf_counter()
        ops()
        t["ops_alone"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        one_batch()
        t["batch_alone"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ops()
        one_batch()
        t["inline"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        go.put(True)
        ops()
        t["threaded"].append(time.perf_counter() - t0)
        t["batch_in_thread"].append(made.get())  # the thread's batch is done before the next round starts
        t0 = time.perf_counter()
        ops()  # meanwhile the worker process has the next batch ready (it makes two ahead)
        from_worker()
        t["worker"].append(time.perf_counter() - t0)
    go.put(False)
    thread.join()
    ms = {k: round(1000 * statistics.median(v), 3) for k, v in t.items()}
    ms["hidden_ms"] = round(ms["inline"] - ms["threaded"], 3)
    ms["worker_hidden_ms"] = round(ms["inline"] - ms["worker"], 3)
    return {"switch_interval_s": switch_s, "op_size": op_size, **ms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # the main thread's ops on one core, the other free for the batch thread
    one_batch, from_worker = batch_maker(), batch_maker(workers=1)
    default_switch = sys.getswitchinterval()
    runs = [measure(one_batch, from_worker, s, n) for s in (default_switch, 0.001) for n in (8, 32_768)]
    sys.setswitchinterval(default_switch)
    rec = {"what": __doc__.splitlines()[0], "ops": OPS, "rounds": ROUNDS, "batch": [BATCH, SEQ],
           "unit": "ms, median of the rounds", "runs": runs, "cpu": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}
    Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")
    for r in runs:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
