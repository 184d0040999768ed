package wasmsimd

import (
	"context"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/moderuntime/mode/runtime/vec"
)

// BenchmarkMatVec runs a 1408×512 q4_0 product (one Mixtral-shaped expert
// projection, one activation row) through the kernel under wazero, and the
// same through runtime/vec's kernels natively (AVX2 or, with -tags purego,
// Go), for ratios.
func BenchmarkMatVec(b *testing.B) { benchMatVec(b, KernelQ4_0, 16, 1, vec.DotQ4_0) }

// BenchmarkMatVecQ8_0 is BenchmarkMatVec for q8_0 weights.
func BenchmarkMatVecQ8_0(b *testing.B) { benchMatVec(b, KernelQ8_0, 32, 1, vec.DotQ8_0) }

// BenchmarkPrefillQ4_0 is BenchmarkMatVec for 32 activation rows (a
// prompt's tokens).
func BenchmarkPrefillQ4_0(b *testing.B) { benchMatVec(b, KernelQ4_0, 16, 32, vec.DotQ4_0) }

// BenchmarkPrefillQ8_0 is BenchmarkPrefillQ4_0 for q8_0 weights.
func BenchmarkPrefillQ8_0(b *testing.B) { benchMatVec(b, KernelQ8_0, 32, 32, vec.DotQ8_0) }

func benchMatVec(b *testing.B, kernel string, qb, trows int, dot func(wd, wq []byte, xd []float32, xq []int16) float32) {
	const rows, nb = 1408, 16
	r := rand.New(rand.NewPCG(5, 6))
	wd := randHalfs(r, rows*nb)
	wq := make([]byte, qb*rows*nb)
	for i := range wq {
		wq[i] = byte(r.IntN(256))
	}
	xd := make([]float32, nb*trows)
	for i := range xd {
		xd[i] = 1e-4
	}
	xq := make([]int16, 32*nb*trows)
	for i := range xq {
		xq[i] = int16(r.IntN(65535) - 32767)
	}
	b.Run("simd128-wazero", func(b *testing.B) {
		t := b
		h := newKernelHost(t, 64)
		pdst := h.put(t, make([]byte, 4*rows*trows), 0)
		args := []uint64{uint64(pdst), rows, uint64(h.put(t, f32Bytes(halfsF32(wd)), 0)), uint64(h.put(t, wq, 0)),
			uint64(h.put(t, f32Bytes(xd), 0)), uint64(h.put(t, i16Bytes(xq), 0)), rows, nb, uint64(trows)}
		f := h.mod.ExportedFunction(kernel)
		stack := make([]uint64, 9)
		cpuLoop(b, func() {
			copy(stack, args)
			if err := f.CallWithStack(context.Background(), stack); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("vec-"+vec.Impl(), func(b *testing.B) {
		out := make([]float32, rows*trows)
		for b.Loop() {
			for t := range trows {
				for i := range rows {
					out[t*rows+i] = dot(wd[2*nb*i:], wq[qb*nb*i:], xd[nb*t:nb*(t+1)], xq[32*nb*t:])
				}
			}
		}
	})
}

// BenchmarkMatVecQ4_K is BenchmarkMatVec for q4_k weights (1408×512: two
// super-blocks a row).
func BenchmarkMatVecQ4_K(b *testing.B) {
	const rows, nb = 1408, 16
	r := rand.New(rand.NewPCG(5, 6))
	dm := randHalfs(r, rows*nb/8*2)
	sc, mn, qs := make([]byte, rows*nb), make([]byte, rows*nb), make([]byte, 16*rows*nb)
	for i := range sc {
		sc[i], mn[i] = byte(r.IntN(64)), byte(r.IntN(64))
	}
	for i := range qs {
		qs[i] = byte(r.IntN(256))
	}
	xd, g := make([]float32, nb), make([]float32, nb)
	for i := range xd {
		xd[i], g[i] = 1e-4, float32(r.NormFloat64())
	}
	xq := make([]int16, 32*nb)
	for i := range xq {
		xq[i] = int16(r.IntN(65535) - 32767)
	}
	h := newKernelHost(b, 64)
	pdst := h.put(b, make([]byte, 4*rows), 0)
	args := []uint64{uint64(pdst), rows, uint64(h.put(b, dm, 0)), uint64(h.put(b, sc, 0)), uint64(h.put(b, mn, 0)),
		uint64(h.put(b, qs, 0)), uint64(h.put(b, f32Bytes(xd), 0)), uint64(h.put(b, f32Bytes(g), 0)), uint64(h.put(b, i16Bytes(xq), 0)),
		rows, nb, 1}
	f := h.mod.ExportedFunction(KernelQ4_K)
	stack := make([]uint64, len(args))
	cpuLoop(b, func() {
		copy(stack, args)
		if err := f.CallWithStack(context.Background(), stack); err != nil {
			b.Fatal(err)
		}
	})
}

// cpuLoop runs op b.N times (b.Loop) on one locked thread and, where the
// thread's CPU time can be read, reports it per op as cpu-ns/op.
func cpuLoop(b *testing.B, op func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0, ok := threadCPU()
	n := 0
	for b.Loop() {
		op()
		n++
	}
	if c1, ok1 := threadCPU(); ok && ok1 && n > 0 {
		b.ReportMetric(float64(c1-c0)/float64(n), "cpu-ns/op")
	}
}
