#!/usr/bin/env bash
# Prints the path of the default demo model (stories260K): from the shared
# reference data when present, else from a cache it downloads into from the
# public karpathy/tinyllamas repository on the Hugging Face hub.
set -euo pipefail
shared=${1:-../shared}
cache=${2:-$HOME/.cache/mode}
local="$shared/models/stories260K/stories260K.bin"
if [ -f "$local" ]; then
  echo "$local"
  exit 0
fi
dir="$cache/stories260K"
if [ -f "$dir/stories260K.bin" ] && [ -f "$dir/tok512.bin" ]; then
  echo "$dir/stories260K.bin"
  exit 0
fi
base=https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K
echo "default-model: $local not found; downloading stories260K.bin and tok512.bin from $base into $dir" >&2
mkdir -p "$dir"
for f in stories260K.bin tok512.bin; do
  if ! curl -fsSL --retry 2 -o "$dir/$f.part" "$base/$f"; then
    rm -f "$dir/$f.part"
    echo "default-model: no default model. Either put the reference data at $shared/models/stories260K/ (stories260K.bin, tok512.bin), or allow downloads from $base (it failed)." >&2
    exit 1
  fi
  mv "$dir/$f.part" "$dir/$f"
done
echo "$dir/stories260K.bin"
