#!/usr/bin/env python3
"""The Fledgling pipeline: LLM-first baseline, decision gate, structured + toolcall tracks on xLAM data.

Examples:
  python fledgling/run_pipeline.py                                   # Phi-4-mini, xLAM from the hub (falls back
                                                                     # to offline data and SmolLM2, recorded)
  python fledgling/run_pipeline.py --model smollm2 --source offline --train-preset smoke
"""

from fctune.fledgling import main

if __name__ == "__main__":
    raise SystemExit(main())
