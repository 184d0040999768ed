#!/usr/bin/env bash
# Installs what `mode bench --peer llama.cpp` needs: Node.js (apt, when
# missing and run as root) and scripts/llamacpp's pinned node-llama-cpp,
# whose npm packages carry prebuilt llama.cpp binaries (nothing compiles).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-llamacpp: node and npm are missing; install Node.js 20 or run this as root" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d scripts/llamacpp/node_modules/node-llama-cpp ]; then
  (cd scripts/llamacpp && npm ci --no-audit --no-fund --loglevel=error)
fi
