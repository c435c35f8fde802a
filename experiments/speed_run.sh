#!/usr/bin/env bash
# Issue 23 on an air-gapped 2-GPU host (no network; a call carries at most 64 MiB with the tracked tree): the
# training-throughput stacks and the evaluation engines, measured side by side in one run.
#   stash DIR     keep the carried piece(s) in DIR under /tmp/pk (one 25 MiB piece of the pack per call)
#   setup         join the pieces (pack.tar: wheels for Unsloth, TRL, bitsandbytes, datasets, bfcl-eval...;
#                 SmolLM2-135M-Instruct's GGUF; its tokenizer), install the wheels into /tmp/site, copy the code
#   start         in the background, one queue per GPU, each under its budget:
#                 GPU 0: benchmarks/train_throughput.py, stack "unsloth" (raw Unsloth and the project's trainer,
#                        step metrics off and on, interleaved in one process) on the six shapes (TRAIN_BUDGET s),
#                        then the raw transformers stack on them (only if TF_BUDGET > 0);
#                 GPU 1: benchmarks/eval_engines.py on BFCL non-live (EVAL_SAMPLE rows per category, default all):
#                        padded:64 (today's engine and batch) against continuous, EVAL_REPEATS interleaved repeats,
#                        then a 16-row-per-category sample in fp32 (token identity of the two engines)
#   restart0      GPU 0's queue again with this tree's training code (used once, to add a trainer variant)
#   wait SECONDS  report the queues until both are done or SECONDS pass
#   pack          results, logs and evaluation run folders into $OUT/results.tgz
# Device calls behind the results BENCHMARKS.md cites, by results folder (benchmarks/results/):
# h200_2026-11-30_s3: 8 `stash` calls, then `setup`, EVAL_SAMPLE=100 `ablate`
# (the ablation showed the raw loop never armed Unsloth's checkpointing; fixed in train_throughput.py), `waitfile`,
# then TRAIN_BUDGET=540 TF_BUDGET=420 `trainall`, `wait`, `pack`. trainall's GPU 1 queue never started: its waiting
# loop is a plain background subshell and died with the call (the setsid'd jobs live on); Phi-4-mini 4-bit and the
# 1B transformers stack were then run by hand in one foreground call. 8B did not fit.
# h200_2026-11-30_s4: 10 `stash .gpu_exp/s23/dN` calls (20 MiB pieces: the tracked tree had
# grown to 40 MB, and a call carries 64 MiB with it), `setup`, then BUDGET=960 SHAPES0="phi-4-mini llama-3.2-1b"
# EXTRA="trainer-padding_free trainer+model_loss" EVAL_RUNS="padded:64 static:256 static:64" EVAL_REPEATS=2 `s4`,
# `wait` calls back to back, and the folders tarred into $OUT in one file (a call brings back only a few files). A
# first machine was lost to a pause of over 30 s between calls; keep a `wait` in flight while reading results.
# h200_2026-11-30_s5: the same 10 `stash` calls, `setup`, BUDGET=960 `s5`, `wait` calls; the
# queues' "done" marks were then written outside their setsid'd jobs and died with the call (now inside), so GPU 1's
# follow-up (two more static:256 repeats, then the fp32 sample) was started by hand once it was idle, and the folders
# tarred by hand (eng_more too). 28 of 30 device minutes.
# h200_2026-11-30_s6: the same 10 `stash` calls, `setup` and BUDGET=1000 `s7` in one call, three
# `wait` calls back to back, `pack`; everything ran (23 of 30 device minutes). The prepared `s6` (the 1B
# queue alone) is folded into s7's GPU 0. Then, on a 1-GPU machine (nvidia-h200), 10 `stash` calls and `setup` +
# BUDGET=240 `quiet1b` in one call (6 device minutes).
# h200_2026-12-01_s13: 5 `stash` calls, `setup` + TAG=phi_bf16_fixed SHAPES=phi-4-mini
# PRECISIONS=bf16 EXTRA="raw+autocast trainer-prefetch" BUDGET=470 `lean` in one call (the benchmark corrected), then
# back to back STEPS=40 ROUNDS=4 TAG=r40_1b_fixed SHAPES=llama-3.2-1b PRECISIONS="4bit bf16" (bf16 out of BUDGET=540),
# TAG=r40_1b_bf16_fixed (bf16, BUDGET=330), TAG=phi_4bit_fixed (Phi-4-mini 4bit, BUDGET=420) and TAG=r40_1b_bf16_fixed2
# (EXTRA=raw+autocast, BUDGET=270), all with the same EXTRA unless said (28 minutes, one machine). raw+autocast is one
# of the paired stacks since (train_throughput.PAIRED), so EXTRA no longer needs it.
# h200_2026-12-01_s14: 5 `stash` calls, `setup` + STEPS=40 ROUNDS=6 TAG=r40_1b_autocast
# SHAPES=llama-3.2-1b PRECISIONS=bf16 BUDGET=420 `lean` (out of budget, nothing kept); the machine went back during a
# pause; on a second, 5 `stash`, `setup` + STEPS=40 ROUNDS=4 TAG=r40_1b_autocast2 (same shape) EXTRA=trainer-autocast
# BUDGET=430 `lean`, then TAG=r40_1b_bf16_r3 EXTRA="" BUDGET=300 (then the default's six variants: out of budget);
# a third machine, the same as r40_1b_autocast2 with BUDGET=300 (out of budget). Since, a stopped configuration keeps
# its completed rounds and EXTRA="" means none (30 minutes).
# h200_2026-12-01_s15: a new pack (the same recipe, below), 5 `stash` calls, `setup` +
# STEPS=40 ROUNDS=4 TAG=r40_1b_batch SHAPES=llama-3.2-1b PRECISIONS=bf16 EXTRA="raw+autocast+batch_marks
# raw+autocast+num_items" BUDGET=360 `lean` in one call (376 s with the setup), then back to back TAG=r40_1b_numitems2
# (EXTRA=raw+autocast+num_items, BUDGET=300), VARIANTS="raw raw+autocast trainer" BUDGET=240 `hostprofile`, and
# STEPS=16 ROUNDS=3 SHAPES=llama-3.1-8b EXTRA="" `lean` for TAG=8b_bf16_s15 (bf16, BUDGET=420) and TAG=8b_4bit_s15
# (4bit, BUDGET=360): 26 minutes, one machine.
# The pack is made here with:
#   tar cf - -C .gpu_exp/s23/stage . | split -b 19M -d -a 1 - .gpu_exp/s23/dN/pack.part-   (one piece per folder)
# (stage: wheels/ from ../shared/device/wheels.sh plus bfcl-eval, tok/ = SmolLM2's tokenizer saved from its GGUF,
# and SmolLM2-135M-Instruct.Q4_1.gguf only for the evaluation recipes; add /.gpu_exp/ to .git/info/exclude)
set -euo pipefail
REPO=$(pwd)
export PYTHONPATH=/tmp/site:/tmp/b HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       FCTUNE_CACHE=/tmp/fcache PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
J=/tmp/sjobs
SMOL=/tmp/pk/SmolLM2-135M-Instruct.Q4_1.gguf

