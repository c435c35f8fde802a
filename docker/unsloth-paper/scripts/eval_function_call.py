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

from fctune.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
