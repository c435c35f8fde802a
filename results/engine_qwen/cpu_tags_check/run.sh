#!/bin/bash
# CPU check of the trainable-token fix on the real Qwen2.5-Coder-0.5B GGUF: a short run on single-call engine rows,
# then BFCL simple_python (10 rows) with the adapter. Not a quality figure: whether the tags come out.
set -x
cd /work/main
export FCTUNE_CACHE=/tmp/fcache_local
PY=.venv/bin/python
$PY - <<'P'
from fctune.schema import read_examples, write_examples
rows = [e for e in read_examples("/tmp/e/paper_approach/datasets_m0/hermes_train.jsonl") if e.expected.kind == "tool_calls" and len(e.expected.tool_calls) == 1]
write_examples("/tmp/qcpu/train.jsonl", rows[:64])
print(len(rows))
P
$PY docker/unsloth-paper/scripts/train_function_call.py --model /tmp/models/qwen2.5-coder-0.5b-instruct-awq.gguf \
  --name qwen-cpu-tags --output-dir /tmp/qcpu/adapters --train-file /tmp/qcpu/train.jsonl --val-file '' \
  --backend transformers --max-steps 24 --per-device-train-batch-size 2 --gradient-accumulation-steps 1 \
  --learning-rate 5e-4 --warmup-ratio 0 --lora-r 16 --lora-alpha 32 --max-seq-length 1024 --save-steps 100 --logging-steps 2
$PY -m fctune.bfcl run --model /tmp/models/qwen2.5-coder-0.5b-instruct-awq.gguf --adapter /tmp/qcpu/adapters/qwen-cpu-tags \
  --label qwen-cpu-tags --role finetuned --family qwen --categories simple_python --limit 10 --batch-size 5 \
  --results-dir /tmp/qcpu/results
