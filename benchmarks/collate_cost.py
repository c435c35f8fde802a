#!/usr/bin/env python3
"""Host time the Trainer spends on one batch of train_throughput.py's shape before the GPU sees it: four rows read
from the Arrow dataset, then TRL's collator (padded, and padding-free with position ids). On the CPU only; the
throughput benchmark synchronizes the GPU after every step, so this work is serialized with the GPU's there.

    python benchmarks/collate_cost.py --out benchmarks/results/collate_cost_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

BATCH, SEQ, REPEATS = 4, 2048, 31  # train_throughput.py's batch


def _median_ms(fn) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from datasets import Dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rng = random.Random(0)
    rows = [{"input_ids": [rng.randrange(50_000) for _ in range(SEQ)], "assistant_masks": [1] * SEQ}
            for _ in range(BATCH)]
    ds = Dataset.from_list(rows * 8)
    fetched = [ds[i] for i in range(BATCH)]
    padded = DataCollatorForLanguageModeling(pad_token_id=0)
    packed = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True, return_position_ids=True)
    rec = {"batch": [BATCH, SEQ], "repeats": REPEATS, "unit": "ms, median",
           "fetch_rows_from_arrow": _median_ms(lambda: [ds[i] for i in range(BATCH)]),
           "collate_padded": _median_ms(lambda: padded(fetched)),
           "collate_padding_free": _median_ms(lambda: packed(fetched)),
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")
    print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
