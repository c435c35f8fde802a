"""The three-path agreement table of BENCHMARKS.md from the summaries experiments/three_paths.sh writes.

    python experiments/agreement_table.py results/three_paths qwen0.5b-local qwen0.5b-llamacpp qwen0.5b-openai

Per category: accuracy in the strict and the lenient reading on each path, the largest difference between paths in
points, and how many rows got a different verdict (lenient) on some path, with the first few ids.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str, *labels: str) -> None:
    runs = {lb: json.loads((Path(folder) / f"{lb}_bfcl.json").read_text()) for lb in labels}
    rows = {lb: {json.loads(x)["id"]: json.loads(x) for x in (Path(folder) / f"{lb}_bfcl_details.jsonl").open()}
            for lb in labels}
    cats = list(next(iter(runs.values()))["categories"])
    print("| category | rows | " + " | ".join(f"{lb} strict / lenient" for lb in labels)
          + " | largest gap, lenient (points) | rows judged differently |")
    print("|---|---|" + "---|" * len(labels) + "---|---|")
    for cat in cats:
        accs = [runs[lb]["categories"][cat] for lb in labels]
        lenient = [a["accuracy_lenient"] for a in accs]
        ids = [i for i, r in rows[labels[0]].items() if r["category"] == cat]
        differ = [i for i in ids if len({rows[lb][i].get("valid_lenient") for lb in labels if i in rows[lb]}) > 1]
        gap = (max(lenient) - min(lenient)) * 100
        cells = " | ".join(f"{a['accuracy']:.3f} / {a['accuracy_lenient']:.3f}" for a in accs)
        print(f"| {cat} | {accs[0]['total']} | {cells} | {gap:.1f} | {len(differ)} {', '.join(differ[:4])} |")
    for lb in labels:
        m = runs[lb]["model"]
        print(f"\n{lb}: backend {m['backend']}, tools_mode {m.get('tools_mode', '-')}, call format "
              f"{m.get('call_format')}, prompt {m.get('prompt')}, non-live AST strict {runs[lb]['non_live_ast']} / "
              f"lenient {runs[lb]['non_live_ast_lenient']}, wall {runs[lb]['wall_s']} s")


if __name__ == "__main__":
    main(*sys.argv[1:])
