#!/usr/bin/env bash
# Checks the GPU and the environment, then runs the given command (training by default).
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "entrypoint: no NVIDIA GPU is visible. Start the container with GPU access (compose 'deploy.resources'" \
       "device reservations, or 'docker run --gpus all'); see docker/unsloth-paper/README.md" >&2
  exit 1
fi
echo "entrypoint: GPUs visible to this container:" >&2
nvidia-smi -L >&2

if [ -z "${HF_TOKEN:-}" ]; then
  echo "entrypoint: HF_TOKEN is not set: gated models (Llama-3.1) and datasets cannot be downloaded;" \
       "the offline data and SmolLM2 still work" >&2
fi
if [ -z "${AZURE_OPENAI_ENDPOINT:-}" ] && [ -z "${OPENAI_BASE_URL:-}" ] && [ -z "${OPENAI_API_KEY:-}" ]; then
  echo "entrypoint: no LLM endpoint in the environment (.env): evaluation of the LLM baseline will use" \
       "the local llama.cpp server" >&2
fi
exec "$@"
