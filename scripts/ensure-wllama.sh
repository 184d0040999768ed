#!/usr/bin/env bash
# Installs what `make bench-web` needs for its wllama side: Node.js's npm
# (apt, when missing and run as root) and scripts/wllama's pinned
# @wllama/wllama, whose npm package carries llama.cpp prebuilt to
# WebAssembly (nothing compiles). e2e's wllama tests skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-wllama: npm is missing; install Node.js 20 or run this as root" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -f scripts/wllama/node_modules/@wllama/wllama/package.json ]; then
  (cd scripts/wllama && npm ci --no-audit --no-fund --loglevel=error)
fi
