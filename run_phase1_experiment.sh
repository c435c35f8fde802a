#!/usr/bin/env bash
# One command from a fresh clone to a comparison report.
#   ./run_phase1_experiment.sh                      # offline defaults on this machine (CPU, ~15 min)
#   ./run_phase1_experiment.sh --profile full --bfcl   # the paper's run on a GPU machine with hub access
#   ./run_phase1_experiment.sh --help               # every flag (--phase, --models, --gpus, --docker,
#                                                   #  --from-step, --only-step, --dry-run, ...)
# The steps themselves live in fctune/pipeline.py; this wrapper only makes sure .venv exists first.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/python -m fctune.pipeline "$@"
