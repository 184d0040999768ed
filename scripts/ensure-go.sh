#!/usr/bin/env bash
# Makes sure a Go toolchain that can build this module is on PATH. On a fresh
# Debian machine without Go, installs Debian's golang-go (as root); go.mod's
# `go` line then makes that toolchain fetch the exact release from the Go
# module proxy (GOTOOLCHAIN=auto).
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
if command -v go >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-go: installing golang-go with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go ca-certificates >&2
  exit 0
fi
echo "ensure-go: no Go toolchain on PATH; install Go 1.26 (https://go.dev/doc/install) or run as root on Debian" >&2
exit 1
