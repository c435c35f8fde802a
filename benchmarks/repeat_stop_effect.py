#!/usr/bin/env python3
"""What ``--stop-repeats`` changes, row by row: the same evaluations run without it (OFF folders) and with it (ON
folders), compared answer by answer and verdict by verdict, beside the time each took.

For every ``LABEL_SUITE_predictions.jsonl`` found in both, with its ``_details.jsonl`` (the scored rows) and its
summary ``LABEL_SUITE.json``:

* answers: identical, stopped early ("repeat") and the start of the answer without the stop, or different in
  another way (any of those is a finding: greedy decoding of the same batches should give the same tokens up to
  the stop);
* verdicts of the rows: exact match (strict and lenient), abstention, failure reason, field F1 — the same or not,
  each difference listed with both outputs' ends;
* the suite's wall time and generated tokens, off and on.

    python benchmarks/repeat_stop_effect.py --off OFF/paper_approach/eval_results OFF/fledgling/eval_results \
        --on paper_approach/eval_results fledgling/eval_results --out benchmarks/results/cpu_main_job/repeat_stop.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VERDICT_FIELDS = ("exact_match", "args_exact_match_lenient", "abstention_correct", "schema_valid", "failure_reason",
                  "field_f1", "field_f1_lenient")


def _rows(path: Path) -> dict:
    from fctune.io import read_jsonl

    return {r["id"]: r for r in read_jsonl(path)} if path.exists() else {}


def compare_folder(off: Path, on: Path) -> list[dict]:
    """One record per predictions file present in both folders."""
    out = []
    for pred_on in sorted(on.glob("*_predictions.jsonl")):
        pred_off = off / pred_on.name
        if not pred_off.exists():
            continue
        stem = pred_on.name.removesuffix("_predictions.jsonl")
        a, b = _rows(pred_off), _rows(pred_on)
        da, db = _rows(off / f"{stem}_details.jsonl"), _rows(on / f"{stem}_details.jsonl")
        rec = {"run": stem, "rows": len(b), "answers_identical": 0, "stopped_early": 0, "stopped_not_a_prefix": [],
               "answers_different": [], "verdict_changes": [], "tokens_saved": 0}
        for rid, pb in b.items():
            pa = a.get(rid)
            if pa is None:
                continue
            if (pa.get("output"), pa.get("finish_reason")) == (pb.get("output"), pb.get("finish_reason")):
                rec["answers_identical"] += 1
            elif pb.get("finish_reason") == "repeat":
                rec["stopped_early"] += 1
                rec["tokens_saved"] += (pa.get("completion_tokens") or 0) - (pb.get("completion_tokens") or 0)
                if not (pa.get("output") or "").startswith(pb.get("output") or ""):
                    rec["stopped_not_a_prefix"].append(rid)
            else:
                rec["answers_different"].append(rid)
            va, vb = da.get(rid, {}), db.get(rid, {})
            changed = {f: [va.get(f), vb.get(f)] for f in VERDICT_FIELDS if va.get(f) != vb.get(f)}
            if changed:
                rec["verdict_changes"].append({
                    "id": rid, "changed": changed, "finish_reason": [pa.get("finish_reason"), pb.get("finish_reason")],
                    "output_end_off": (pa.get("output") or "")[-160:],
                    "output_end_on": (pb.get("output") or "")[-160:]})
        sa, sb = [json.loads(p.read_text()) if p.exists() else {} for p in (off / f"{stem}.json", on / f"{stem}.json")]
        rec["exact_match_rate"] = [s.get("exact_match_rate") for s in (sa, sb)]
        rec["wall_s"] = [(s.get("throughput") or {}).get("wall_s") for s in (sa, sb)]
        rec["generated_tokens"] = [sum(r.get("completion_tokens") or 0 for r in a.values()),
                                   sum(r.get("completion_tokens") or 0 for r in b.values())]
        out.append(rec)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--off", nargs="+", required=True, help="evaluation folders of the run without --stop-repeats")
    ap.add_argument("--on", nargs="+", required=True, help="the same folders of the run with it, in the same order")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--note", default="", help="what the two runs were (recorded)")
    args = ap.parse_args()
    if len(args.off) != len(args.on):
        ap.error("--off and --on name the same folders of two runs: as many of each")
    for d in [*args.off, *args.on]:
        if not Path(d).is_dir():
            ap.error(f"{d}: no such folder")
    runs = [r for off, on in zip(args.off, args.on, strict=True) for r in compare_folder(Path(off), Path(on))]
    if not runs:
        ap.error("no predictions file is in both an --off and its --on folder")
    total = {k: sum(r[k] for r in runs) for k in ("rows", "answers_identical", "stopped_early", "tokens_saved")}
    total.update({k: sum(len(r[k]) for r in runs) for k in ("stopped_not_a_prefix", "answers_different",
                                                            "verdict_changes")})
    total["exact_match_changes"] = sum(1 for r in runs for c in r["verdict_changes"] if "exact_match" in c["changed"])
    result = {"note": args.note, "off": args.off, "on": args.on, "total": total, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(total))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
