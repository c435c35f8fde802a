#!/usr/bin/env bash
# Issue 21's CPU check: the smoke SmolLM2 adapter, evaluated in-process, then exported, served by llama.cpp and
# evaluated again through the OpenAI backend (python -m fctune.roundtrip). Run from the project root after
# scripts/bootstrap.sh; W (default /tmp/rt) is a scratch copy so the project's own outputs stay as they are.
set -euo pipefail
W=${W:-/tmp/rt}; LIMIT=${LIMIT:-20}; SAMPLE=${SAMPLE:-10}
PY=$(pwd)/.venv/bin/python
rm -rf "$W" && git ls-files -z | xargs -0 -I{} cp --parents {} "$W" 2>/dev/null || { mkdir -p "$W"; git ls-files -z | xargs -0 cp --parents -t "$W"; }
cd "$W"
$PY -m fctune.pipeline --profile smoke --llm none --only-step 2
$PY -m fctune.pipeline --profile smoke --llm none --only-step 3
$PY docker/unsloth-paper/scripts/train_function_call.py --model smollm2 --name phi --preset smoke
A=paper_approach/adapters/phi
$PY docker/unsloth-paper/scripts/eval_function_call.py --model smollm2 --adapter $A --label paper-phi-ft \
  --role finetuned --approach paper --family phi --limit "$LIMIT"
$PY -m fctune.bfcl run --model smollm2 --adapter $A --label paper-phi-ft --role finetuned --approach paper \
  --family phi --categories non_live --sample "$SAMPLE"
$PY -m fctune.roundtrip --adapter $A --label paper-phi-ft --limit "$LIMIT" --bfcl-sample "$SAMPLE"
