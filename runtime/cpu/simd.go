package cpu

import (
	"github.com/moderuntime/mode/internal/wasmsimd"
	"github.com/moderuntime/mode/runtime/vec"
)

// The fast path's float kernels: in a wasm build whose host loaded
// internal/wasmsimd's SIMD128 kernels, those (with the bits of vec's Go
// kernels, which that build would run otherwise); elsewhere vec's.

func simd() bool {
	ok, _ := wasmsimd.Ready()
	return ok
}

func scores(dst, q, k []float32, stride int) {
	if simd() {
		wasmsimd.Scores(dst, q, k, stride)
		return
	}
	vec.Scores(dst, q, k, stride)
}

func weightedSum(o, a, v []float32, stride int) {
	if simd() {
		wasmsimd.WeightedSum(o, a, v, stride)
		return
	}
	vec.WeightedSum(o, a, v, stride)
}
