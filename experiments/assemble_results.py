#!/usr/bin/env python3
"""Assemble the experiment's result tree from the GPU runs and the CPU LLM run (see RESULTS.md).

    python experiments/assemble_results.py --device-p1 DIR --device-p2 DIR --llm-p1 DIR --llm-p2 DIR \
        --train-p1 DIR --out results

Each DIR is an unpacked run folder (``paper_approach/``, ``fledgling/`` inside). The script only copies result files,
scores saved predictions that a run did not get to score (``--rescore``), computes the Fledgling gate from the saved
track results, and runs the comparison for each phase. Nothing is generated here.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from fctune.bfcl import rescore as bfcl_rescore
from fctune.compare import CompareConfig, compare
from fctune.evaluate import result_paths
from fctune.fledgling import _model_results, gate_decision
from fctune.io import read_json, read_jsonl, write_json_atomic
from fctune.schema import read_examples
from fctune.score import score_predictions, write_scores

RESULT_GLOBS = ("*.json", "*_details.jsonl", "*_predictions.jsonl")


def copy_results(src: Path, dst: Path, prefix: str = "") -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for pattern in RESULT_GLOBS:
        for f in src.glob(prefix + pattern):
            shutil.copy2(f, dst / f.name)


def rescore_track(results: Path, label: str, track: str, split: Path) -> dict:
    """Score the saved predictions of a run that stopped before scoring (missing rows are listed)."""
    pred = results / f"{label}_{track}_predictions.jsonl"
    sibling = results / f"{label}_fledgling_toolcall.json"  # the same run's other track carries its identity
    model = read_json(sibling)["model"] if sibling.exists() else {"label": label}
    examples = read_examples(split)
    details, issues = score_predictions(examples, read_jsonl(pred), where=str(pred))
    s, d = result_paths(results, label, track)
    return write_scores(examples, details, issues, s, d, {"model": model, "suite": track, "split_file": str(split),
                                                          "rescored_from_saved_predictions": True})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device-p1", required=True)
    ap.add_argument("--device-p2", required=True)
    ap.add_argument("--train-p1", required=True, help="the run folder whose phase-1 training was not a resume")
    ap.add_argument("--llm-p1", required=True)
    ap.add_argument("--llm-p2", required=True)
    ap.add_argument("--out", default="results")
    a = ap.parse_args()
    out = Path(a.out)
    for phase, dev, llm in ((1, Path(a.device_p1), Path(a.llm_p1)), (2, Path(a.device_p2), Path(a.llm_p2))):
        root = out / f"phase{phase}"
        paper, fled = root / "paper_approach" / "eval_results", root / "fledgling" / "eval_results"
        copy_results(dev / "paper_approach" / "eval_results", paper)
        copy_results(dev / "fledgling" / "eval_results", fled)
        # the LLM: suites and BFCL were run once (the suites are identical in both phases), tracks per phase
        copy_results(Path(a.llm_p1) / "paper_approach" / "eval_results", paper, "llm-")
        copy_results(llm / "fledgling" / "eval_results", fled, "llm-")
        train_run = Path(a.train_p1) if phase == 1 else dev
        for f in ("adapters/phi/metadata.json", "adapters/phi/train_config.json", "datasets/dataset_stats.json",
                  "logs/timings.json"):
            src = train_run / "paper_approach" / f if f.startswith("adapters") else dev / "paper_approach" / f
            if src.exists():
                (root / "paper_approach" / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, root / "paper_approach" / f)
        if not (paper / "paper-phi-ft_bfcl.json").exists() and list(paper.glob("paper-phi-ft_bfcl_*_predictions.jsonl")):
            bfcl_rescore(str(paper), "paper-phi-ft", ["non_live"], sample=30, seed=0)
        base = next(iter(fled.glob("fledgling-*-base_fledgling_toolcall.json")), None)
        if base is not None:
            label = base.name.rsplit("_fledgling_", 1)[0]
            track = fled / f"{label}_fledgling_structured.json"
            if not track.exists() and (fled / f"{label}_fledgling_structured_predictions.jsonl").exists():
                rescore_track(fled, label, "fledgling_structured",
                              llm / "fledgling" / "test_splits" / "fledgling_structured_test.jsonl")
            llm_label = next(iter(fled.glob("llm-*_fledgling_toolcall.json"))).name.rsplit("_fledgling_", 1)[0]
            gate = gate_decision(_model_results(label, fled), _model_results(llm_label, fled), 0.10)
            gate.update({"llm": {"label": llm_label}, "base_model": {"label": label},
                         "note": "computed from the saved track results after the GPU run (fctune.fledgling."
                                 "gate_decision); the fine-tuning it calls for was not run (device time ran out)"})
            write_json_atomic(fled / "fledgling_gate.json", gate)
        compare(CompareConfig(results_dirs=[str(paper), str(fled)], phase=phase, output_dir=str(root / "reports")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
