#!/usr/bin/env bash
# Quality per FLOP of MoDE students of stories260K: distils a grid of
# students (experts, top-k, shared size, balanced or natural widths, the
# "deepen the highest-error experts" depth rule), each with the same short
# fine-tuning, and writes docs-style results with `modelpack pareto`: a
# markdown table and an SVG plot of held-out top-1 agreement, KL and
# perplexity against FLOPs per token (teacher at 1.0, 100%).
#
# Every point samples 400 sequences of 128 tokens from the teacher (seed 1)
# and holds out half: 200 sequences, 25,400 held-out positions. Training is
# SWEEP_STEPS steps (default 80) of batch 8 on fresh teacher samples — far
# shorter than docs/distill-stories260K.md's 2400 steps, so that the grid
# fits in under an hour with nice on a loaded 2-core machine (a point takes
# ~5 minutes at load 10, 40-50 at load 50-70; SWEEP_JOBS run at once).
# docs/distill-stories260K.md has the demo's own point (top-4 of 8 with a
# 32-neuron shared expert); the grid here is the cheaper end.
#
# Usage: scripts/distill-sweep.sh OUTDIR   (SWEEP_JOBS parallel points, default 4;
#        SWEEP_POINTS="name ..." to run a subset; MODEL, BIN to override)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/distill-sweep.sh OUTDIR}
BIN=${BIN:-bin}
MODEL=${MODEL:-$(scripts/default-model.sh "${MODE_SHARED:-../shared}" "${MODE_CACHE:-$HOME/.cache/mode}")}
JOBS=${SWEEP_JOBS:-4}
STEPS=${SWEEP_STEPS:-80}
mkdir -p "$OUT"
[ -x "$BIN/modelpack" ] || go build -o "$BIN/modelpack" ./cmd/modelpack
declare -A grid=(
  [e4k1]="--experts 4 --top-k 1"
  [e8k1]="--experts 8 --top-k 1"
  [e8k1-bal]="--experts 8 --top-k 1 --balanced"
  [e8k1-deep]="--experts 8 --top-k 1 --deepen 2 --deepen-width 8"
  [e8k2]="--experts 8 --top-k 2"
  [e8k2-bal]="--experts 8 --top-k 2 --balanced"
  [e8k2-deep]="--experts 8 --top-k 2 --deepen 2 --deepen-width 8"
  [e8k4]="--experts 8 --top-k 4"
  [e16k2]="--experts 16 --top-k 2"
  [e16k4]="--experts 16 --top-k 4"
  [e16k4-bal]="--experts 16 --top-k 4 --balanced"
  [e32k8-bal]="--experts 32 --top-k 8 --balanced"
)
POINTS=${SWEEP_POINTS:-$(printf '%s\n' "${!grid[@]}" | sort | tr '\n' ' ')}
common="--self-generate 400 --holdout 0.5 --seq-len 128 --seed 1 --refit 1 --sequential
  --train-steps $STEPS --lr 3e-3 --cosine --lm-weight 0 --argmax-weight 0.3 --router-lr 0.01 --train-all
  --fresh $((STEPS * 8)) --force"
run() {
  local name=$1
  echo "modelpack distill $MODEL -o $OUT/$name ${grid[$name]} $(echo $common)" > "$OUT/$name.cmd"
  nice -n 15 "$BIN/modelpack" distill "$MODEL" -o "$OUT/$name" ${grid[$name]} $common \
    --report "$OUT/$name.json" > "$OUT/$name.out" 2> "$OUT/$name.err" || { echo "$name failed: see $OUT/$name.err" >&2; return 1; }
  rm -rf "$OUT/$name" # the pack itself is not needed for the table
  echo "$name done: $(grep -h 'held-out: top-1' "$OUT/$name.out")"
}
export -f run
export OUT BIN MODEL common
for name in $POINTS; do
  [ -n "${grid[$name]:-}" ] || { echo "unknown point $name" >&2; exit 2; }
  echo "$name ${grid[$name]}"
done | xargs -P "$JOBS" -L 1 bash -c 'declare -A grid; grid[$0]="${*}"; run "$0"'
"$BIN/modelpack" pareto -md "$OUT/pareto.md" -svg "$OUT/pareto.svg" "$OUT"/*.json
echo "wrote $OUT/pareto.md and $OUT/pareto.svg"
