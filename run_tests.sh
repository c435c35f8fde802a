#!/usr/bin/env bash
# The project's test command: sets up .venv when needed, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh --test
exec .venv/bin/python -m pytest "$@"
