package wasmsimd

// The fast path's last float loops in Go: RMSNorm and attention's
// softmax (with the division by √d before it). Go's wasm port runs them
// scalar, its float32 arithmetic through float64 conversions and every
// value through its own stack in memory; here each is one call, its sums
// still added one at a time in the Go code's order (so the bits are the
// same), the rest four lanes at a time.
const (
	// KernelRMSNorm has the signature (o, x, w, n, eps i32), eps a
	// float32's bits, and sets o[j] = w[j]·(s·x[j]) for j < n with s =
	// 1/√(Σx²/n + eps), the squares added in order: the bits of
	// runtime/cpu's rmsnorm (√ rounded once to f32 equals its float64 √
	// rounded to f32: double rounding is harmless for square roots).
	KernelRMSNorm = "rmsnorm"
	// KernelRMSNormLanes has KernelRMSNorm's signature and sets o as
	// runtime/vec's RMSNormLanes does, bit for bit: Σx² in eight lanes
	// (square j into lane j mod 8, the tail past the last whole eight
	// into lanes 0, 1, …), added as hsum8 adds them. The CPU backend's
	// fast path.
	KernelRMSNormLanes = "rmsnorm8"
	// KernelSoftmax has the signature (x, n, s i32), s a float32's bits
	// and n ≥ 1, and sets x[i] to e_i/Σe for i < n, where x'_i = x[i]/s,
	// m the largest x'_i and e_i = vec.Exp(x'_i − m), the e_i added in
	// order: the bits of attention's division then runtime/cpu's
	// softmaxFast without sinks (a NaN anywhere gives NaNs, their payloads
	// aside).
	KernelSoftmax = "softmax"
)

// foldLanes sets the f32 local acc to op(…op(op(acc, v₀), v₁)…, v₃) over
// the four f32 lanes of the v128 local v, in lane order (op an f32
// binary opcode: f32.add, f32.max): the order a scalar loop takes over
// the four elements v holds.
func (f *fn) foldLanes(acc, v uint32, op byte) {
	for l := range 4 {
		f.get(acc)
		f.get(v)
		f.f32x4ExtractLane(byte(l))
		f.op(op)
		f.set(acc)
	}
}

// rmsnormKernel assembles KernelRMSNorm, or with lanes
// KernelRMSNormLanes.
func rmsnormKernel(lanes bool) *fn {
	f := &fn{name: KernelRMSNorm, params: []valType{i32, i32, i32, i32, i32}}
	if lanes {
		f.name = KernelRMSNormLanes
	}
	const o, x, w, n, eps = 0, 1, 2, 3, 4
	i, n4, p := f.local(i32), f.local(i32), f.local(i32)
	ss := f.local(f32)
	sq, sv := f.local(v128), f.local(v128)
	f.get(n)
	f.i32Const(^3)
	f.i32And()
	f.set(n4)
	if lanes {
		f.sumSquaresLanes(ss, x, n, i, p)
	} else {
		// ss = Σ x², in order: four squares at once (each rounded as the
		// scalar's), added one by one
		f.get(x)
		f.set(p)
		f.i32Const(0)
		f.set(i)
		f.whileLt(i, n4, func() {
			f.get(p)
			f.v128Load(0)
			f.tee(sq)
			f.get(sq)
			f.f32x4Mul()
			f.set(sq)
			f.foldLanes(ss, sq, 0x92 /* f32.add */)
			f.inc(p, 16)
			f.inc(i, 4)
		})
		f.whileLt(i, n, func() {
			f.get(ss)
			f.get(p)
			f.f32Load(0)
			f.get(p)
			f.f32Load(0)
			f.f32Mul()
			f.f32Add()
			f.set(ss)
			f.inc(p, 4)
			f.inc(i, 1)
		})
	}
	// ss = 1/√(ss/n + eps)
	f.f32Const(1)
	f.get(ss)
	f.get(n)
	f.f32ConvertI32U()
	f.op(0x95) // f32.div
	f.get(eps)
	f.f32ReinterpretI32()
	f.f32Add()
	f.op(0x91) // f32.sqrt
	f.op(0x95) // f32.div
	f.tee(ss)
	f.f32x4Splat()
	f.set(sv)
	// o = w·(ss·x)
	f.i32Const(0)
	f.set(i)
	f.whileLt(i, n4, func() {
		f.get(o)
		f.get(w)
		f.v128Load(0)
		f.get(sv)
		f.get(x)
		f.v128Load(0)
		f.f32x4Mul()
		f.f32x4Mul()
		f.v128Store(0)
		f.inc(o, 16)
		f.inc(w, 16)
		f.inc(x, 16)
		f.inc(i, 4)
	})
	f.whileLt(i, n, func() {
		f.get(o)
		f.get(w)
		f.f32Load(0)
		f.get(ss)
		f.get(x)
		f.f32Load(0)
		f.f32Mul()
		f.f32Mul()
		f.f32Store(0)
		f.inc(o, 4)
		f.inc(w, 4)
		f.inc(x, 4)
		f.inc(i, 1)
	})
	return f
}

