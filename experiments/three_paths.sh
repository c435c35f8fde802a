#!/usr/bin/env bash
# The same weights (Qwen2.5-Coder-0.5B-Instruct, the offline LLM stand-in) on the same BFCL rows through each path
# the project offers; BENCHMARKS.md's agreement table comes from the three summaries this writes.
#   bash experiments/three_paths.sh [OUT] [SAMPLE]       (CPU: about 40 minutes on 2 cores for SAMPLE=30)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/three_paths}
SAMPLE=${2:-30}
PY=.venv/bin/python
MODEL=qwen2.5-coder-0.5b-instruct
common=(--categories simple_python multiple parallel parallel_multiple irrelevance --sample "$SAMPLE"
        --max-new-tokens 512 --results-dir "$OUT" --role llm --approach llm)
# 1. local: transformers on the dequantized GGUF, the prompt from the model's own chat template (one row at a time:
#    a batch runs until its longest answer ends, and parallel rows have a 512-token budget)
$PY -m fctune.bfcl run --backend local --model $MODEL --label qwen0.5b-local --batch-size 1 "${common[@]}"
# 2. llama.cpp server started by fctune, the same rendered prompt sent to /v1/completions
$PY -m fctune.bfcl run --backend llamacpp --model $MODEL --label qwen0.5b-llamacpp --max-concurrency 1 "${common[@]}"
# 3. the generic OpenAI-compatible backend against a llama.cpp server started by hand
GGUF=$($PY -c "from fctune.models import resolve_model; print(resolve_model('$MODEL').location)")
PORT=$($PY -c "from fctune.llama_server import free_port; print(free_port())")
$PY -m llama_cpp.server --model "$GGUF" --host 127.0.0.1 --port "$PORT" --n_ctx 4096 --n_threads "$(nproc)" >"$OUT/external_server.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break; sleep 1; done
$PY -m fctune.bfcl run --backend openai --base-url "http://127.0.0.1:$PORT/v1" --model "$(basename "$GGUF")" \
  --tools-mode completions --tokenizer $MODEL --label qwen0.5b-openai --max-concurrency 1 "${common[@]}"
