#!/usr/bin/env bash
# The project's test command: sets up .venv when needed, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh --test
# One worker a core, at most 4 (tests/conftest.py gives each its share of the cores): 485 tests in 573-582 s against
# 684 s in one process on the 2-core AMD EPYC (BENCHMARKS.md). -n 0 runs them in one process.
exec .venv/bin/python -m pytest -n auto --maxprocesses 4 --dist worksteal "$@"
