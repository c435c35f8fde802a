#!/usr/bin/env python3
"""Prepare Hermes function-calling data (or any supported source) into train/val/test splits.

Examples:
  python paper_approach/prepare_hermes_dataset.py --phase 1                      # offline source
  python paper_approach/prepare_hermes_dataset.py --source NousResearch/hermes-function-calling-v1 \\
      --dataset-config func_calling_singleturn --phase 2 --fallback offline
  python paper_approach/prepare_hermes_dataset.py --source my_rows.jsonl --train-size 500
"""

from fctune.data import main

if __name__ == "__main__":
    raise SystemExit(main())
