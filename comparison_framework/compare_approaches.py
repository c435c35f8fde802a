#!/usr/bin/env python3
"""Compare every evaluated model with the LLM baseline: capability tables with confidence intervals, % of the
LLM, decision gates (comparison_framework/gates.yaml), the phase verdict, failure analysis and cost.

Writes comparison_framework/reports/phase<N>_comparison.json, phase<N>_report.html and reports/csv/*.csv.
"""

from fctune.cli import run_script
from fctune.compare import CompareConfig, compare


def main(argv=None) -> int:
    return run_script(CompareConfig, compare, argv, summary=lambda r: (
        f"phase {r['phase']} verdict: {r['decision']['verdict']} ({r['decision'].get('reason', '')})\n"
        f"models: {', '.join(r['models'])}; missing: {len(r['missing_models'])} models, "
        f"{len(r['missing_suites'])} model/suite results\nreport: {r['html']}"))


if __name__ == "__main__":
    raise SystemExit(main())
