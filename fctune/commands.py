"""The ``fctune`` console command: one subcommand per step, each the same entry point as its documented script
(``fctune train`` = ``python docker/unsloth-paper/scripts/train_function_call.py``), over the same config dataclass.

    fctune prepare --source offline --phase 1
    fctune train --preset smoke
    fctune eval --model smollm2 --adapter paper_approach/adapters/phi
    fctune --help

The table below is the only list of commands: the usage text and the tests are derived from it.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A subcommand: ``target`` is ``module:function`` taking ``argv`` and returning an exit code."""

    target: str
    help: str
    script: str | None = None  # the documented script that runs the same entry point, where there is one
    config: str | None = None  # ``module:Class`` of its config dataclass, where it parses one (``:PRESETS`` too)
    presets: str | None = None


COMMANDS: dict[str, Command] = {
    "prepare": Command("fctune.data:main", "train/val/test splits from Hermes, xLAM, OpenAI-chat rows or the "
                       "offline engine", "paper_approach/prepare_hermes_dataset.py",
                       config="fctune.data:PrepareConfig"),
    "suites": Command("fctune.suites:main", "build (and score) one test suite: fctune suites NAME ...",
                      "comparison_framework/test_<suite>.py",
                      config="fctune.suites:SuiteConfig"),
    "train": Command("fctune.train:main", "fine-tune a LoRA/QLoRA adapter",
                     "docker/unsloth-paper/scripts/train_function_call.py",
                     config="fctune.train:TrainConfig", presets="fctune.train:PRESETS"),
    "distill": Command("fctune.distill:main", "self-distillation: where the base model already makes a training "
                       "row's gold call, train on its own answer", config="fctune.distill:DistillConfig"),
    "eval": Command("fctune.evaluate:main", "evaluate a local model or an OpenAI-compatible endpoint on the suites",
                    "docker/unsloth-paper/scripts/eval_function_call.py",
                    config="fctune.evaluate:EvalConfig"),
    "bfcl": Command("fctune.bfcl.__main__:main", "BFCL: run a model, score saved outputs, rescore a run",
                    config="fctune.bfcl:BfclConfig"),  # the config of its ``run`` subcommand
    "score": Command("fctune.score:main", "score saved predictions against a suite split"),
    "compare": Command("fctune.compare:main", "compare every evaluated model with the LLM: report and verdict",
                       "comparison_framework/compare_approaches.py",
                       config="fctune.compare:CompareConfig"),
    "merge": Command("fctune.merge:main", "merge an adapter into its base model (safetensors folder)",
                     config="fctune.merge:MergeConfig"),
    "export": Command("fctune.export:main", "export an adapter: merged folder with a tool-calling template, GGUF",
                      config="fctune.export:ExportConfig"),
    "serve": Command("fctune.serve:main", "serve an exported model with tool calling (OpenAI-compatible)",
                     config="fctune.serve:ServeConfig"),
    "roundtrip": Command("fctune.roundtrip:main", "export, serve and re-evaluate an adapter through the OpenAI "
                         "backend; compare with in-process", config="fctune.roundtrip:RoundTripConfig"),
    "pipeline": Command("fctune.pipeline:main", "the whole phase-1 experiment, step by step, resumable",
                        "run_phase1_experiment.sh",
                        config="fctune.pipeline:PipelineConfig"),
    "fledgling": Command("fctune.fledgling:main", "the Fledgling approach: LLM first, decision gate, two tracks",
                         "fledgling/run_pipeline.py",
                         config="fctune.fledgling:FledglingConfig"),
    "repair-tokens": Command("fctune.repair_tokens:main", "check a model's tool-call tag tokens; repair untrained ones "
                             "(fed as text, or their rows fitted; tokenizer, and the GGUF llama.cpp serves)",
                             config="fctune.repair_tokens:RepairConfig"),
    "llama-server": Command("fctune.llama_server:main", "start llama.cpp's OpenAI-compatible server for a GGUF"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: fctune COMMAND [options]   (fctune COMMAND --help for a command's options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {c.help}" for name, c in COMMANDS.items()]
    return "\n".join(lines)


def _load(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def resolve(name: str):
    """The entry-point function of command ``name``."""
    return _load(COMMANDS[name].target)


def config_of(name: str) -> tuple[type | None, dict | None]:
    """Command ``name``'s config dataclass and presets (None where it parses its own way)."""
    c = COMMANDS[name]
    return (_load(c.config) if c.config else None), (_load(c.presets) if c.presets else None)


def main(argv=None) -> int:
    from fctune.cli import usage_exit

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        return usage_exit(usage(), argv)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        return usage_exit(f"fctune: unknown command {name!r}\n\n{usage()}", argv)
    # argparse names the program after argv[0]: make each command's --help and errors say "fctune NAME"
    sys.argv = [f"fctune {name}", *rest]
    return resolve(name)(rest)


if __name__ == "__main__":
    raise SystemExit(main())
