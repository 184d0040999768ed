//go:build wasm

package wasmsimd

import (
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// The host's side: modesimd.load(p, n) compiles and instantiates the n
// bytes of kernel module at p against this instance's memory and returns
// one of the load codes; the others forward to the instance's exports.

//go:wasmimport modesimd load
func hostLoad(p unsafe.Pointer, n int32) int32

//go:wasmimport modesimd q8_0
func hostQ8_0(dst unsafe.Pointer, ds int32, wd, wq, xd, xq unsafe.Pointer, rows, nb, trows int32)

//go:wasmimport modesimd q4_0
func hostQ4_0(dst unsafe.Pointer, ds int32, wd, wq, xd, xq unsafe.Pointer, rows, nb, trows int32)

//go:wasmimport modesimd q4_k
func hostQ4_K(dst unsafe.Pointer, ds int32, dm, sc, mn, qs, xd, g, xq unsafe.Pointer, rows, nb, trows int32)

//go:wasmimport modesimd f32
func hostF32(dst unsafe.Pointer, ds int32, w, x unsafe.Pointer, rows, n, trows int32)

//go:wasmimport modesimd f16
func hostF16(dst unsafe.Pointer, ds int32, w, x unsafe.Pointer, rows, n, trows int32)

//go:wasmimport modesimd scores
func hostScores(dst, q, k unsafe.Pointer, n, hd, stride int32)

//go:wasmimport modesimd wsum
func hostWeightedSum(o, a, v unsafe.Pointer, n, hd, stride int32)

//go:wasmimport modesimd exp
func hostExp(dst, x unsafe.Pointer, n int32, m uint32)

//go:wasmimport modesimd silu
func hostSiLU(g, u unsafe.Pointer, n int32)

//go:wasmimport modesimd q16
func hostQ16(q, d, g, x unsafe.Pointer, nb int32)

//go:wasmimport modesimd rmsnorm
func hostRMSNorm(o, x, w unsafe.Pointer, n int32, eps uint32)

//go:wasmimport modesimd rmsnorm8
func hostRMSNormLanes(o, x, w unsafe.Pointer, n int32, eps uint32)

//go:wasmimport modesimd softmax
func hostSoftmax(x unsafe.Pointer, n int32, s uint32)

// memImport is where the Go instance's memory is found: wasm_exec.js's
// instance exports it as "mem" and the worker imports it as go.mem; a
// wasip1 module exports "memory", which cmd/mode's host names the guest's
// instance for.
func memImport() (string, string) {
	if runtime.GOOS == "js" {
		return "go", "mem"
	}
	return GuestModule, "memory"
}

// loaded asks the host once, on first use, like a CPU feature check.
var loaded = sync.OnceValues(func() (bool, string) {
	b := Module(memImport())
	code := hostLoad(unsafe.Pointer(&b[0]), int32(len(b)))
	runtime.KeepAlive(b)
	return code == loadOK, loadNote(code)
})

// Ready reports whether the SIMD128 kernels are in use, and a note on
// which kernels run and why.
func Ready() (bool, string) { return loaded() }

// MulQ8_0 runs the q8_0 kernel (see KernelQ8_0) on Go slices: dst from
// row 0's first output, wd and wq from the first weight row's scales (as
// f32: see KernelQ8_0) and quants, xd and xq the activations. Only call
// it once Ready is true.
func MulQ8_0(dst []float32, ds int, wd []float32, wq []byte, xd []float32, xq []int16, rows, nb, trows int) {
	if !checkMul(len(dst), ds, len(wd), len(wq), len(xd), len(xq), 32, rows, nb, trows) {
		return
	}
	hostQ8_0(unsafe.Pointer(&dst[0]), int32(ds), unsafe.Pointer(&wd[0]), unsafe.Pointer(&wq[0]),
		unsafe.Pointer(&xd[0]), unsafe.Pointer(&xq[0]), int32(rows), int32(nb), int32(trows))
}

// MulQ4_0 is MulQ8_0 for q4_0 weights (see KernelQ4_0).
func MulQ4_0(dst []float32, ds int, wd []float32, wq []byte, xd []float32, xq []int16, rows, nb, trows int) {
	if !checkMul(len(dst), ds, len(wd), len(wq), len(xd), len(xq), 16, rows, nb, trows) {
		return
	}
	hostQ4_0(unsafe.Pointer(&dst[0]), int32(ds), unsafe.Pointer(&wd[0]), unsafe.Pointer(&wq[0]),
		unsafe.Pointer(&xd[0]), unsafe.Pointer(&xq[0]), int32(rows), int32(nb), int32(trows))
}

// MulQ4_K runs the q4_k kernel (see KernelQ4_K): dm, sc, mn and qs from the
// first weight row's, xd, g and xq the activations; nb a multiple of 8.
func MulQ4_K(dst []float32, ds int, dm, sc, mn, qs []byte, xd, g []float32, xq []int16, rows, nb, trows int) {
	if !checkQ4_K(len(dst), ds, len(dm), len(sc), len(mn), len(qs), len(xd), len(g), len(xq), rows, nb, trows) {
		return
	}
	hostQ4_K(unsafe.Pointer(&dst[0]), int32(ds), unsafe.Pointer(&dm[0]), unsafe.Pointer(&sc[0]), unsafe.Pointer(&mn[0]),
		unsafe.Pointer(&qs[0]), unsafe.Pointer(&xd[0]), unsafe.Pointer(&g[0]), unsafe.Pointer(&xq[0]), int32(rows), int32(nb), int32(trows))
}

// MulF32 runs KernelF32: dst[t·ds+i] = row i of w (rows rows of n) times
// row t of x (trows rows of n), with vec.DotLanesGo's bits.
func MulF32(dst []float32, ds int, w, x []float32, rows, n, trows int) {
	if !checkFloat(len(dst), ds, len(w), len(x), 4, rows, n, trows) {
		return
	}
	hostF32(unsafe.Pointer(&dst[0]), int32(ds), unsafe.Pointer(&w[0]), unsafe.Pointer(&x[0]), int32(rows), int32(n), int32(trows))
}

// MulF16 is MulF32 for f16 weight rows (2·n bytes each).
func MulF16(dst []float32, ds int, w []byte, x []float32, rows, n, trows int) {
	if !checkFloat(len(dst), ds, len(w)/2, len(x), 2, rows, n, trows) {
		return
	}
	hostF16(unsafe.Pointer(&dst[0]), int32(ds), unsafe.Pointer(&w[0]), unsafe.Pointer(&x[0]), int32(rows), int32(n), int32(trows))
}

// Scores is vec.Scores with vec.ScoresGo's bits.
func Scores(dst, q, k []float32, stride int) {
	if !checkAttn(len(dst), len(q), stride, len(k)) {
		clear(dst)
		return
	}
	hostScores(unsafe.Pointer(&dst[0]), unsafe.Pointer(&q[0]), unsafe.Pointer(&k[0]), int32(len(dst)), int32(len(q)), int32(stride))
}

// WeightedSum is vec.WeightedSum with vec.WeightedSumGo's bits.
func WeightedSum(o, a, v []float32, stride int) {
	if !checkAttn(len(a), len(o), stride, len(v)) {
		clear(o)
		return
	}
	hostWeightedSum(unsafe.Pointer(&o[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&v[0]), int32(len(a)), int32(len(o)), int32(stride))
}

// ExpShiftN sets dst[i] = vec.Exp(x[i] − m), with its bits, for the first
// len(x)&^3 elements (KernelExp) and returns how many it set; the caller
// does the rest, as vec.ExpShift does with its assembly's count.
func ExpShiftN(dst, x []float32, m float32) int {
	dst = dst[:len(x)]
	n := len(x) &^ 3
	if n == 0 || int64(len(x)) >= 1<<29 {
		return 0
	}
	hostExp(unsafe.Pointer(&dst[0]), unsafe.Pointer(&x[0]), int32(n), math.Float32bits(m))
	return n
}

// SiLUMulN is vec.SiLUMul, with its bits, on the first len(g)&^3
// elements (KernelSiLU); it returns how many it did.
func SiLUMulN(g, u []float32) int {
	u = u[:len(g)]
	n := len(g) &^ 3
	if n == 0 || int64(len(g)) >= 1<<29 {
		return 0
	}
	hostSiLU(unsafe.Pointer(&g[0]), unsafe.Pointer(&u[0]), int32(n))
	return n
}

// QuantizeQ16 is vec.QuantizeQ16 through KernelQ16, with the bits of its
// Go code as the wasm build runs it.
func QuantizeQ16(q []int16, d, g, x []float32) {
	nb := len(d)
	q, g, x = q[:32*nb], g[:nb], x[:32*nb]
	if nb == 0 {
		return
	}
	if int64(nb) >= 1<<24 {
		panic("wasmsimd: QuantizeQ16 of too many blocks")
	}
	hostQ16(unsafe.Pointer(&q[0]), unsafe.Pointer(&d[0]), unsafe.Pointer(&g[0]), unsafe.Pointer(&x[0]), int32(nb))
}

// RMSNorm sets o = w·(x/√(mean(x²) + eps)) through KernelRMSNorm, with
// the bits of runtime/cpu's rmsnorm; o may be x.
func RMSNorm(o, x, w []float32, eps float32) { rmsnorm(hostRMSNorm, o, x, w, eps) }

// RMSNormLanes is RMSNorm through KernelRMSNormLanes, with the bits of
// runtime/vec's RMSNormLanes; o may be x.
func RMSNormLanes(o, x, w []float32, eps float32) { rmsnorm(hostRMSNormLanes, o, x, w, eps) }

// rmsnorm calls one of the RMSNorm kernels on x's values.
func rmsnorm(kernel func(o, x, w unsafe.Pointer, n int32, eps uint32), o, x, w []float32, eps float32) {
	n := len(x)
	o, w = o[:n], w[:n]
	if n == 0 {
		return
	}
	if int64(n) >= 1<<29 {
		panic("wasmsimd: RMSNorm of too many elements")
	}
	kernel(unsafe.Pointer(&o[0]), unsafe.Pointer(&x[0]), unsafe.Pointer(&w[0]), int32(n), math.Float32bits(eps))
}

// Softmax sets x to the softmax of x/s through KernelSoftmax, with the
// bits of dividing each by s and then runtime/cpu's softmaxFast without
// sinks.
func Softmax(x []float32, s float32) {
	if len(x) == 0 {
		return
	}
	if int64(len(x)) >= 1<<29 {
		panic("wasmsimd: Softmax of too many elements")
	}
	hostSoftmax(unsafe.Pointer(&x[0]), int32(len(x)), math.Float32bits(s))
}
