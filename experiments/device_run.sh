#!/usr/bin/env bash
# Runs the GPU half of the experiment on an air-gapped GPU host (no network; see RESULTS.md). Each action is one
# short command; files reach the host in transfers of at most 64 MiB (wheels and model pieces in folders of the
# checkout) and are kept under /tmp while the host stays up.
#   install DIR       pip-install the wheels in DIR into /tmp/site (what the host's image lacks)
#   stash DIR         keep the model pieces carried in DIR under /tmp/models
#   assemble          join the pieces, check their sha256
#   phase N           the paper + Fledgling pipeline for phase N (resumable; results packed into $OUT/pN.tgz)
#   fledgling N       the Fledgling pipeline alone for phase N (LLM track results carried in .gpu_exp/pN/)
#   ddp [SECONDS]     one model data-parallel over 2 GPUs through the pipeline, and the same run on 1 GPU (issue 12)
#   bfcl-full         BFCL non-live, every row, SmolLM2-135M base
#   bench [SHAPE...]  training throughput of three stacks (issue 10); resumes from /tmp/bench while the host stays up
#   ft2 [SECONDS]     phase-2 paper adapter (packed), the same data unpacked for 63 steps, BFCL non-live (every row)
#                     of the adapter
#   evalbench         local backend on the device: batched against one at a time
#   gemma-start       the second SLM (Gemma-3-270M) in both phases, as background jobs that share the GPU: paper
#                     training + fine-tuned evaluation, base evaluation, Fledgling; BFCL non-live on every row in
#                     phase 2, the 30-row sample in phase 1 (as for SmolLM2). Logs and done-markers in /tmp/gjobs
#                     (PHASES="2" JOBS="fled" narrow it; in phase 2 the Fledgling job also runs BFCL on its adapter)
#   gemma-wait [SECONDS]  report the jobs until all are done or SECONDS pass; gemma-pack: results into $OUT
#                     (KEEP_ADAPTERS=1: with the adapters' weights)
set -euo pipefail
REPO=$(pwd)
export PYTHONPATH=/tmp/site:$REPO HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       FCTUNE_CACHE=/tmp/fcache PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
SMOL=/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf
GEMMA=/tmp/models/gemma-3-270m-q4_k_m.gguf
copy_code() { mkdir -p "$1" && cp -r "$REPO"/{fctune,paper_approach,comparison_framework,fledgling,docker,pyproject.toml} "$1"/; }

