package wasmsimd

import "math"

// The float kernels: f32 and f16 weight rows against f32 activations (the
// CPU path's matrix products for unquantised weights) and attention's two
// loops. Each reproduces the bits of the pure-Go kernel the wasm build
// runs without them (runtime/vec's Go twins): WebAssembly has no fused
// multiply-add and never flushes subnormals, so a product rounded then a
// sum rounded, lane for lane in the Go kernel's order, is the same float.
const (
	// KernelF32 and KernelF16 have the signature
	//
	//	(dst, ds, w, x, rows, n, trows i32)
	//
	// and set the f32 dst[t·ds + i] to weight row i times activation row
	// t for i < rows, t < trows: weight row i's n f32 (or f16) values at
	// w + 4·n·i (2·n·i), activation row t's n f32 at x + 4·n·t. Each
	// result has the bits of vec.DotLanesGo (of the f16 row decoded
	// exactly, as vec.HalfToFloat does).
	KernelF32 = "f32"
	KernelF16 = "f16"
	// KernelScores has the signature (dst, q, k, n, hd, stride i32) and
	// sets dst[i] for i < n to q's hd values times those at
	// k + 4·stride·i, with the bits of vec.ScoresGo.
	KernelScores = "scores"
	// KernelWeightedSum has the signature (o, a, v, n, hd, stride i32) and
	// sets o[j] for j < hd to Σ_{i<n} a[i]·v[i·stride + j], the terms
	// added in order of i, with the bits of vec.WeightedSumGo.
	KernelWeightedSum = "wsum"
)

// forLoop emits for ctr := 0; ctr < limit; ctr++ { body } over i32 locals.
func (f *fn) forLoop(ctr, limit uint32, body func()) {
	f.i32Const(0)
	f.set(ctr)
	f.block()
	f.loop()
	f.get(ctr)
	f.get(limit)
	f.i32GeU()
	f.brIf(1)
	body()
	f.inc(ctr, 1)
	f.br(0)
	f.end()
	f.end()
}

// whileLt emits while a < b { body } over i32 locals (body moves a).
func (f *fn) whileLt(a, b uint32, body func()) {
	f.block()
	f.loop()
	f.get(a)
	f.get(b)
	f.i32GeU()
	f.brIf(1)
	body()
	f.br(0)
	f.end()
	f.end()
}

// halfLanes replaces the four binary16 bit patterns (as u32 lanes) in
// local h with their f32 values, as half does for one (u scratch). Its
// constants are v128.const (see v128Splat8), not locals.
func (f *fn) halfLanes(h, u uint32) {
	// u = (h&0x7fff)<<13 | (h&0x8000)<<16
	f.get(h)
	f.v128Splat32(0x7fff)
	f.v128And()
	f.i32Const(13)
	f.i32x4Shl()
	f.get(h)
	f.v128Splat32(0x8000)
	f.v128And()
	f.i32Const(16)
	f.i32x4Shl()
	f.v128Or()
	f.tee(u)
	// Inf/NaN lanes: u + 224<<23; finite ones: f32(u)·2^112
	f.v128Splat32(224 << 23)
	f.i32x4Add()
	f.get(u)
	f.v128Splat32(math.Float32bits(0x1p112))
	f.f32x4Mul()
	f.get(h)
	f.v128Splat32(0x7c00)
	f.v128And()
	f.v128Splat32(0x7c00)
	f.i32x4Eq()
	f.v128Bitselect()
	f.set(h)
}