case "$1" in
  stash)
    mkdir -p /tmp/pk && cp "$2"/* /tmp/pk/ && ls -la /tmp/pk ;;
  setup)
    cd /tmp/pk && cat pack.part-* | tar xf - && rm -f pack.part-*
    # a pack for training benchmarks alone leaves the GGUF out (five pieces instead of ten)
    if [ -f "$SMOL" ]; then sha256sum "$SMOL"; else echo "no $SMOL in the pack: training benchmarks only"; fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      /tmp/pk/wheels/*.whl
    rm -rf /tmp/b && mkdir -p /tmp/b && cp -r "$REPO"/{fctune,benchmarks,comparison_framework,paper_approach,pyproject.toml} /tmp/b/
    cd /tmp/b && python3 -c "import unsloth, trl, bitsandbytes, bfcl_eval, fctune; print('unsloth', unsloth.__version__, 'trl', trl.__version__)" 2>&1 | tail -2
    nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader ;;
  start)
    mkdir -p $J
    cd /tmp/b
    # each queue under its own budget, so both end inside the device time
    (CUDA_VISIBLE_DEVICES=0 setsid nohup bash -c "
       python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer /tmp/pk/tok --stacks unsloth \
         --out $J/train_unsloth.jsonl --budget-s ${TRAIN_BUDGET:-720};
       [ ${TF_BUDGET:-0} -gt 0 ] && python3 benchmarks/train_throughput.py all --dir /tmp/shapes \
         --tokenizer /tmp/pk/tok --stacks transformers --out $J/train_transformers.jsonl --budget-s ${TF_BUDGET:-0};
       echo finished > $J/gpu0.done" \
       < /dev/null > $J/gpu0.log 2>&1) &
    S=${EVAL_SAMPLE:+--sample $EVAL_SAMPLE}
    (CUDA_VISIBLE_DEVICES=1 setsid nohup bash -c "
       python3 benchmarks/eval_engines.py --model $SMOL --categories non_live $S --runs padded:64 continuous \
         --repeats ${EVAL_REPEATS:-3} --max-new-tokens 256 --work /tmp/eng --out $J/eval_engines_bf16.json;
       python3 benchmarks/eval_engines.py --model $SMOL --categories non_live --sample 16 --runs padded:64 \
         continuous --repeats 1 --max-new-tokens 256 --dtype fp32 --work /tmp/eng32 --out $J/eval_engines_fp32.json;
       echo finished > $J/gpu1.done" \
       < /dev/null > $J/gpu1.log 2>&1) &
    sleep 5; ls $J ;;
  ablate)  # GPU 0: why the trainer is slower (train_throughput.py ablation, 1B bf16 then 4-bit), the other shapes'
           # checkpoints prepared in between; GPU 1: padded batches of 64 / 256 / 1024 on BFCL non-live
    mkdir -p $J
    cd /tmp/b
    (CUDA_VISIBLE_DEVICES=0 setsid nohup bash -c "
       python3 benchmarks/train_throughput.py prepare --dir /tmp/shapes --tokenizer /tmp/pk/tok --shapes llama-3.2-1b;
       python3 benchmarks/train_throughput.py ablation --dir /tmp/shapes --shape llama-3.2-1b --precision bf16 \
         --out $J/ablation;
       python3 benchmarks/train_throughput.py prepare --dir /tmp/shapes --tokenizer /tmp/pk/tok;
       python3 benchmarks/train_throughput.py ablation --dir /tmp/shapes --shape llama-3.2-1b --precision 4bit \
         --out $J/ablation; echo finished > $J/gpu0.done" < /dev/null > $J/gpu0.log 2>&1) &
    (CUDA_VISIBLE_DEVICES=1 setsid nohup bash -c "
       python3 benchmarks/eval_engines.py --model $SMOL --categories non_live --sample ${EVAL_SAMPLE:-100} \
         --runs padded:64 padded:256 padded:1024 --repeats ${EVAL_REPEATS:-2} --max-new-tokens 256 --work /tmp/eng \
         --out $J/eval_batches_bf16.json; echo finished > $J/gpu1.done" < /dev/null > $J/gpu1.log 2>&1) &
    sleep 5; ls $J ;;
  trainall)  # GPU 0: the unsloth stack (raw Unsloth + the project's trainer) on the six shapes with this tree's
             # training code; GPU 1, once its evaluation queue is done: raw transformers on them
    cp "$REPO"/benchmarks/train_throughput.py /tmp/b/benchmarks/ && cp "$REPO"/fctune/train.py /tmp/b/fctune/
    rm -f $J/gpu0.done $J/gpu2.done
    cd /tmp/b
    (CUDA_VISIBLE_DEVICES=0 setsid nohup bash -c "
       python3 benchmarks/train_throughput.py all --dir /tmp/shapes --stacks unsloth \
         --out $J/train_unsloth.jsonl --budget-s ${TRAIN_BUDGET:-600};
       echo finished > $J/gpu0.done" < /dev/null > $J/gpu0.log 2>&1) &
    # the wait for GPU 1's evaluation queue lives inside the setsid'd job: a plain background loop dies with the call
    (CUDA_VISIBLE_DEVICES=1 setsid nohup bash -c "
       while [ ! -f $J/gpu1.done ]; do sleep 5; done;
       python3 benchmarks/train_throughput.py all --dir /tmp/shapes --stacks transformers \
         --out $J/train_transformers.jsonl --budget-s ${TF_BUDGET:-480};
       echo finished > $J/gpu2.done" < /dev/null > $J/gpu2.log 2>&1) &
    sleep 10; ps aux | grep -c "[t]rain_throughput" ;;
  s4)  # the h200_2026-11-30_s4 run: one deadline for both queues (BUDGET seconds from now):
        # GPU 0: the unsloth stack on Llama-3.2-1B and Phi-4-mini, bf16 and 4-bit, with three ablation variants
        #        interleaved (trainer with padded batches, trainer with the model's own loss, the raw loop on the
        #        trainer's padding-free batch), then Llama-3.1-8B 4-bit if time is left;
        # GPU 1: Llama-3.1-8B's checkpoint, then the evaluation engines (padded:64 against static:256, 3 repeats,
        #        static:64 once; then a 16-row-per-category sample in fp32, padded:64 against static:64), then
        #        Llama-3.1-8B bf16 with the same variants
    mkdir -p $J
    cd /tmp/b
    deadline=$(( $(date +%s) + ${BUDGET:-1200} ))
    X="--extra ${EXTRA:-trainer-padding_free trainer+model_loss raw+trainer_batch}"
    left="\$(( $deadline - \$(date +%s) ))"  # evaluated by each job's shell when its step starts
    (CUDA_VISIBLE_DEVICES=0 setsid nohup bash -c "
       python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer /tmp/pk/tok --stacks unsloth \
         --shapes ${SHAPES0:-llama-3.2-1b phi-4-mini} $X --out $J/train_unsloth.jsonl --budget-s $left;
       python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer /tmp/pk/tok --stacks unsloth \
         --shapes llama-3.1-8b --precisions 4bit $X --out $J/train_unsloth.jsonl --budget-s $left;
       echo finished > $J/gpu0.done" \
       < /dev/null > $J/gpu0.log 2>&1) &
    (CUDA_VISIBLE_DEVICES=1 setsid nohup bash -c "
       python3 benchmarks/train_throughput.py prepare --dir /tmp/shapes --tokenizer /tmp/pk/tok --shapes llama-3.1-8b;
       python3 benchmarks/eval_engines.py --model $SMOL --categories non_live --sample 100 \
         --runs ${EVAL_RUNS:-padded:64 static:256 static:64} --repeats ${EVAL_REPEATS:-3} --once static:64 \
         --max-new-tokens 256 \
         --work /tmp/eng --out $J/eval_static_bf16.json;
       python3 benchmarks/eval_engines.py --model $SMOL --categories non_live --sample 16 --runs padded:64 static:64 \
         --repeats 1 --max-new-tokens 256 --dtype fp32 --work /tmp/eng32 --out $J/eval_static_fp32.json;
       python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer /tmp/pk/tok --stacks unsloth \
         --shapes llama-3.1-8b --precisions bf16 $X --out $J/train_unsloth_8b.jsonl --budget-s $left;
       echo finished > $J/gpu1.done" \
       < /dev/null > $J/gpu1.log 2>&1) &
    sleep 20; ls $J; tail -n 2 $J/gpu0.log $J/gpu1.log ;;
  s5)  # the h200_2026-11-30_s5 run: one deadline for both queues (BUDGET seconds from now):
        # GPU 0: the unsloth stack on Llama-3.1-8B (4-bit, then bf16; the committed trainer: padded batches by
        #        --padding-free auto), then raw transformers + peft on Phi-4-mini and Llama-3.1-8B while time is left;
        # GPU 1: the evaluation engines on ALL of BFCL non-live (the 1,240 rows): padded:64 once, static:256
        #        twice (cold, then warm from torch's compile caches), static:128 once; then Llama-3.2-1B 4-bit
        #        (unsloth stack) again, with no evaluation compiling beside it
    mkdir -p $J
    cd /tmp/b
    deadline=$(( $(date +%s) + ${BUDGET:-960} ))
    left="\$(( $deadline - \$(date +%s) ))"  # evaluated by each job's shell when its step starts
    (CUDA_VISIBLE_DEVICES=0 setsid nohup bash -c "
       python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer /tmp/pk/tok --stacks unsloth \
         --shapes llama-3.1-8b --precisions 4bit bf16 --out $J/train_unsloth.jsonl --budget-s $left;
       python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer /tmp/pk/tok --stacks transformers \
         --shapes phi-4-mini llama-3.1-8b --precisions bf16 4bit --out $J/train_transformers.jsonl --budget-s $left;
       echo finished > $J/gpu0.done" < /dev/null > $J/gpu0.log 2>&1) &
    (CUDA_VISIBLE_DEVICES=1 setsid nohup bash -c "
       python3 benchmarks/eval_engines.py --model $SMOL --categories non_live --runs padded:64 static:256 static:128 \
         --repeats 2 --once padded:64 static:128 --max-new-tokens 256 --work /tmp/eng --out $J/eval_full_bf16.json;
       python3 benchmarks/train_throughput.py all --dir /tmp/shapes1 --tokenizer /tmp/pk/tok --stacks unsloth \
         --shapes llama-3.2-1b --precisions 4bit bf16 --out $J/train_unsloth_1b.jsonl --budget-s $left;
       echo finished > $J/gpu1.done" < /dev/null > $J/gpu1.log 2>&1) &
    sleep 20; ls $J; tail -n 2 $J/gpu0.log $J/gpu1.log ;;
  s7)  # the h200_2026-11-30_s6 run: one deadline (BUDGET seconds from now):
        # GPU 0: Llama-3.2-1B bf16 and 4-bit, the unsloth stack, timed per block (--sync block: no per-step
        #        synchronization, as in a real run), then per step again (--sync step);
        # GPU 1: ALL of BFCL non-live (1,240 rows): padded:64 (today's), static:256 with the categories pooled into
        #        one pass (--pool-tasks auto) and static:256:nopool (one pass a category, as measured in s5), two
        #        interleaved repeats; then a third repeat of both static runs (another folder)
    mkdir -p $J
    cd /tmp/b
    deadline=$(( $(date +%s) + ${BUDGET:-1000} ))
    left="\$(( $deadline - \$(date +%s) ))"
    (CUDA_VISIBLE_DEVICES=0 setsid nohup bash -c "
       for sync in block step; do
         python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer /tmp/pk/tok --stacks unsloth \
           --shapes llama-3.2-1b --precisions bf16 4bit --sync \$sync --out $J/train_1b_sync.jsonl --budget-s $left;
       done; echo finished > $J/gpu0.done" < /dev/null > $J/gpu0.log 2>&1) &
    (CUDA_VISIBLE_DEVICES=1 setsid nohup bash -c "
       python3 benchmarks/eval_engines.py --model $SMOL --categories non_live --runs padded:64 static:256 \
         static:256:nopool --repeats 2 --max-new-tokens 256 --work /tmp/eng7 --out $J/eval_pool.json;
       python3 benchmarks/eval_engines.py --model $SMOL --categories non_live --runs static:256 static:256:nopool \
         --repeats 1 --max-new-tokens 256 --work /tmp/eng7b --out $J/eval_pool_third.json;
       echo finished > $J/gpu1.done" < /dev/null > $J/gpu1.log 2>&1) &
    sleep 20; ls $J; tail -n 2 $J/gpu0.log $J/gpu1.log ;;
  quiet1b)  # a quiet host (one GPU, nothing else running): Llama-3.2-1B bf16, the unsloth stack timed in blocks, in
            # the foreground under BUDGET seconds, its records written straight into $OUT (what is there comes back
            # even when the call runs out of time)
    mkdir -p "$OUT"
    cd /tmp/b
    timeout "${BUDGET:-240}" python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer /tmp/pk/tok \
      --stacks unsloth --shapes llama-3.2-1b --precisions bf16 --sync block --out "$OUT/train_1b_quiet.jsonl" \
      > "$OUT/quiet.log" 2>&1 || true
    grep '^{' "$OUT/quiet.log" || tail -5 "$OUT/quiet.log"
    nvidia-smi --query-gpu=index,name --format=csv,noheader; nproc ;;
  lean)  # a quiet 1-GPU host, in the foreground, records straight into $OUT: SHAPES (default
         # llama-3.2-1b) x PRECISIONS (default bf16 4bit), the unsloth stack timed in blocks of STEPS (8) steps,
         # ROUNDS (3) rounds, with EXTRA variants
         # interleaved (unset: the trainer without prefetching and without autocast; EXTRA="" none); no
         # configuration starts after BUDGET seconds (which
         # count the shape's preparation on a fresh machine, ~10 s), and one still running then is stopped (its
         # process killed) and recorded with the rounds it completed ("partial"; before, nothing of it was kept)
    mkdir -p "$OUT" && cp -r "$REPO"/{fctune,benchmarks} /tmp/b/ && cd /tmp/b
    # shellcheck disable=SC2086  # the lists are meant to split
    python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer /tmp/pk/tok --stacks unsloth \
      --shapes ${SHAPES:-llama-3.2-1b} --precisions ${PRECISIONS:-bf16 4bit} --sync block \
      --extra ${EXTRA-trainer-prefetch trainer-autocast} --budget-s "${BUDGET:-480}" \
      --timed-steps "${STEPS:-8}" --rounds "${ROUNDS:-3}" \
      --out "$OUT/train_${TAG:-lean}.jsonl" > "$OUT/${TAG:-lean}.log" 2>&1 || true
    grep '^{' "$OUT/${TAG:-lean}.log" | cut -c1-260 || tail -5 "$OUT/${TAG:-lean}.log"
    nvidia-smi --query-gpu=index,name --format=csv,noheader; nproc ;;
  hostprofile)  # a step's host time on the GPU host (train_throughput.py hostprofile: cProfile, the synchronizations
                # and the GPU's idle time of the raw loop and trainer VARIANTS), files tarred into $OUT/profile.tgz
                # (a call brings back only a handful of files)
    mkdir -p "$OUT" && cp -r "$REPO"/{fctune,benchmarks} /tmp/b/ && cd /tmp/b
    # on a fresh machine the shape is not there yet (a call on a fresh machine failed on that)
    [ -d "/tmp/shapes/${SHAPE:-llama-3.2-1b}" ] || python3 benchmarks/train_throughput.py prepare --dir /tmp/shapes \
      --tokenizer /tmp/pk/tok --shapes "${SHAPE:-llama-3.2-1b}" > "$OUT/prepare.log" 2>&1
    rm -rf /tmp/profile  # a second call on the same machine starts clean
    # shellcheck disable=SC2086  # the list is meant to split
    timeout "${BUDGET:-300}" python3 benchmarks/train_throughput.py hostprofile --dir /tmp/shapes \
      --shape "${SHAPE:-llama-3.2-1b}" --precision "${PRECISION:-bf16}" --sync block --out /tmp/profile \
      ${VARIANTS:+--variants $VARIANTS} > /tmp/profile.log 2>&1 || true
    cp /tmp/profile.log "$OUT/hostprofile.log" && tar czf "$OUT/profile.tgz" -C /tmp profile
    grep '^{' "$OUT/hostprofile.log" | cut -c1-1500 || tail -20 "$OUT/hostprofile.log" ;;
  waitfile)  # until $2 exists (a path under the jobs folder) or $3 seconds pass
    end=$(( $(date +%s) + ${3:-300} ))
    while [ "$(date +%s)" -lt "$end" ] && ! ls "$J/$2" >/dev/null 2>&1; do sleep 5; done
    ls $J $J/ablation 2>/dev/null; tail -3 $J/gpu0.log; tail -3 $J/gpu1.log ;;
  restart0)  # GPU 0's queue again with this tree's training code (the first try's records kept aside)
    pkill -f "[t]rain_throughput.py all" || true; pkill -f "[t]rain_throughput.py one" || true; sleep 3
    cp "$REPO"/benchmarks/train_throughput.py /tmp/b/benchmarks/ && cp "$REPO"/fctune/train.py /tmp/b/fctune/
    rm -f $J/gpu0.done; [ -f $J/train_unsloth.jsonl ] && mv $J/train_unsloth.jsonl $J/train_unsloth_first.jsonl
    cd /tmp/b
    (CUDA_VISIBLE_DEVICES=0 setsid nohup bash -c "
       python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer /tmp/pk/tok --stacks unsloth \
         --out $J/train_unsloth.jsonl --budget-s ${TRAIN_BUDGET:-720};
       python3 benchmarks/train_throughput.py all --dir /tmp/shapes --tokenizer /tmp/pk/tok --stacks transformers \
         --out $J/train_transformers.jsonl --budget-s ${TF_BUDGET:-360};
       echo finished > $J/gpu0.done" \
       < /dev/null > $J/gpu0.log 2>&1) &
    sleep 20; ps aux | grep -c "[t]rain_throughput"; ls $J /tmp/shapes ;;
  wait)
    end=$(( $(date +%s) + ${2:-500} ))
    while [ "$(date +%s)" -lt "$end" ] && ! { [ -f $J/gpu0.done ] && [ -f $J/gpu1.done ] \
          && { [ ! -f $J/gpu2.log ] || [ -f $J/gpu2.done ]; }; }; do sleep 15; done
    ls $J; tail -4 $J/gpu0.log; tail -4 $J/gpu1.log; tail -4 $J/gpu2.log 2>/dev/null || true
    nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader ;;
  pack)  # one file: a call brings back only a handful of files from $OUT
    mkdir -p "$OUT"
    dirs=(sjobs); for d in eng eng_more eng32 eng7 eng7b; do [ -d /tmp/$d ] && dirs+=("$d"); done
    tar czf "$OUT/results.tgz" -C /tmp --exclude='*details*' "${dirs[@]}"
    ls -la "$OUT" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
