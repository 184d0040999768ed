#!/usr/bin/env bash
# The WebGPU backend's numbers on whatever adapter wgpu-native finds (a
# real GPU, or Mesa lavapipe on a machine without one), in one command:
# the adapter (and whether matvec's lanes meet through subgroups, or why
# not), the copy kernel's bandwidth, each matrix-vector format's
# bandwidth and its ratio to the copy kernel's measured in the same run,
# the same for a Mixtral-shaped routed-expert layer's decode step,
# attention and router times, prefill GEMM GFLOP/s and its time against
# matmul's and matvec's over the same batch, and decode tokens/s for
# stories260K (when ../shared/models exists) and synthetic Mixtral- and
# OLMoE-shaped q4_0 models.
#
# Environment: BENCH_GPU_LAYERS caps the synthetic models' layers (default:
# the full shapes; on a software adapter try 2), BENCH_GPU_TIME is go
# test's -benchtime for the kernel benchmarks (default 5x: five rounds,
# whose medians the matvec, MoE and prefill lines report; with a
# duration a round of a large kernel runs once and one round is noise),
# BENCH_GPU_TOKENS the tokens each decode benchmark times (default 16);
# MODE_WEBGPU_SUBGROUPS=off measures without subgroups where the adapter
# has them (with them, the matvec lines add sg_speedup, the subgroup
# path's speed over the workgroup-memory one in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-go.sh
scripts/ensure-vulkan.sh
export PATH="$PATH:/usr/local/go/bin"
TIME=${BENCH_GPU_TIME:-5x}
TOKENS=${BENCH_GPU_TOKENS:-16}
export BENCH_GPU_LAYERS=${BENCH_GPU_LAYERS:-0}
OUT=$(mktemp /tmp/mode-bench-gpu.XXXXXX)
trap 'rm -f "$OUT" "$OUT.test"' EXIT
go test -c -o "$OUT.test" ./webgpu

# The machine's state: on a shared or software adapter the numbers move
# with the load.
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# bench runs the test binary's benchmarks matching $1 with -benchtime $2
# and prints each result as "name  value unit  value unit ...", dropping
# the binding's stderr chatter and the ns/op column.
bench() {
  (cd webgpu && "$OUT.test" -test.run '^$' -test.bench "$1" -test.benchtime "$2" -test.v 2>/dev/null) >"$OUT" || {
    cat "$OUT" >&2
    echo "bench-gpu: benchmarks $1 failed" >&2
    exit 1
  }
  awk '
    /adapter: / { sub(/^.*adapter: /, "adapter: "); if (!seen[$0]++) print; next }
    /^Benchmark/ && / ns\/op/ {
      name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
      line = sprintf("%-44s", name)
      for (i = 5; i < NF; i += 2) line = line sprintf("  %10.4g %s", $i, $(i + 1))
      print line
    }
    /^--- SKIP/ || /^    .*skip/ { print }
  ' "$OUT"
}

echo "== adapter (f16 arithmetic, subgroups) and copy kernel"
bench '^BenchmarkAdapter$' "$TIME"
echo "== matrix-vector products (decode): weight GB/s, ratio to the copy kernel"
bench '^BenchmarkMatVec$' "$TIME"
echo "== routed experts, Mixtral-shaped decode step (router + MoE): active expert GB/s, ratio to the copy kernel"
bench '^BenchmarkMoE$' "$TIME"
echo "== attention (8 heads, 2 KV heads, head 64) and router"
bench '^BenchmarkAttention$|^BenchmarkRoute$' "$TIME"
echo "== prefill, 1024x1024: gemm against matmul and against matvec over the batch (ratios below 1: gemm faster)"
bench '^BenchmarkPrefill$/^1024x1024/(q4_0|q8_0|f32)/T=(8|32|128)$' "$TIME"
echo "== decode (stories260K needs ../shared/models; synthetic layers: ${BENCH_GPU_LAYERS/#0/full})"
bench '^BenchmarkDecodeCost$/^stories260K$' "${TOKENS}x"
bench '^BenchmarkDecodeSynth$' "${TOKENS}x"
echo "== done $(date -u '+%H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
