#!/usr/bin/env python3
"""Assemble the experiment's result tree from the GPU runs and the CPU LLM run (see RESULTS.md).

    python experiments/assemble_results.py --device-p1 DIR --device-p2 DIR --llm-p1 DIR --llm-p2 DIR \
        --multi-gpu DIR --out results
    python experiments/assemble_results.py --more-p1 gemma=DIR --more-p2 gemma=DIR   # add another SLM's runs

Each device/LLM DIR is an unpacked run folder (``paper_approach/``, ``fledgling/`` inside). The script copies result
files, summarizes BFCL predictions that a run did not get to summarize (``fctune.bfcl.rescore``: what finished is
scored, what did not is listed as missing), and runs the comparison for each phase. Nothing is generated here.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from fctune.bfcl import rescore as bfcl_rescore
from fctune.compare import CompareConfig, compare
from fctune.io import read_json, write_json_atomic

RESULT_GLOBS = ("*.json", "*_details.jsonl", "*_predictions.jsonl")
RUN_FILES = ("datasets/dataset_stats.json", "logs/timings.json")
ADAPTER_FILES = ("metadata.json", "train_config.json", "adapter_config.json")


def copy_results(src: Path, dst: Path, prefix: str = "") -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for pattern in RESULT_GLOBS:
        for f in src.glob(prefix + pattern):
            shutil.copy2(f, dst / f.name)


def summarize_unfinished_bfcl(results: Path, sample: int, seed: int) -> None:
    """Write ``<label>_bfcl.json`` for every model whose BFCL run stopped before its summary."""
    labels = {p.name.split("_bfcl_")[0] for p in results.glob("*_bfcl_*_predictions.jsonl")}
    for label in sorted(labels):
        if (results / f"{label}_bfcl.json").exists():
            continue
        summary = bfcl_rescore(str(results), label, ["non_live"], sample=sample, seed=seed)
        suite = results / f"{label}_single_turn.json"  # the same process's identity (model, role, adapter)
        if suite.exists():
            summary["model"] = read_json(suite)["model"]
            summary["note"] = "the run stopped before every category finished: summarized from its saved predictions"
            write_json_atomic(results / f"{label}_bfcl.json", summary)


def copy_run_files(dev: Path, sub: str, dst: Path, suffix: str = "") -> None:
    """Dataset stats and timings (``suffix`` added to their names) and each adapter's small JSON files (no weights,
    no tokenizer) of one run folder."""
    for f in RUN_FILES:
        src = dev / sub / f
        if src.exists():
            target = dst / (f.removesuffix(".json") + suffix + ".json")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    for src in (dev / sub / "adapters").glob("*/*.json"):
        if src.name in ADAPTER_FILES:
            target = dst / src.relative_to(dev / sub)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device-p1", help="the phase-1 device run (SmolLM2, paper + Fledgling)")
    ap.add_argument("--device-p2", help="the phase-2 device run")
    ap.add_argument("--llm-p1", help="LLM suites, BFCL and phase-1 Fledgling tracks")
    ap.add_argument("--llm-p2", help="LLM phase-2 Fledgling tracks")
    ap.add_argument("--more-p1", action="append", default=[], metavar="NAME=DIR",
                    help="a further phase-1 run folder (another SLM): its paper results join paper_approach/, its "
                         "Fledgling run goes to fledgling_NAME/ (repeatable)")
    ap.add_argument("--more-p2", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--multi-gpu", help="files of the data-parallel run (experiments/device_run.sh ddp)")
    ap.add_argument("--bfcl-sample", type=int, default=30)
    ap.add_argument("--out", default="results")
    a = ap.parse_args()
    out = Path(a.out)
    for phase, dev, llm, more in ((1, a.device_p1, a.llm_p1, a.more_p1), (2, a.device_p2, a.llm_p2, a.more_p2)):
        root = out / f"phase{phase}"
        paper, fled = root / "paper_approach" / "eval_results", root / "fledgling" / "eval_results"
        if dev:  # without it, the phase's committed results stay as they are and only --more runs are added
            dev, llm = Path(dev), Path(llm or a.llm_p1)
            copy_results(dev / "paper_approach" / "eval_results", paper)
            copy_results(dev / "fledgling" / "eval_results", fled)
            # the LLM: suites and BFCL were run once (the suites are byte-identical in both phases), tracks per phase
            copy_results(Path(a.llm_p1) / "paper_approach" / "eval_results", paper, "llm-")
            copy_results(llm / "fledgling" / "eval_results", fled, "llm-")
            for sub in ("paper_approach", "fledgling"):
                copy_run_files(dev, sub, root / sub)
        for spec in more:
            name, _, folder = spec.partition("=")
            src = Path(folder)
            copy_results(src / "paper_approach" / "eval_results", paper, "paper-")
            copy_run_files(src, "paper_approach", root / "paper_approach",
                           suffix=f"_{name}")  # same rows, its tokenizer
            if (src / "fledgling" / "eval_results" / "fledgling_gate.json").exists():
                copy_results(src / "fledgling" / "eval_results", root / f"fledgling_{name}" / "eval_results")
                copy_run_files(src, "fledgling", root / f"fledgling_{name}")
        if not paper.is_dir():
            continue
        summarize_unfinished_bfcl(paper, a.bfcl_sample, 0)
        fledgling_runs = sorted(str(d / "eval_results") for d in root.glob("fledgling*")
                                if (d / "eval_results").is_dir())
        compare(CompareConfig(results_dirs=[str(paper), *fledgling_runs], phase=phase,
                              output_dir=str(root / "reports")))
    if a.multi_gpu:
        dst = out / "multi_gpu"
        dst.mkdir(parents=True, exist_ok=True)
        for f in Path(a.multi_gpu).iterdir():
            shutil.copy2(f, dst / f.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
