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

// expShift is vec.ExpShift, its exponentials from KernelExp where loaded
// (the sum still added in order here).
func expShift(dst, x []float32, m float32) float32 {
	if !simd() {
		return vec.ExpShift(dst, x, m)
	}
	dst = dst[:len(x)]
	if n := wasmsimd.ExpShiftN(dst, x, m); n < len(x) {
		vec.ExpShift(dst[n:], x[n:], m)
	}
	var sum float32
	for _, e := range dst {
		sum += e
	}
	return sum
}

// siluMul is vec.SiLUMul, through KernelSiLU where loaded.
func siluMul(g, u []float32) {
	if simd() {
		u = u[:len(g)]
		n := wasmsimd.SiLUMulN(g, u)
		g, u = g[n:], u[n:]
	}
	vec.SiLUMul(g, u)
}
