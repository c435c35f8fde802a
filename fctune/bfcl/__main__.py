"""``python -m fctune.bfcl run ...`` (evaluate a model) or ``python -m fctune.bfcl score ...`` (score saved outputs)."""

import argparse
import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("run", "score", "rescore"):
        from fctune.cli import usage_exit

        return usage_exit("usage: python -m fctune.bfcl {run,score,rescore} ...\n  run      evaluate a model on BFCL "
                          "categories (--help for options)\n  score    --category NAME --predictions PRED.jsonl --out "
                          "DIR\n  rescore  --results-dir DIR --label LABEL [--categories ...] [--sample N --seed S]: "
                          "summarize the saved predictions of a run", argv)
    if argv[0] == "rescore":
        ap = argparse.ArgumentParser(prog="python -m fctune.bfcl rescore")
        ap.add_argument("--results-dir", required=True)
        ap.add_argument("--label", required=True)
        ap.add_argument("--categories", nargs="*", default=["non_live"])
        ap.add_argument("--sample", type=int)
        ap.add_argument("--seed", type=int, default=0)
        ap.add_argument("--limit", type=int)
        a = ap.parse_args(argv[1:])
        from fctune.bfcl import rescore
        from fctune.cli import user_errors

        try:
            s = rescore(a.results_dir, a.label, a.categories, a.sample, a.seed, a.limit)
        except user_errors() as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"{a.label}: non-live AST {s['non_live_ast']} over {s['non_live_ast_categories']}; no predictions for "
              f"{s['categories_without_predictions'] or 'none'}")
        return 0
    if argv[0] == "run":
        from fctune.bfcl import BfclConfig, run_bfcl
        from fctune.cli import run_script

        return run_script(BfclConfig, run_bfcl, argv[1:], summary=lambda s: (
            f"{s['model']['label']} BFCL: non-live AST {s['non_live_ast']}, live AST {s['live_ast']}, "
            f"hallucination {s['hallucination']}; " + ", ".join(
                f"{c} {v['correct']}/{v['total']}" for c, v in s["categories"].items())))
    ap = argparse.ArgumentParser(prog="python -m fctune.bfcl score",
                                 description="Score saved outputs on a BFCL category.")
    ap.add_argument("--category", required=True)
    ap.add_argument("--predictions", required=True, help='JSONL of {"id", "output"} or {"id", "tool_calls"}')
    ap.add_argument("--out", required=True)
    ap.add_argument("--allow-partial", action="store_true",
                    help="score what matches even when ids are unknown, duplicated or missing (listed in the summary)")
    a = ap.parse_args(argv[1:])
    from fctune.bfcl import score_command
    from fctune.cli import user_errors

    try:
        s = score_command(a.category, a.predictions, a.out, a.allow_partial)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{a.category}: {s['correct']}/{s['total']} = {s['accuracy']} -> {a.out}")
    if s["missing_predictions"]:
        print(f"warning: {len(s['missing_predictions'])} rows have no prediction", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
