set -e
A=/tmp/s4/fledgling/adapters/fledgling-SmolLM2-135M-Instruct.Q4_1
S=/tmp/s4/fledgling/test_splits/fledgling_toolcall_test.jsonl
for eng in padded continuous; do
  for thr in 1; do
    /usr/bin/time -f "%e s wall" env OMP_NUM_THREADS=$thr /work/main/.venv/bin/fctune eval --backend local --model smollm2 --adapter $A \
      --split-files $S --limit 8 --batch-size 8 --engine $eng --label ft-$eng-$thr --results-dir /tmp/cpueng/$eng-$thr --resume false > /tmp/cpueng/$eng-$thr.log 2>&1
    tail -1 /tmp/cpueng/$eng-$thr.log
  done
done
