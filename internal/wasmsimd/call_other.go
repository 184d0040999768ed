//go:build !wasm

package wasmsimd

// Ready is false outside WebAssembly: native builds have runtime/vec's
// assembly or Go kernels.
func Ready() (bool, string) { return false, "not a WebAssembly build" }

// MulQ8_0 is only for wasm builds with the kernels loaded.
func MulQ8_0(dst []float32, ds int, wd []float32, wq []byte, xd []float32, xq []int16, rows, nb, trows int) {
	panic("wasmsimd: MulQ8_0 outside WebAssembly")
}

// MulQ4_0 is only for wasm builds with the kernels loaded.
func MulQ4_0(dst []float32, ds int, wd []float32, wq []byte, xd []float32, xq []int16, rows, nb, trows int) {
	panic("wasmsimd: MulQ4_0 outside WebAssembly")
}

// MulQ4_K is only for wasm builds with the kernels loaded.
func MulQ4_K(dst []float32, ds int, dm, sc, mn, qs []byte, xd, g []float32, xq []int16, rows, nb, trows int) {
	panic("wasmsimd: MulQ4_K outside WebAssembly")
}

// MulF32 is only for wasm builds with the kernels loaded.
func MulF32(dst []float32, ds int, w, x []float32, rows, n, trows int) {
	panic("wasmsimd: MulF32 outside WebAssembly")
}

// MulF16 is only for wasm builds with the kernels loaded.
func MulF16(dst []float32, ds int, w []byte, x []float32, rows, n, trows int) {
	panic("wasmsimd: MulF16 outside WebAssembly")
}

// Scores is only for wasm builds with the kernels loaded.
func Scores(dst, q, k []float32, stride int) {
	panic("wasmsimd: Scores outside WebAssembly")
}

// WeightedSum is only for wasm builds with the kernels loaded.
func WeightedSum(o, a, v []float32, stride int) {
	panic("wasmsimd: WeightedSum outside WebAssembly")
}

// ExpShiftN is only for wasm builds with the kernels loaded.
func ExpShiftN(dst, x []float32, m float32) int {
	panic("wasmsimd: ExpShiftN outside WebAssembly")
}

// SiLUMulN is only for wasm builds with the kernels loaded.
func SiLUMulN(g, u []float32) int {
	panic("wasmsimd: SiLUMulN outside WebAssembly")
}

// QuantizeQ16 is only for wasm builds with the kernels loaded.
func QuantizeQ16(q []int16, d, g, x []float32) {
	panic("wasmsimd: QuantizeQ16 outside WebAssembly")
}

// RMSNorm is only for wasm builds with the kernels loaded.
func RMSNorm(o, x, w []float32, eps float32) {
	panic("wasmsimd: RMSNorm outside WebAssembly")
}

// RMSNormLanes is only for wasm builds with the kernels loaded.
func RMSNormLanes(o, x, w []float32, eps float32) {
	panic("wasmsimd: RMSNormLanes outside WebAssembly")
}

// Softmax is only for wasm builds with the kernels loaded.
func Softmax(x []float32, s float32) {
	panic("wasmsimd: Softmax outside WebAssembly")
}