// sumSquaresLanes sets the f32 local ss to RMSNormLanes' Σx² over the n
// (≥ 1) f32 values at x, using the i32 locals i and p: two v128
// accumulators (lanes 0–3 and 4–7) over each whole eight, then each
// lane k's tail value x[n8+k], when there is one, added to its lane (a
// lane with none adds +0, which changes no sum of squares: a lane is
// never −0), then hsum8's order.
func (f *fn) sumSquaresLanes(ss, x, n, i, p uint32) {
	a, b, sq := f.local(v128), f.local(v128), f.local(v128)
	n8 := f.local(i32)
	lane := f.localsOf(f32, 8)
	f.get(n)
	f.i32Const(^7)
	f.i32And()
	f.set(n8)
	f.v128Zero()
	f.set(a)
	f.v128Zero()
	f.set(b)
	f.get(x)
	f.set(p)
	f.i32Const(0)
	f.set(i)
	f.whileLt(i, n8, func() {
		for _, acc := range []struct {
			v   uint32
			off uint32
		}{{a, 0}, {b, 16}} {
			f.get(acc.v)
			f.get(p)
			f.v128Load(acc.off)
			f.tee(sq)
			f.get(sq)
			f.f32x4Mul()
			f.f32x4Add()
			f.set(acc.v)
		}
		f.inc(p, 32)
		f.inc(i, 8)
	})
	for k := range 8 {
		f.get([2]uint32{a, b}[k/4])
		f.f32x4ExtractLane(byte(k % 4))
		// + (n8+k < n ? x[n8+k]² : +0), x read at min(n8+k, n−1)
		f.get(x)
		f.get(n8)
		f.i32Const(int32(k))
		f.i32Add()
		f.get(n)
		f.i32Const(1)
		f.i32Sub()
		f.get(n8)
		f.i32Const(int32(k))
		f.i32Add()
		f.get(n)
		f.i32LtU()
		f.sel()
		f.i32Const(2)
		f.i32Shl()
		f.i32Add()
		f.tee(p)
		f.f32Load(0)
		f.get(p)
		f.f32Load(0)
		f.f32Mul()
		f.f32Const(0)
		f.get(n8)
		f.i32Const(int32(k))
		f.i32Add()
		f.get(n)
		f.i32LtU()
		f.sel()
		f.f32Add()
		f.set(lane[k])
	}
	// ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))
	for _, pr := range [][2]int{{0, 4}, {2, 6}} {
		f.get(lane[pr[0]])
		f.get(lane[pr[1]])
		f.f32Add()
	}
	f.f32Add()
	for _, pr := range [][2]int{{1, 5}, {3, 7}} {
		f.get(lane[pr[0]])
		f.get(lane[pr[1]])
		f.f32Add()
	}
	f.f32Add()
	f.f32Add()
	f.set(ss)
}

