#!/usr/bin/env python3
"""Prepare Hermes function-calling data (or any supported source) into train/val/test splits.

Examples:
  python paper_approach/prepare_hermes_dataset.py --phase 1                      # offline source
  python paper_approach/prepare_hermes_dataset.py --source NousResearch/hermes-function-calling-v1 \\
      --dataset-config func_calling_singleturn --phase 2 --fallback offline
  python paper_approach/prepare_hermes_dataset.py --source my_rows.jsonl --train-size 500
"""

from fctune.cli import run_script
from fctune.data import PrepareConfig, prepare


def main(argv=None) -> int:
    return run_script(PrepareConfig, prepare, argv, summary=lambda s: (
        f"wrote {s['files']['train']} ({s['splits']['train']['count']}), val {s['splits']['val']['count']}, "
        f"test {s['splits']['test']['count']}; skipped {s['skipped'] or 'none'}; source {s['source']['kind']}"
        + (" (FALLBACK to offline)" if s['fallback'] else "")))


if __name__ == "__main__":
    raise SystemExit(main())
