#!/usr/bin/env python3
"""Fine-tune a function-calling LoRA/QLoRA adapter (Unsloth on GPU, transformers+peft+TRL elsewhere).

Examples:
  python docker/unsloth-paper/scripts/train_function_call.py --preset smoke              # CPU, SmolLM2
  python docker/unsloth-paper/scripts/train_function_call.py --model microsoft/Phi-4-mini-instruct --name phi
  python docker/unsloth-paper/scripts/train_function_call.py --config my_run.yaml --learning-rate 1e-4
"""

from fctune.cli import run_script
from fctune.train import PRESETS, TrainConfig, train


def main(argv=None) -> int:
    return run_script(TrainConfig, train, argv, presets=PRESETS, summary=lambda m: (
        f"adapter {m['adapter']} (version {m['version_id']}) -> {m['config']['output_dir']}/{m['adapter']}: "
        f"{m['global_step']} steps, train loss {m['final_train_loss']}, val loss {m['final_val_loss']}, "
        f"{m['non_padding_tokens_per_s']} tokens/s, backend {m['backend']}"))


if __name__ == "__main__":
    raise SystemExit(main())
