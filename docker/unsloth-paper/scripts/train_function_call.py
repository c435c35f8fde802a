#!/usr/bin/env python3
"""Fine-tune a function-calling LoRA/QLoRA adapter (Unsloth on GPU, transformers+peft+TRL elsewhere).

Examples:
  python docker/unsloth-paper/scripts/train_function_call.py --preset smoke              # CPU, SmolLM2
  python docker/unsloth-paper/scripts/train_function_call.py --model microsoft/Phi-4-mini-instruct --name phi
  python docker/unsloth-paper/scripts/train_function_call.py --config my_run.yaml --learning-rate 1e-4
"""

from fctune.train import main

if __name__ == "__main__":
    raise SystemExit(main())
