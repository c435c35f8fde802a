#!/usr/bin/env bash
# Runs the GPU half of the experiment on a lent machine with no network (see RESULTS.md). Each action is one short
# call; files arrive in pieces in carried folders and are kept under /tmp between warm calls.
#   install DIR       pip-install the wheels in DIR into /tmp/site (the recipe of ../shared/device/README.md)
#   stash DIR         keep the model pieces carried in DIR under /tmp/models
#   assemble          join the pieces, check their sha256
#   phase N           the paper + Fledgling pipeline for phase N (resumable; results packed into $OUT/pN.tgz)
#   bfcl-full         BFCL non-live, every row, SmolLM2-135M base
#   bench             training / packing / evaluation throughput
set -euo pipefail
REPO=$(pwd)
export PYTHONPATH=/tmp/site:$REPO HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       FCTUNE_CACHE=/tmp/fcache PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
SMOL=/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf
GEMMA=/tmp/models/gemma-3-270m-q4_k_m.gguf

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
    cat smol.part-* > "$SMOL" && rm -f smol.part-*
    if ls gemma-3-270m-q4_k_m.gguf.part0* >/dev/null 2>&1; then cat gemma-3-270m-q4_k_m.gguf.part0* > "$GEMMA" && rm -f gemma-*.part0*; fi
    sha256sum /tmp/models/*.gguf
    python3 -c "import unsloth, trl, datasets; print('unsloth', unsloth.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__)" ;;
  phase)
    N=$2; W=/tmp/p$N
    if [ ! -d "$W/paper_approach" ] && [ -f "$REPO/.gpu_exp/p$N/state.tgz" ]; then  # a new machine: resume
      mkdir -p "$W" && tar xzf "$REPO/.gpu_exp/p$N/state.tgz" -C "$W"
    fi
    mkdir -p "$W" && cp -r "$REPO"/{fctune,paper_approach,comparison_framework,fledgling,docker,pyproject.toml} "$W"/ 2>/dev/null || true
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
  bfcl-full)
    cd /tmp/p1 && export PYTHONPATH=/tmp/site:/tmp/p1
    python3 -m fctune.bfcl run --model "$SMOL" --label smollm2-135m-base --role base --categories non_live \
      --batch-size 64 --max-new-tokens 256 --results-dir /tmp/bfcl_full
    mkdir -p "$OUT" && tar czf "$OUT/bfcl_full.tgz" -C /tmp bfcl_full ;;
  bench)
    mkdir -p "$OUT"
    python3 benchmarks/train_throughput.py prepare --dir /tmp/shapes
    timeout "${2:-500}" python3 benchmarks/train_throughput.py all --dir /tmp/shapes --out "$OUT/train_throughput.jsonl" || true
    ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
