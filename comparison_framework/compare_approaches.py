#!/usr/bin/env python3
"""Compare every evaluated model with the LLM baseline: capability tables with confidence intervals, % of the
LLM, decision gates (comparison_framework/gates.yaml), the phase verdict, failure analysis and cost.

Writes comparison_framework/reports/phase<N>_comparison.json, phase<N>_report.html and reports/csv/*.csv.
"""

from fctune.compare import main

if __name__ == "__main__":
    raise SystemExit(main())
