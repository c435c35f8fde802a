"""Two stacks of train_throughput.py runs compared round by round (issue 23).

    python benchmarks/paired_rounds.py --shape llama-3.2-1b --precision bf16 --out results/X.json FILE.jsonl ...

Why rounds and not runs: the GPU host's speed moves between and within runs (one stack's rounds span 10-20% on the
1B shape), but every round times each stack once, back to back, in a rotated order, so two stacks' same-numbered
rounds share the host's state. A real cost shows as one stack below the other in most rounds; noise splits them.
For each pair of stacks: each run's ratio of medians, every round's ratio, how many rounds fall below 1, their
median, and a one-sided sign test (the chance of that many or more below if neither stack were faster).
"""
import argparse
import json
import math
import statistics
from pathlib import Path

# (stack, against): the project trainer and TRL's own trainer (--step-metrics on Unsloth) against the like-for-like
# raw loop, raw without autocast against it (the noise floor: the same arithmetic on this shape), and the two
# trainers against each other
PAIRS = (("fctune", "raw+autocast"), ("fctune+step_metrics", "raw+autocast"), ("unsloth", "raw+autocast"),
         ("fctune", "fctune+step_metrics"))


def sign_test(below: int, n: int) -> float:
    """P(at least ``below`` of ``n`` rounds below 1) when each is below with probability 1/2."""
    return sum(math.comb(n, k) for k in range(below, n + 1)) / 2 ** n


def compare(runs: dict[str, dict[str, dict]], stack: str, against: str) -> dict:
    """``runs``: file -> stack -> record. Runs lacking either stack, or with a partial record, are left out."""
    per_run, rounds = {}, []
    for name, records in runs.items():
        a, b = records.get(stack), records.get(against)
        if not a or not b or a.get("partial") or b.get("partial"):
            continue
        ratios = [x / y for x, y in zip(a["tokens_per_s_rounds"], b["tokens_per_s_rounds"], strict=True)]
        per_run[name] = {"ratio": round(a["tokens_per_s"] / b["tokens_per_s"], 3),
                         "rounds": [round(r, 3) for r in ratios]}
        rounds += ratios
    below = sum(r < 1 for r in rounds)
    return {"stack": stack, "against": against, "runs": per_run,
            "median_of_runs": round(statistics.median(r["ratio"] for r in per_run.values()), 3) if per_run else None,
            "rounds_below": below, "rounds": len(rounds),
            "median_of_rounds": round(statistics.median(rounds), 3) if rounds else None,
            "sign_test_p": round(sign_test(below, len(rounds)), 4) if rounds else None}


def read_records(path: Path, shape: str, precision: str) -> dict[str, dict]:
    """stack -> record for one shape and precision (records of failed configurations, without rounds, left out); a
    line that is not a train_throughput.py record stops with its file and line."""
    records = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}:{n}: not a JSON record ({e.msg})") from None
        missing = [k for k in ("shape", "stack", "precision") if not isinstance(r, dict) or k not in r]
        if missing:
            raise SystemExit(f"{path}:{n}: no {missing[0]!r} field: not a train_throughput.py record")
        if r["shape"] == shape and r["precision"] == precision and "tokens_per_s_rounds" in r:
            records[r["stack"]] = r
    return records


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="train_throughput.py records (jsonl)")
    ap.add_argument("--shape", required=True)
    ap.add_argument("--precision", required=True)
    ap.add_argument("--out", type=Path, help="write the comparisons here as JSON")
    args = ap.parse_args()
    for f in args.files:
        if not f.is_file():
            ap.error(f"{f}: no such file")
    runs = {str(f): read_records(f, args.shape, args.precision) for f in args.files}
    result = {"shape": args.shape, "precision": args.precision, "files": [str(f) for f in args.files],
              "comparisons": [compare(runs, s, a) for s, a in PAIRS]}
    for c in result["comparisons"]:
        print(f"{c['stack']:>20} / {c['against']:<20} runs {[r['ratio'] for r in c['runs'].values()]} "
              f"(median {c['median_of_runs']}); rounds below {c['rounds_below']} of {c['rounds']}, "
              f"median {c['median_of_rounds']}, sign test p {c['sign_test_p']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
