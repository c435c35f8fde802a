#!/usr/bin/env bash
# Issue 20 on a lent H100 with no network: Qwen2.5-Coder-0.5B-Instruct (and SmolLM2-135M) fine-tuned on the offline
# data engine's rows, evaluated on every BFCL non-live row and on the four suites, beside the base model.
#   install DIR     pip-install the wheels in DIR into /tmp/site (../shared/device/README.md; transformers+peft+TRL,
#                   no Unsloth: its wheels and bitsandbytes would cost three more transfers of the 491 MB model's size)
#   stash DIR       keep the model pieces carried in DIR under /tmp/models
#   assemble        join the pieces (qwen.part-*, smol.part-*), print their sha256
#   start           data (engine rows, masked and unmasked), suites, then four background jobs sharing the GPU:
#                   qmask (train with 25% of rows' names masked, BFCL, suites), qplain (the same, no masking),
#                   qbase (the base model: BFCL, suites), smol (SmolLM2 on the unmasked rows, BFCL)
#   wait [SECONDS]  report the jobs until all are done or SECONDS pass
#   pack            results, logs and adapter metadata into $OUT (adapter weights left out)
# Sizes: TRAIN_ROWS (default 16000), EPOCHS (1), MASK (0.25).
set -euo pipefail
REPO=$(pwd)
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       FCTUNE_CACHE=/tmp/fcache PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
QWEN=/tmp/models/qwen2.5-coder-0.5b-instruct-awq.gguf
SMOL=/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf
J=/tmp/ejobs
copy_code() { mkdir -p "$1" && cp -r "$REPO"/{fctune,paper_approach,comparison_framework,docker,pyproject.toml} "$1"/; }

case "$1" in
  install)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$2"/*.whl
    python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" ;;
  stash)
    mkdir -p /tmp/models && cp "$2"/* /tmp/models/ && ls /tmp/models | wc -l ;;
  assemble)
    cd /tmp/models
    if ls qwen.part-* >/dev/null 2>&1; then cat qwen.part-* > "$QWEN" && rm -f qwen.part-*; fi
    if ls smol.part-* >/dev/null 2>&1; then cat smol.part-* > "$SMOL" && rm -f smol.part-*; fi
    sha256sum /tmp/models/*.gguf
    python3 -c "import trl, datasets, bfcl_eval, jsonschema, gguf; print('trl', trl.__version__)" ;;
  start)
    mkdir -p $J "$OUT"
    W=/tmp/e; copy_code $W; cd $W; export PYTHONPATH=/tmp/site:$W
    N=${TRAIN_ROWS:-16000}
    # one seed, so the masked and unmasked sets hold the same rows; masking touches train rows only
    for m in 0 "${MASK:-0.25}"; do
      d=paper_approach/datasets_m$m
      [ -f $d/hermes_train.jsonl ] || python3 paper_approach/prepare_hermes_dataset.py --source offline \
        --train-size "$N" --val-size 200 --test-size 200 --tokenizer none --mask-names "$m" --output-dir $d \
        > $J/prepare_m$m.log 2>&1
    done
    mkdir -p paper_approach/datasets && cp paper_approach/datasets_m0/* paper_approach/datasets/
    [ -f comparison_framework/test_splits/no_call_test.jsonl ] || python3 -m fctune.pipeline --profile full \
      --phase 2 --llm none --models qwen="$QWEN" --only-step 3 > $J/suites.log 2>&1
    python3 -c "from fctune.models import materialize, resolve_model as r; print(materialize(r('$QWEN')), materialize(r('$SMOL')))"
    for w in qmask qplain qbase smol; do [ -d /tmp/$w ] || cp -r $W /tmp/$w; done
    job() {  # name, command: runs once in the background in /tmp/NAME, done-marker on success
      local name=$1; shift
      [ -f $J/$name.done ] && return 0
      (cd /tmp/$name && PYTHONPATH=/tmp/site:/tmp/$name setsid nohup bash -c "$* && touch $J/$name.done" \
        > $J/$name.log 2>&1 &)
    }
    TR=(python3 docker/unsloth-paper/scripts/train_function_call.py --backend transformers --quantization none
        --gradient-checkpointing false --packing false --lora-r 32 --lora-alpha 64
        --num-train-epochs "${EPOCHS:-1}" --per-device-train-batch-size 8 --gradient-accumulation-steps 2
        --learning-rate 2e-4 --warmup-ratio 0.03 --eval-steps 100 --save-steps 200 --max-eval-samples 200)
    BF=(python3 -m fctune.bfcl run --categories non_live --batch-size 64)
    EV=(python3 docker/unsloth-paper/scripts/eval_function_call.py --batch-size 64 --approach paper)
    for v in qmask qplain; do
      d=paper_approach/datasets_m$([ $v = qmask ] && echo "${MASK:-0.25}" || echo 0)
      A=paper_approach/adapters/qwen-$v
      job $v "${TR[*]} --model $QWEN --name qwen-$v --train-file $d/hermes_train.jsonl --val-file $d/hermes_val.jsonl \
        && ${BF[*]} --model $QWEN --adapter $A --label qwen-$v-ft --role finetuned --family qwen \
        && ${EV[*]} --model $QWEN --adapter $A --label qwen-$v-ft --role finetuned --family qwen"
    done
    job qbase "${BF[*]} --model $QWEN --label qwen-base --role base --family qwen \
      && ${EV[*]} --model $QWEN --label qwen-base --role base --family qwen"
    # SmolLM2 on the same harness as its earlier 0.120: batch 64, 256 new tokens
    job smol "${TR[*]} --model $SMOL --name smollm2-engine --train-file paper_approach/datasets_m0/hermes_train.jsonl \
      --val-file paper_approach/datasets_m0/hermes_val.jsonl \
      && ${BF[*]} --max-new-tokens 256 --model $SMOL --adapter paper_approach/adapters/smollm2-engine \
      --label smollm2-engine-ft --role finetuned --family smollm2"
    sleep 30; ls $J; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv ;;
  wait)
    end=$((SECONDS + ${2:-540}))
    while [ $SECONDS -lt $end ]; do
      pending=$(for j in $J/*.log; do j=$(basename "$j" .log); case $j in prepare*|suites) continue;; esac
                [ -f $J/$j.done ] || echo "$j"; done)
      [ -z "$pending" ] && break
      alive=$(pgrep -fc "python3 .*(train_function_call|fctune.bfcl|eval_function_call)" || true)
      [ "$alive" = 0 ] && { echo "no job running; pending: $pending"; break; }
      sleep 15
    done
    for j in $J/*.log; do
      j=$(basename "$j" .log); echo "== $j $([ -f $J/$j.done ] && echo done || echo pending)"
      tail -c 600 $J/$j.log 2>/dev/null | tr '\r' '\n' | grep -v '^ *$' | tail -2
    done
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader ;;
  pack)
    mkdir -p "$OUT" && cp $J/*.log "$OUT"/ 2>/dev/null || true
    for w in qmask qplain qbase smol; do
      [ -d /tmp/$w ] && tar czf "$OUT/$w.tgz" -C /tmp/$w --exclude='*.safetensors' --exclude=checkpoints \
        --exclude=tokenizer.json --exclude='*.pt' --exclude='*.bin' paper_approach/eval_results \
        paper_approach/adapters 2>/dev/null || true
    done
    tar czf "$OUT/data.tgz" -C /tmp/e paper_approach/datasets_m0/dataset_stats.json \
      paper_approach/datasets_m0.25/dataset_stats.json comparison_framework/test_splits 2>/dev/null || true
    ls -la "$OUT" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
