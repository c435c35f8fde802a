"""Evaluation runner: any backend, any suite; resumable; scored into the comparison's file layout.

Result naming convention (what ``compare_approaches.py`` reads):
``<results_dir>/<model label>_<suite>.json`` (summary) and ``<model label>_<suite>_details.jsonl``
(per-example verdicts), with the raw generations in ``<model label>_<suite>_predictions.jsonl``.
"""

from __future__ import annotations

import re
from pathlib import Path


def safe_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")


def result_paths(results_dir, label: str, suite: str) -> tuple[Path, Path]:
    base = Path(results_dir) / f"{safe_label(label)}_{suite}"
    return base.with_name(base.name + ".json"), base.with_name(base.name + "_details.jsonl")


def predictions_path(results_dir, label: str, suite: str) -> Path:
    return Path(results_dir) / f"{safe_label(label)}_{suite}_predictions.jsonl"