case "$1" in
  install)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$2"/*.whl
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import torch, transformers, peft; print('torch', torch.__version__, torch.version.cuda, 'transformers', transformers.__version__, 'peft', peft.__version__)"
    ;;
  stash)
    mkdir -p /tmp/models && cp "$2"/* /tmp/models/ && ls -la /tmp/models ;;
  assemble)
    cd /tmp/models
    if ls smol.part-* >/dev/null 2>&1; then cat smol.part-* > "$SMOL" && rm -f smol.part-*; fi
    if ls gemma-3-270m-q4_k_m.gguf.part0* >/dev/null 2>&1; then cat gemma-3-270m-q4_k_m.gguf.part0* > "$GEMMA" && rm -f gemma-*.part0*; fi
    sha256sum /tmp/models/*.gguf
    python3 -c "import unsloth, trl, datasets; print('unsloth', unsloth.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__)" ;;
  phase)
    N=$2; W=/tmp/p$N
    if [ ! -d "$W/paper_approach" ] && [ -f "$REPO/.gpu_exp/p$N/state.tgz" ]; then  # a new machine: resume
      mkdir -p "$W" && tar xzf "$REPO/.gpu_exp/p$N/state.tgz" -C "$W"
    fi
    copy_code "$W" 2>/dev/null || true
    mkdir -p "$W/fledgling/eval_results" && cp -n "$REPO"/.gpu_exp/p"$N"/*.json "$W/fledgling/eval_results/" 2>/dev/null || true
    cd "$W"
    export PYTHONPATH=/tmp/site:$W
    set +e
    timeout "${3:-540}" python3 -m fctune.pipeline --profile full --phase "$N" --gpus 0 --llm none --bfcl \
      --eval-batch-size 64 \
      --bfcl-sample 30 --fledgling-test-size 50 ${EXTRA:-} --models ${MODELS:-smollm2="$SMOL"}
    echo "pipeline exit: $?"
    set -e
    mkdir -p "$OUT"
    tar czf "$OUT/p$N-adapters.tgz" --exclude='checkpoints' paper_approach/adapters fledgling/adapters 2>/dev/null || true
    tar czf "$OUT/p$N.tgz" --exclude='*.safetensors' --exclude='checkpoints' --exclude='*.pt' --exclude='*.bin' \
      paper_approach/eval_results paper_approach/adapters paper_approach/datasets/dataset_stats.json \
      paper_approach/logs fledgling/eval_results fledgling/adapters comparison_framework/test_splits 2>/dev/null || true
    ls -la "$OUT" ;;
  fledgling)  # the Fledgling pipeline alone for phase N, once the LLM's track results are carried in .gpu_exp/pN/
    N=$2; W=/tmp/p$N; export PYTHONPATH=/tmp/site:$W
    [ -d "$W/fctune" ] || copy_code "$W"
    cd "$W" && mkdir -p fledgling/eval_results && cp "$REPO"/.gpu_exp/p"$N"/*.json fledgling/eval_results/
    for step in 2 3; do  # the shared suites, which Fledgling also runs its final model on
      [ -f comparison_framework/test_splits/single_turn_test.jsonl ] || python3 -m fctune.pipeline --phase "$N" \
        --profile full --llm none --models smollm2="$SMOL" --only-step $step > /dev/null 2>&1
    done
    set +e
    timeout "${3:-540}" python3 fledgling/run_pipeline.py --phase "$N" --llm-backend existing --max-new-tokens 256 \
      --batch-size 64 --model "$SMOL" --test-size 50
    echo "fledgling exit: $?"
    set -e
    mkdir -p "$OUT" && tar czf "$OUT/p$N-fledgling.tgz" --exclude='*.safetensors' --exclude='checkpoints' \
      fledgling/eval_results fledgling/adapters fledgling/datasets/*stats*.json fledgling/test_splits 2>/dev/null || true ;;
  ddp)  # issue 12 on 2 GPUs: the pipeline's training step data-parallel over GPUs 0,1, then the same run on GPU 0 alone
    export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
    W=/tmp/ddp; mkdir -p "$OUT" && copy_code "$W"
    cd "$W" && export PYTHONPATH=/tmp/site:$W
    python3 -c "from fctune.models import materialize, resolve_model; print(materialize(resolve_model('$SMOL')))"
    P=(python3 -m fctune.pipeline --profile full --phase 2 --llm none --models smollm2="$SMOL")
    "${P[@]}" --gpus 0,1 --only-step 2 > "$OUT/prepare.log" 2>&1
    for run in ddp 1gpu; do
      nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv -l 1 > "$OUT/smi_gpus_$run.csv" &
      S=$!
      nvidia-smi --query-compute-apps=timestamp,pid,gpu_uuid,used_memory --format=csv -l 2 > "$OUT/smi_apps_$run.csv" &
      A=$!
      set +e
      if [ $run = ddp ]; then timeout "${2:-300}" "${P[@]}" --gpus 0,1 --only-step 5 > "$OUT/train_$run.log" 2>&1
      else CUDA_VISIBLE_DEVICES=0 timeout "${2:-300}" python3 docker/unsloth-paper/scripts/train_function_call.py \
             --model "$SMOL" --name smollm2-1gpu > "$OUT/train_$run.log" 2>&1; fi
      echo "$run exit: $?"
      set -e
      kill $S $A
      nvidia-smi --query-gpu=index,uuid --format=csv > "$OUT/gpu_uuids.csv"
    done
    cp paper_approach/adapters/smollm2/metadata.json "$OUT/metadata_ddp.json" || true
    cp paper_approach/adapters/smollm2-1gpu/metadata.json "$OUT/metadata_1gpu.json" || true
    grep -h "data-parallel\|train_runtime\|adapter saved" "$OUT"/train_*.log || true ;;
  bfcl-full)
    cd /tmp/p1 && export PYTHONPATH=/tmp/site:/tmp/p1
    python3 -m fctune.bfcl run --model "$SMOL" --label smollm2-135m-base --role base --categories non_live \
      --batch-size 64 --max-new-tokens 256 --results-dir /tmp/bfcl_full
    mkdir -p "$OUT" && tar czf "$OUT/bfcl_full.tgz" -C /tmp bfcl_full ;;
  bench)
    shift; mkdir -p "$OUT" /tmp/bench
    python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer "$REPO/.gpu_exp/tok" \
      --out /tmp/bench/train_throughput.jsonl --budget-s "${BENCH_SECONDS:-540}" --shapes "$@" || true
    cp /tmp/bench/train_throughput.jsonl "$OUT"/ ;;
  ft2)
    W=/tmp/ft2; mkdir -p "$OUT" && copy_code "$W" && cp -r "$REPO/benchmarks" "$W"/
    cd "$W" && export PYTHONPATH=/tmp/site:$W
    P=(python3 -m fctune.pipeline --profile full --phase 2 --gpus 0 --llm none --models smollm2="$SMOL")
    [ -f comparison_framework/test_splits/single_turn_test.jsonl ] || for step in 2 3; do
      "${P[@]}" --only-step $step >> "$OUT/prepare.log" 2>&1; done
    set +e
    [ -f paper_approach/adapters/smollm2/adapter_model.safetensors ] || timeout "${2:-400}" "${P[@]}" --only-step 5 \
      > "$OUT/train_packed.log" 2>&1
    [ -f paper_approach/adapters/smollm2-unpacked/metadata.json ] || timeout 240 python3 \
      docker/unsloth-paper/scripts/train_function_call.py --model "$SMOL" --name smollm2-unpacked --packing false \
      --max-steps 63 > "$OUT/train_unpacked.log" 2>&1
    set -e
    cp paper_approach/adapters/smollm2/metadata.json "$OUT/metadata_packed.json" || true
    cp paper_approach/adapters/smollm2-unpacked/metadata.json "$OUT/metadata_unpacked.json" || true
    set +e
    timeout "${3:-500}" python3 -m fctune.bfcl run --model "$SMOL" --adapter paper_approach/adapters/smollm2 \
      --label paper-smollm2-ft --role finetuned --approach paper --family smollm2 --categories non_live \
      --batch-size 64 --max-new-tokens 256 --results-dir /tmp/bfcl_full_ft > "$OUT/bfcl.log" 2>&1
    echo "bfcl exit: $?"; set -e
    tail -3 "$OUT/bfcl.log"
    tar czf "$OUT/bfcl_full_ft.tgz" -C /tmp bfcl_full_ft ;;
  evalbench)
    cd /tmp/ft2 && export PYTHONPATH=/tmp/site:/tmp/ft2 && mkdir -p "$OUT"
    python3 benchmarks/eval_throughput.py --model "$SMOL" --adapter paper_approach/adapters/smollm2 \
      --split comparison_framework/test_splits/single_turn_test.jsonl --rows 32 --batch-sizes 1 8 32 --repeats 3 \
      --out "$OUT/eval_throughput_h100.json" ;;
  gemma-start)
    mkdir -p /tmp/gjobs
    python3 -c "from fctune.models import materialize, resolve_model; print(materialize(resolve_model('$GEMMA')))"
    want() { [[ " ${JOBS:-train base fled} " == *" $1 "* ]]; }
    job() {  # name, folder, command...: runs once in the background, done-marker on success
      local name=$1 dir=$2; shift 2
      [ -f /tmp/gjobs/$name.done ] && return 0
      (cd "$dir" && PYTHONPATH=/tmp/site:$dir setsid nohup bash -c "$* && touch /tmp/gjobs/$name.done" \
        > /tmp/gjobs/$name.log 2>&1 &)
    }
    for N in ${PHASES:-2 1}; do
      for W in /tmp/g$N /tmp/g${N}f; do  # Fledgling in its own folder: Unsloth compiles into the working folder
        { [ "$W" = /tmp/g${N}f ] && want fled; } || { [ "$W" = /tmp/g$N ] && { want train || want base; }; } || continue
        [ -d "$W/fctune" ] || copy_code "$W"
        ( cd "$W" && for step in 2 3; do PYTHONPATH=/tmp/site:$W python3 -m fctune.pipeline --phase "$N" \
            --profile full --llm none --models gemma="$GEMMA" --only-step $step > /dev/null; done )
      done
      want fled && mkdir -p /tmp/g${N}f/fledgling/eval_results && cp "$REPO"/.gpu_exp/llm/p"$N"/*.json /tmp/g${N}f/fledgling/eval_results/
      BF=(--categories non_live --batch-size 64 --max-new-tokens 256)
      [ "$N" = 1 ] && BF+=(--sample 30)
      EV=(--batch-size 64 --max-new-tokens 256 --approach paper --family gemma --model "$GEMMA")
      FT=(--adapter paper_approach/adapters/gemma --label paper-gemma-ft --role finetuned)
      BASE=(--label paper-gemma-base --role base)
      want train && job "train$N" /tmp/g$N "python3 docker/unsloth-paper/scripts/train_function_call.py --model $GEMMA --name gemma \
        && python3 docker/unsloth-paper/scripts/eval_function_call.py ${EV[*]} ${FT[*]} \
        && python3 -m fctune.bfcl run ${BF[*]} ${EV[*]} ${FT[*]}"
      want base && job "base$N" /tmp/g$N "python3 docker/unsloth-paper/scripts/eval_function_call.py ${EV[*]} ${BASE[*]} \
        $([ "$N" = 2 ] && echo "&& python3 -m fctune.bfcl run ${BF[*]} ${EV[*]} ${BASE[*]}")"
      FA=fledgling/adapters/fledgling-gemma-3-270m-q4_k_m
      want fled && job "fled$N" /tmp/g${N}f "python3 fledgling/run_pipeline.py --phase $N --llm-backend existing \
        --max-new-tokens 256 --batch-size 64 --model $GEMMA --test-size 50 \
        $([ "$N" = 2 ] && echo "&& python3 -m fctune.bfcl run ${BF[*]} --model $GEMMA --adapter $FA \
        --label fledgling-gemma-3-270m-q4_k_m-ft --role finetuned --approach fledgling --results-dir fledgling/eval_results")"
    done
    sleep 20; ls /tmp/gjobs; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv ;;
  gemma-wait)
    end=$((SECONDS + ${2:-540}))
    while [ $SECONDS -lt $end ]; do
      pending=$(for j in /tmp/gjobs/*.log; do j=$(basename "$j" .log); [ -f /tmp/gjobs/$j.done ] || echo "$j"; done)
      [ -z "$pending" ] && break
      alive=$(pgrep -fc "python3 .*gemma" || true)
      [ "$alive" = 0 ] && { echo "no job running; pending: $pending"; break; }
      sleep 15
    done
    for j in /tmp/gjobs/*.log; do
      j=$(basename "$j" .log); echo "== $j $([ -f /tmp/gjobs/$j.done ] && echo done || echo pending)"
      tail -c 400 /tmp/gjobs/$j.log 2>/dev/null | tr '\r' '\n' | grep -v '^ *$' | tail -2
    done
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader ;;
  gemma-pack)
    mkdir -p "$OUT" && cp /tmp/gjobs/*.log "$OUT"/ 2>/dev/null || true
    for W in g1 g2 g1f g2f; do
      [ -d /tmp/$W ] && tar czf "$OUT/$W.tgz" -C /tmp/$W ${KEEP_ADAPTERS:+--exclude=model.safetensors} \
        ${KEEP_ADAPTERS:---exclude=*.safetensors} --exclude=checkpoints --exclude=tokenizer.json \
        --exclude='*.pt' --exclude='*.bin' paper_approach/eval_results paper_approach/adapters \
        paper_approach/datasets/dataset_stats.json fledgling/eval_results fledgling/adapters \
        fledgling/datasets comparison_framework/test_splits 2>/dev/null || true  # some folders lack some parts
    done
    ls -la "$OUT" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
