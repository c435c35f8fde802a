#!/usr/bin/env bash
# Checks the GPU and the environment, then runs the Fledgling pipeline with any extra arguments.
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "fledgling: no NVIDIA GPU is visible; start the container with GPU access" \
       "(see docker/fledgling/README.md). Set FLEDGLING_ALLOW_CPU=1 to run on the CPU anyway." >&2
  [ "${FLEDGLING_ALLOW_CPU:-0}" = 1 ] || exit 1
else
  nvidia-smi -L >&2
fi
if [ -n "${AZURE_OPENAI_ENDPOINT:-}" ]; then
  for v in AZURE_OPENAI_API_KEY AZURE_OPENAI_DEPLOYMENT; do
    if [ -z "${!v:-}" ]; then
      echo "fledgling: AZURE_OPENAI_ENDPOINT is set but $v is not (see .env.example)" >&2
      exit 1
    fi
  done
elif [ -z "${OPENAI_BASE_URL:-}" ] && [ -z "${OPENAI_API_KEY:-}" ]; then
  echo "fledgling: no Azure/OpenAI endpoint set: the LLM baseline is the local llama.cpp server" >&2
fi
[ -n "${HF_TOKEN:-}" ] || echo "fledgling: HF_TOKEN is not set: the gated xLAM dataset falls back to the offline source" >&2
[ -n "${LANGFUSE_PUBLIC_KEY:-}" ] && echo "fledgling: Langfuse tracing is on (${LANGFUSE_HOST:-})" >&2

exec python3 fledgling/run_pipeline.py "$@"
