#!/usr/bin/env python3
"""The Fledgling pipeline: LLM-first baseline, decision gate, structured + toolcall tracks on xLAM data.

Examples:
  python fledgling/run_pipeline.py                                   # Phi-4-mini, xLAM from the hub (falls back
                                                                     # to offline data and SmolLM2, recorded)
  python fledgling/run_pipeline.py --model smollm2 --source offline --train-preset smoke
"""

from fctune.cli import run_script
from fctune.fledgling import FledglingConfig, run_pipeline


def main(argv=None) -> int:
    return run_script(FledglingConfig, run_pipeline, argv, summary=lambda s: (
        f"Fledgling gate: {s['gate']['decision']} ({s['gate']['reason']}); final model "
        f"{s['gate']['final_model']['label']}; results in fledgling/eval_results/"))


if __name__ == "__main__":
    raise SystemExit(main())