// floatKernel assembles KernelF32 or, with half, KernelF16, summing as
// vec.DotLanesGo: eight f32 lanes over the whole groups of eight (lanes
// 0..3 in lo, 4..7 in hi), hsum8 of them, then the rest one by one.
func floatKernel(name string, half bool) *fn {
	f := &fn{name: name, params: []valType{i32, i32, i32, i32, i32, i32, i32}}
	const dst, ds, w, x, rows, n, trows = 0, 1, 2, 3, 4, 5, 6
	es := int32(4)
	if half {
		es = 2
	}
	i, t, j, n8, pw, px, h, u := f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32)
	s := f.local(f32)
	lo, hi, wl, wh, scratch := f.local(v128), f.local(v128), f.local(v128), f.local(v128), f.local(v128)
	f.get(n)
	f.i32Const(^7)
	f.i32And()
	f.set(n8)
	f.forLoop(i, rows, func() {
		f.forLoop(t, trows, func() {
			// pw = w + es·n·i, px = x + 4·n·t
			f.get(w)
			f.get(n)
			f.get(i)
			f.i32Mul()
			f.i32Const(es)
			f.i32Mul()
			f.i32Add()
			f.set(pw)
			f.get(x)
			f.get(n)
			f.get(t)
			f.i32Mul()
			f.i32Const(4)
			f.i32Mul()
			f.i32Add()
			f.set(px)
			f.v128Zero()
			f.set(lo)
			f.v128Zero()
			f.set(hi)
			f.i32Const(0)
			f.set(j)
			f.whileLt(j, n8, func() {
				if half {
					f.get(pw)
					f.v128Load(0)
					f.tee(wh)
					f.i32x4ExtendLowI16x8U()
					f.set(wl)
					f.halfLanes(wl, scratch)
					f.get(wh)
					f.i32x4ExtendHighI16x8U()
					f.set(wh)
					f.halfLanes(wh, scratch)
				} else {
					f.get(pw)
					f.v128Load(0)
					f.set(wl)
					f.get(pw)
					f.v128Load(16)
					f.set(wh)
				}
				for _, a := range []struct {
					acc, wv uint32
					off     uint32
				}{{lo, wl, 0}, {hi, wh, 16}} {
					f.get(a.acc)
					f.get(a.wv)
					f.get(px)
					f.v128Load(a.off)
					f.f32x4Mul()
					f.f32x4Add()
					f.set(a.acc)
				}
				f.inc(pw, 8*es)
				f.inc(px, 32)
				f.inc(j, 8)
			})
			f.get(lo)
			f.get(hi)
			f.f32x4Add()
			f.set(lo)
			f.hsum4(lo)
			f.set(s)
			f.whileLt(j, n, func() {
				f.get(s)
				if half {
					f.get(pw)
					f.i32Load16U(0)
					f.set(h)
					f.half(h, u)
				} else {
					f.get(pw)
					f.f32Load(0)
				}
				f.get(px)
				f.f32Load(0)
				f.f32Mul()
				f.f32Add()
				f.set(s)
				f.inc(pw, es)
				f.inc(px, 4)
				f.inc(j, 1)
			})
			// dst[t·ds + i] = s
			f.dstAddr(dst, ds, t, i)
			f.get(s)
			f.f32Store(0)
		})
	})
	return f
}

// scoresKernel assembles KernelScores, summing each row as vec's dotGo:
// four f32 lanes over the whole groups of four, the rest into lane 0,
// then (s0+s1)+(s2+s3). Rows go four at a time, each with its own lanes:
// one row's lane sums are a chain of dependent adds, so a lone row waits
// on the add's latency every step, where four interleaved ones overlap
// (and share q's loads). Each row's sums are the same, in the same order.
func scoresKernel() *fn {
	f := &fn{name: KernelScores, params: []valType{i32, i32, i32, i32, i32, i32}}
	const dst, q, k, n, hd, stride = 0, 1, 2, 3, 4, 5
	i, j, hd4, n4, pq, pqt, rowBytes := f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32)
	var pk, acc [4]uint32
	for r := range 4 {
		pk[r], acc[r] = f.local(i32), f.local(v128)
	}
	s0 := f.local(f32)
	qv := f.local(v128)
	f.get(hd)
	f.i32Const(^3)
	f.i32And()
	f.set(hd4)
	f.get(n)
	f.i32Const(^3)
	f.i32And()
	f.set(n4)
	f.get(stride)
	f.i32Const(2)
	f.i32Shl()
	f.set(rowBytes)
	// pqt = q + 4·hd4, where the scalar tail of q starts
	f.get(q)
	f.get(hd4)
	f.i32Const(2)
	f.i32Shl()
	f.i32Add()
	f.set(pqt)
	// rows r < m from row i: pk[r] = k + 4·stride·(i+r), lanes cleared,
	// the vector part over hd4, then per row the tail and the sum into
	// dst[i+r]
	rows := func(m int) {
		f.get(k)
		f.get(rowBytes)
		f.get(i)
		f.i32Mul()
		f.i32Add()
		f.set(pk[0])
		for r := 1; r < m; r++ {
			f.get(pk[r-1])
			f.get(rowBytes)
			f.i32Add()
			f.set(pk[r])
		}
		for r := range m {
			f.v128Zero()
			f.set(acc[r])
		}
		f.get(q)
		f.set(pq)
		f.i32Const(0)
		f.set(j)
		f.whileLt(j, hd4, func() {
			f.get(pq)
			f.v128Load(0)
			f.set(qv)
			for r := range m {
				f.get(acc[r])
				f.get(qv)
				f.get(pk[r])
				f.v128Load(0)
				f.f32x4Mul()
				f.f32x4Add()
				f.set(acc[r])
				f.inc(pk[r], 16)
			}
			f.inc(pq, 16)
			f.inc(j, 4)
		})
		for r := range m {
			f.get(acc[r])
			f.f32x4ExtractLane(0)
			f.set(s0)
			f.get(pqt)
			f.set(pq)
			f.get(hd4)
			f.set(j)
			f.whileLt(j, hd, func() {
				f.get(s0)
				f.get(pq)
				f.f32Load(0)
				f.get(pk[r])
				f.f32Load(0)
				f.f32Mul()
				f.f32Add()
				f.set(s0)
				f.inc(pq, 4)
				f.inc(pk[r], 4)
				f.inc(j, 1)
			})
			// dst[i+r] = (s0+s1)+(s2+s3)
			f.get(dst)
			f.get(i)
			f.i32Const(2)
			f.i32Shl()
			f.i32Add()
			f.get(s0)
			f.get(acc[r])
			f.f32x4ExtractLane(1)
			f.f32Add()
			f.get(acc[r])
			f.f32x4ExtractLane(2)
			f.get(acc[r])
			f.f32x4ExtractLane(3)
			f.f32Add()
			f.f32Add()
			f.f32Store(uint32(4 * r))
		}
	}
	f.i32Const(0)
	f.set(i)
	f.whileLt(i, n4, func() {
		rows(4)
		f.inc(i, 4)
	})
	f.whileLt(i, n, func() {
		rows(1)
		f.inc(i, 1)
	})
	return f
}

