"""Two BFCL runs of the same rows side by side, paired: the table RESULTS.md gives for the tag repair and the
fine-tunes against their base.

    python experiments/paired_bfcl.py results/tag_repair/h100:qwen-base results/tag_repair/h100:qwen-base-tokens-none

Per category and over non-live AST (the mean of the four call categories, as the summary computes it): each run's
strict and lenient accuracy; the paired difference of A strict against B's best reading there (the higher of its
strict and lenient: what a fine-tune must not fall below), and of A lenient against B lenient (the same reading on
both sides: what a repair must not lose); paired bootstrap 95% intervals in points (fctune.decision).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fctune.decision import paired_difference

AST = ("simple_python", "multiple", "parallel", "parallel_multiple")


def load(spec: str) -> tuple[str, dict, dict]:
    folder, label = spec.rsplit(":", 1)
    summary = json.loads((Path(folder) / f"{label}_bfcl.json").read_text())
    rows = [json.loads(x) for x in (Path(folder) / f"{label}_bfcl_details.jsonl").open()]
    return label, summary, {r["id"]: r for r in rows}


def scores(rows: dict, cats, key: str) -> dict:
    return {i: 1.0 if r.get(key) else 0.0 for i, r in rows.items() if r["category"] in cats}


def mean(s: dict) -> float:
    return sum(s.values()) / len(s)


def _pts(d: dict) -> str:
    return f"{d['difference'] * 100:+.1f} [{d['ci'][0] * 100:+.1f}, {d['ci'][1] * 100:+.1f}]"


def main(a_spec: str, b_spec: str) -> None:
    (la, sa, ra), (lb, sb, rb) = load(a_spec), load(b_spec)
    print(f"| category | rows | {la} strict / lenient | {lb} strict / lenient | {la} strict - {lb} best "
          f"(points, 95%) | {la} lenient - {lb} lenient |")
    print("|---|---|---|---|---|---|")
    pooled = "non-live AST (mean of the 4 call categories; differences over their rows pooled)"
    for name, cats in [*((c, (c,)) for c in sa["categories"]), (pooled, AST)]:
        a_s, a_l = scores(ra, cats, "valid"), scores(ra, cats, "valid_lenient")
        b_s, b_l = scores(rb, cats, "valid"), scores(rb, cats, "valid_lenient")
        if not a_s or not b_s:
            continue
        best = max((b_s, b_l), key=lambda s: sum(s.values()))
        if len(cats) > 1:  # BFCL's non-live AST is the mean of the categories' accuracies, not of their rows
            per = [(scores(ra, (c,), "valid"), scores(ra, (c,), "valid_lenient"), scores(rb, (c,), "valid"),
                    scores(rb, (c,), "valid_lenient")) for c in cats]
            cells = [sum(mean(p[k]) for p in per) / len(per) for k in range(4)]
        else:
            cells = [mean(a_s), mean(a_l), mean(b_s), mean(b_l)]
        print(f"| {name} | {len(a_s)} | {cells[0]:.3f} / {cells[1]:.3f} | {cells[2]:.3f} / {cells[3]:.3f} | "
              f"{_pts(paired_difference(a_s, best))} | {_pts(paired_difference(a_l, b_l))} |")
    for label, s in ((la, sa), (lb, sb)):
        m = s["model"]
        print(f"\n{label}: {m.get('backend')} {m.get('model_description') or m.get('model')}, "
              f"engine {m.get('engine')}, batch {m.get('batch_size')}, {m.get('dtype')} on {m.get('device')}, tags: "
              f"{(m.get('tool_tokens') or {}).get('repair', 'none')}, wall {s.get('wall_s')} s")


if __name__ == "__main__":
    main(*sys.argv[1:])
