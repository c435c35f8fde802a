#!/usr/bin/env bash
# The project's test command: sets up .venv when needed, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh --test
# One worker a core, at most 4 (tests/conftest.py gives each its share of the cores): the suite's longest tests
# train and generate with real models, and workers side by side finish them sooner than one process does. -n 0
# runs them in one process.
exec .venv/bin/python -m pytest -n auto --maxprocesses 4 --dist worksteal "$@"
