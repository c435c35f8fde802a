#!/usr/bin/env python3
"""What the output layer over every position costs the CPU smoke training, and what running it only at the label
positions saves (``KernelFreeSFTTrainer.label_positions_only``): the main job's paper training (``--preset smoke``
on a clone's Hermes splits, the packaged SmolLM2-135M, 2 threads) run with the stock forward and with the label
positions only, in turns; per run its training seconds, tokens/s and loss curves, which must agree.

    python benchmarks/cpu_train_head_cost.py --data CLONE/paper_approach/datasets --rounds 1 \
        --out benchmarks/results/cpu_main_job/train_label_positions_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path


def one_run(data: Path, only: bool, out_dir: str) -> dict:
    import fctune.train as train_module
    from fctune.train import PRESETS, TrainConfig

    made = train_module.sft_trainer_class

    def toggled(*args, **kwargs):  # the trainer class the run builds, with the switch set on it
        cls = made(*args, **kwargs)
        return type(cls.__name__, (cls,), {"label_positions_only": only}) if hasattr(cls, "label_positions_only") \
            else cls

    train_module.sft_trainer_class = toggled
    try:
        cfg = TrainConfig(model="smollm2", name=f"head_{'labels' if only else 'all'}", output_dir=out_dir,
                          train_file=str(data / "hermes_train.jsonl"), val_file=str(data / "hermes_val.jsonl"),
                          **PRESETS["smoke"])
        meta = train_module.train(cfg)
    finally:
        train_module.sft_trainer_class = made
    return {"label_positions_only": only,
            **{k: meta[k] for k in ("train_runtime_s", "wall_time_s", "non_padding_tokens_per_s", "train_loss_curve",
                                    "val_loss_curve", "final_train_loss", "final_val_loss", "version_id")}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a main job's paper_approach/datasets folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    data = Path(args.data)
    missing = [f for f in ("hermes_train.jsonl", "hermes_val.jsonl") if not (data / f).is_file()]
    if missing:
        sys.exit(f"--data {data}: no {' or '.join(missing)} there")
    from fctune.config import hardware, library_versions
    from fctune.errors import UserError
    from fctune.io import sha256_file

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for only in (False, True):
                try:
                    runs.append(one_run(data, only, f"{tmp}/{r}"))
                except UserError as e:  # a bad row or setting: the library's message names the file, row and field
                    sys.exit(str(e))
                print(json.dumps({k: v for k, v in runs[-1].items() if not k.endswith("curve")}), flush=True)
    median = {key: round(statistics.median(r["train_runtime_s"] for r in runs if r["label_positions_only"] == only), 2)
              for key, only in (("stock", False), ("label_positions_only", True))}
    curves = {tuple(round(x["loss"], 5) for x in r["train_loss_curve"]) for r in runs}
    rec = {"command": " ".join(sys.argv), "data_sha256": sha256_file(data / "hermes_train.jsonl"),
           "hardware": hardware(), "versions": library_versions(), "train_runtime_s_median": median,
           "label_positions_over_stock": round(median["label_positions_only"] / median["stock"], 3),
           "same_loss_curves_to_5_decimals": len(curves) == 1, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
