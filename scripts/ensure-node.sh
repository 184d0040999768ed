#!/usr/bin/env bash
# Makes sure node and npm are there for the tests that use them: the
# tokenizer and chat-template reference tests (runtime/tokenizer,
# runtime/chat) and the TypeScript check of web/mode.d.ts (e2e
# TestTypeScript). On Debian as root it installs Debian's nodejs and npm;
# anywhere else it only says what is missing and succeeds, and those tests
# then skip (or fail under CI=true, which must provide node).
#
# Then it installs the reference project both runtime/tokenizer and
# runtime/chat use (runtime/tokenizer/testdata/jsref), once, here: `go test`
# runs those two test binaries in parallel, and each would otherwise run
# `npm ci` in the same directory at the same time, one deleting the
# node_modules the other is filling. The tests still install it themselves
# when run on their own.
set -euo pipefail
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-node: installing nodejs and npm with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >&2
  else
    echo "ensure-node: no node or npm on PATH and cannot install them (needs root and apt-get); the tests that use node will skip" >&2
    exit 0
  fi
fi
jsref="$(cd "$(dirname "$0")/.." && pwd)/runtime/tokenizer/testdata/jsref"
# npm writes node_modules/.package-lock.json last, after a complete install;
# an older one than package-lock.json means the pins changed since.
if [ ! -f "$jsref/node_modules/.package-lock.json" ] || [ "$jsref/package-lock.json" -nt "$jsref/node_modules/.package-lock.json" ]; then
  echo "ensure-node: npm ci in $jsref" >&2
  (cd "$jsref" && npm ci --no-audit --no-fund >&2)
fi
