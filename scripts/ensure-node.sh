#!/usr/bin/env bash
# Makes sure node and npm are there for the tests that use them: the
# tokenizer and chat-template reference tests (runtime/tokenizer,
# runtime/chat) and the TypeScript check of web/mode.d.ts (e2e
# TestTypeScript). On Debian as root it installs Debian's nodejs and npm;
# anywhere else it only says what is missing and succeeds, and those tests
# then skip (or fail under CI=true, which must provide node).
set -euo pipefail
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-node: installing nodejs and npm with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >&2
  exit 0
fi
echo "ensure-node: no node or npm on PATH and cannot install them (needs root and apt-get); the tests that use node will skip" >&2
