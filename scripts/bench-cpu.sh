#!/usr/bin/env bash
# mode against llama.cpp on the CPU, same weights, same run: for each
# shape and GGML type, writes a synthetic GGUF, imports it into a pack
# (keeping its blocks), and runs `mode bench --peer llama.cpp`.
#
# Shapes: Mixtral (d=512, 8 layers, 8 experts x 1408, top-2, vocab 4096)
# in f32, q8_0, q4_0 and q4_k; OLMoE (d=1024, 16 layers, 64 experts x 512,
# top-8, full-projection q/k norm, vocab 8192) in q8_0, q4_0 and q4_k only
# — its f32 file is 6.8 GB, which with the pack beside it and two runtimes
# holding it takes minutes per run on a 2-core machine (BENCH_OLMOE_TYPES
# adds it). q4_k writes Q4_K where a matrix's rows are whole 256-element
# super-blocks and Q4_0 elsewhere (Mixtral's down projections, 1408
# wide), both read as they are by mode and llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
TMP=${BENCH_TMP:-$(mktemp -d /tmp/mode-bench-cpu.XXXXXX)}
THREADS=${BENCH_THREADS:-2}
RUNS=${BENCH_RUNS:-3}
PROMPTS=${BENCH_PROMPTS:-32,128}
DECODE=${BENCH_DECODE:-64}
MIXTRAL_TYPES=${BENCH_MIXTRAL_TYPES:-f32 q8_0 q4_0 q4_k}
OLMOE_TYPES=${BENCH_OLMOE_TYPES:-q8_0 q4_0 q4_k}
# BENCH_EXACT=1 adds the exact path (the kernels before the fast one) as a third side.
EXACT=${BENCH_EXACT:+--exact}
scripts/ensure-llamacpp.sh
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
declare -A shape=(
  [mixtral]="--arch mixtral --dim 512 --layers 8 --heads 8 --kv-heads 2 --ffn 1408 --experts 8 --top-k 2 --vocab 4096 --max-seq 1024"
  [olmoe]="--arch olmoe --dim 1024 --layers 16 --heads 16 --kv-heads 16 --ffn 512 --experts 64 --top-k 8 --vocab 8192 --max-seq 1024"
)
out=$TMP/out.txt
for arch in mixtral olmoe; do
  types=$MIXTRAL_TYPES
  [ $arch = olmoe ] && types=$OLMOE_TYPES
  for typ in $types; do
    echo "== $arch $typ"
    g=$TMP/$arch-$typ.gguf p=$TMP/$arch-$typ
    $BIN/modelpack synth ${shape[$arch]} --gguf "$g" --gguf-type "$typ" >/dev/null
    $BIN/modelpack import "$g" -o "$p" --force >/dev/null 2>&1
    $BIN/mode bench -m "$p" --gguf "$g" --peer llama.cpp --peer-script scripts/llamacpp/bench.mjs \
      --threads "$THREADS" --prompt-tokens "$PROMPTS" --decode-tokens "$DECODE" --runs "$RUNS" $EXACT
    rm -rf "$g" "$p"
    echo
  done
done | tee "$out"

# This host's bandwidth is bimodal (30–62 GB/s at two threads, a state
# that can last through a whole pack's runs), so each pack's share of the
# limit is also given against the best probe of the whole run.
awk -v threads="$THREADS" '
  /^== / { name = $2 " " $3 }
  / MiB read per decoded token/ {
    for (i = 1; i <= NF; i++) if ($(i+1) == "MiB" && $(i+2) == "read") mib[name] = $i
  }
  /^memory read bandwidth/ {
    for (i = 1; i <= NF; i++) if ($i == "GB/s" && $(i+1) == "(" threads) { bw[name] = $(i-1); if ($(i-1) + 0 > best) best = $(i-1) + 0 }
  }
  $2 == "mode" && $1 ~ /^[0-9]+$/ { n++; row[n] = name; prompt[n] = $1; tok[n] = $4 }
  END {
    if (!best) exit
    printf "== decode against the run'"'"'s best %s-thread probe, %.2f GB/s (each pack'"'"'s own best in brackets)\n", threads, best
    printf "%-14s %6s %12s %10s %18s\n", "pack", "prompt", "decode t/s", "GB/s", "% of the limit"
    for (i = 1; i <= n; i++) {
      gbs = tok[i] * mib[row[i]] * 1048576 / 1e9
      printf "%-14s %6s %12s %10.2f %8.1f%% (%.1f%%)\n", row[i], prompt[i], tok[i], gbs, 100 * gbs / best, 100 * gbs / bw[row[i]]
    }
  }' "$out"
