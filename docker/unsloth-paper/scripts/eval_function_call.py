#!/usr/bin/env python3
"""Evaluate a model on the function-calling suites: a local model (+ LoRA adapter) or an OpenAI-compatible
endpoint (Azure OpenAI, OpenAI, vLLM, llama.cpp server). Results land in paper_approach/eval_results/ as
<label>_<suite>.json and <label>_<suite>_details.jsonl; reruns resume.

Examples:
  python docker/unsloth-paper/scripts/eval_function_call.py --model smollm2 --adapter paper_approach/adapters/phi
  python docker/unsloth-paper/scripts/eval_function_call.py --backend azure --label llm-azure --role llm
  python docker/unsloth-paper/scripts/eval_function_call.py --backend openai --base-url http://127.0.0.1:8080/v1 \\
      --model smollm2 --label llm-llamacpp --role llm
"""

from fctune.cli import run_script
from fctune.evaluate import EvalConfig, evaluate


def main(argv=None) -> int:
    return run_script(EvalConfig, evaluate, argv, summary=lambda r: "\n".join(
        f"{r['label']} {s}: exact {v['exact_match_rate']}, field F1 {v['field_f1']}, errors {v['n_errors']} "
        f"-> {v['summary']}" for s, v in r["suites"].items()))


if __name__ == "__main__":
    raise SystemExit(main())
