"""RESULTS.md's verdict tables from a comparison JSON (what compare_approaches.py writes).

    python experiments/verdict_table.py results/phase2/reports/phase2_comparison.json
"""

from __future__ import annotations

import json
import sys


def pct(x) -> str:
    return "—" if x is None else f"{x:.0%}"


def main(path: str) -> None:
    r = json.loads(open(path).read())
    d = r["decision"]
    print(f"Verdict: **{d['verdict']}** — {d['reason']} (aggregate {d['aggregate']}, bar {d['bar']:.0%}, "
          f"LLM {r['llm_baseline']})\n")
    if d.get("lenient"):
        print(f"Lenient reading: {d['lenient']['verdict']} — {d['lenient']['reason']}\n")
    verdicts = {k: v for k, v in r["verdicts"].items() if v["role"] == "finetuned"}
    caps = list(next(iter(verdicts.values()))["capabilities"])
    print("| model | " + " | ".join(caps) + " | vetoes | verdict |")
    print("|---|" + "---|" * len(caps) + "---|---|")
    for label, j in verdicts.items():
        cells = []
        for c in caps:
            v = j["capabilities"][c]
            if v.get("ratio") is None:
                cells.append(f"— ({'LLM 0' if v.get('n') else 'not run'})")
                continue
            ci = v.get("ci") or [None, None]
            cells.append(f"{v['slm']:.2f} vs {v['llm']:.2f}: {pct(v['ratio'])} [{pct(ci[0])}, {pct(ci[1])}] "
                         f"{v['status']}")
        vetoes = "; ".join(f"{n.split(' (')[0]} {pct(v['value'])}{' VETO' if v['status'] == 'veto' else ''}"
                           for n, v in j["vetoes"].items())
        print(f"| {label} | " + " | ".join(cells) + f" | {vetoes} | {j['status']} |")
    print()
    for q in r["questions"]:
        print(f"* {q['question']} {q['answer']}")


if __name__ == "__main__":
    main(sys.argv[1])