// softmaxKernel assembles KernelSoftmax.
func softmaxKernel() *fn {
	f := &fn{name: KernelSoftmax, params: []valType{i32, i32, i32}}
	const x, n, s = 0, 1, 2
	i, n4, p := f.local(i32), f.local(i32), f.local(i32)
	m, sum, t := f.local(f32), f.local(f32), f.local(f32)
	sv, mv, v, nn, r, pp, k, h := f.local(v128), f.local(v128), f.local(v128), f.local(v128), f.local(v128), f.local(v128), f.local(v128), f.local(v128)
	f.get(n)
	f.i32Const(^3)
	f.i32And()
	f.set(n4)
	f.get(s)
	f.i32x4Splat()
	f.set(sv)
	// x = x/s, and m = its largest (f32 max is Go's fmax but for a NaN's
	// payload: the larger, +0 over −0, the same whatever the order)
	f.get(x)
	f.f32Load(0)
	f.get(s)
	f.f32ReinterpretI32()
	f.op(0x95) // f32.div
	f.tee(m)
	f.f32x4Splat()
	f.set(mv)
	f.get(x)
	f.set(p)
	f.i32Const(0)
	f.set(i)
	f.whileLt(i, n4, func() {
		f.get(p)
		f.get(p)
		f.v128Load(0)
		f.get(sv)
		f.simd(0xe7) // f32x4.div
		f.tee(v)
		f.v128Store(0)
		f.get(mv)
		f.get(v)
		f.simd(0xe9) // f32x4.max
		f.set(mv)
		f.inc(p, 16)
		f.inc(i, 4)
	})
	f.foldLanes(m, mv, 0x97 /* f32.max */)
	f.whileLt(i, n, func() {
		f.get(p)
		f.get(p)
		f.f32Load(0)
		f.get(s)
		f.f32ReinterpretI32()
		f.op(0x95) // f32.div
		f.tee(t)
		f.f32Store(0)
		f.get(m)
		f.get(t)
		f.op(0x97) // f32.max
		f.set(m)
		f.inc(p, 4)
		f.inc(i, 1)
	})
	// x = Exp(x − m), sum = Σ x in order; the last n%4 one lane each
	f.get(m)
	f.f32x4Splat()
	f.set(mv)
	f.get(x)
	f.set(p)
	f.i32Const(0)
	f.set(i)
	f.whileLt(i, n4, func() {
		f.get(p)
		f.v128Load(0)
		f.get(mv)
		f.f32x4Sub()
		f.set(v)
		f.expLanes(v, nn, r, pp, k, h)
		f.set(v)
		f.get(p)
		f.get(v)
		f.v128Store(0)
		f.foldLanes(sum, v, 0x92 /* f32.add */)
		f.inc(p, 16)
		f.inc(i, 4)
	})
	f.whileLt(i, n, func() {
		f.get(p)
		f.f32Load(0)
		f.get(m)
		f.f32Sub()
		f.f32x4Splat()
		f.set(v)
		f.expLanes(v, nn, r, pp, k, h)
		f.f32x4ExtractLane(0)
		f.set(t)
		f.get(p)
		f.get(t)
		f.f32Store(0)
		f.get(sum)
		f.get(t)
		f.f32Add()
		f.set(sum)
		f.inc(p, 4)
		f.inc(i, 1)
	})
	// x ·= 1/sum
	f.f32Const(1)
	f.get(sum)
	f.op(0x95) // f32.div
	f.tee(t)
	f.f32x4Splat()
	f.set(mv)
	f.get(x)
	f.set(p)
	f.i32Const(0)
	f.set(i)
	f.whileLt(i, n4, func() {
		f.get(p)
		f.get(p)
		f.v128Load(0)
		f.get(mv)
		f.f32x4Mul()
		f.v128Store(0)
		f.inc(p, 16)
		f.inc(i, 4)
	})
	f.whileLt(i, n, func() {
		f.get(p)
		f.get(p)
		f.f32Load(0)
		f.get(t)
		f.f32Mul()
		f.f32Store(0)
		f.inc(p, 4)
		f.inc(i, 1)
	})
	return f
}
