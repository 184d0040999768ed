#!/usr/bin/env bash
# Makes sure headless Chromium is there for the browser tests (e2e/). On
# Debian as root it installs Debian's chromium; anywhere else it only says
# what is missing and succeeds, and the browser tests then skip (or fail
# under CI=true, which must provide the browser).
set -euo pipefail
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then
    exit 0
  fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: installing chromium with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
  exit 0
fi
echo "ensure-chromium: no chromium on PATH and cannot install it (needs root and apt-get); the browser tests in e2e/ will skip" >&2