// weightedSumKernel assembles KernelWeightedSum: for each group of four
// outputs (then each output left), the terms a[i]·v[i·stride + j] added
// to a zero in order of i, as vec's axpy loop adds them into a cleared o.
// Groups go four at a time (sixteen outputs) while they last, for
// scoresKernel's reason: four independent chains of adds, a[i] splat once.
func weightedSumKernel() *fn {
	f := &fn{name: KernelWeightedSum, params: []valType{i32, i32, i32, i32, i32, i32}}
	const o, a, v, n, hd, stride = 0, 1, 2, 3, 4, 5
	i, j, hd4, hd16, pa, pv, rowBytes := f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32)
	s := f.local(f32)
	av := f.local(v128)
	var acc [4]uint32
	for g := range 4 {
		acc[g] = f.local(v128)
	}
	f.get(hd)
	f.i32Const(^3)
	f.i32And()
	f.set(hd4)
	f.get(hd)
	f.i32Const(^15)
	f.i32And()
	f.set(hd16)
	f.get(stride)
	f.i32Const(2)
	f.i32Shl()
	f.set(rowBytes)
	// pv starts at v + 4·j for each column group; groups is the vectors
	// of four side by side (0: one scalar column)
	column := func(groups int) {
		f.get(a)
		f.set(pa)
		f.get(v)
		f.get(j)
		f.i32Const(2)
		f.i32Shl()
		f.i32Add()
		f.set(pv)
		if groups > 0 {
			for g := range groups {
				f.v128Zero()
				f.set(acc[g])
			}
		} else {
			f.f32Const(0)
			f.set(s)
		}
		f.forLoop(i, n, func() {
			if groups > 0 {
				f.get(pa)
				f.f32Load(0)
				f.f32x4Splat()
				f.set(av)
				for g := range groups {
					f.get(acc[g])
					f.get(av)
					f.get(pv)
					f.v128Load(uint32(16 * g))
					f.f32x4Mul()
					f.f32x4Add()
					f.set(acc[g])
				}
			} else {
				f.get(s)
				f.get(pa)
				f.f32Load(0)
				f.get(pv)
				f.f32Load(0)
				f.f32Mul()
				f.f32Add()
				f.set(s)
			}
			f.inc(pa, 4)
			f.get(pv)
			f.get(rowBytes)
			f.i32Add()
			f.set(pv)
		})
		if groups > 0 {
			for g := range groups {
				f.get(o)
				f.get(j)
				f.i32Const(2)
				f.i32Shl()
				f.i32Add()
				f.get(acc[g])
				f.v128Store(uint32(16 * g))
			}
		} else {
			f.get(o)
			f.get(j)
			f.i32Const(2)
			f.i32Shl()
			f.i32Add()
			f.get(s)
			f.f32Store(0)
		}
	}
	f.i32Const(0)
	f.set(j)
	f.whileLt(j, hd16, func() {
		column(4)
		f.inc(j, 16)
	})
	f.whileLt(j, hd4, func() {
		column(1)
		f.inc(j, 4)
	})
	f.whileLt(j, hd, func() {
		column(0)
		f.inc(j, 1)
	})
	return f
}
