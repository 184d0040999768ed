package wasmsimd

import "math"

// The exponential kernels: the fast path's softmax body and SwiGLU gate,
// with the bits of runtime/vec's Go expInto (Cody–Waite reduction, Cephes
// expf's polynomial, 2^n in two factors), four lanes at a time. Both take
// whole groups of four elements, n&^3; the caller does the rest in Go.
const (
	// KernelExp has the signature (dst, x, n, m i32), m a float32's bits,
	// and sets dst[i] = vec.Exp(x[i] − m) for i < n&^3.
	KernelExp = "exp"
	// KernelSiLU has the signature (g, u, n i32) and sets g[i] to
	// g[i]/(1 + vec.Exp(−g[i]))·u[i] for i < n&^3, vec.SiLUMul's bits.
	KernelSiLU = "silu"
)

// splatF32 pushes a v128.const of four c.
func (f *fn) splatF32(c float32) { f.v128Splat32(math.Float32bits(c)) }

// expLanes pushes Exp of the four f32 lanes of local v, as expInto
// computes each (v already shifted or negated); v, n, r, p, k and h are
// scratch. Every step is the same IEEE operation in the same order as
// the Go code, whose float32 conversions forbid fused multiply-adds.
func (f *fn) expLanes(v, n, r, p, k, h uint32) {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
		magic = 0x1.8p23
	)
	// The clamp: pmin(v, hi) is hi < v ? hi : v, Go's "if v > hi", and
	// pmax(v, lo) is v < lo ? lo : v; a NaN stays, as in Go.
	f.get(v)
	f.splatF32(88.72)
	f.simd(0xea) // f32x4.pmin
	f.splatF32(-87.33)
	f.simd(0xeb) // f32x4.pmax
	f.set(v)
	// n = (v·log2e + magic) − magic
	f.get(v)
	f.splatF32(log2e)
	f.f32x4Mul()
	f.splatF32(magic)
	f.f32x4Add()
	f.splatF32(magic)
	f.f32x4Sub()
	f.set(n)
	// r = (v − n·c1) − n·c2
	f.get(v)
	f.get(n)
	f.splatF32(c1)
	f.f32x4Mul()
	f.f32x4Sub()
	f.get(n)
	f.splatF32(c2)
	f.f32x4Mul()
	f.f32x4Sub()
	f.set(r)
	// p = ((((c0·r + c1)·r + c2)·r + c3)·r + c4)·r + c5, then p·r² + r + 1
	f.splatF32(1.9875691500e-4)
	for _, c := range []float32{1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1} {
		f.get(r)
		f.f32x4Mul()
		f.splatF32(c)
		f.f32x4Add()
	}
	f.get(r)
	f.get(r)
	f.f32x4Mul()
	f.f32x4Mul()
	f.get(r)
	f.f32x4Add()
	f.splatF32(1)
	f.f32x4Add()
	f.set(p)
	// k = int32(n) (an integer in [−126, 128]), h = k>>1;
	// e = p·2^h·2^(k−h), the powers built in the exponent bits
	f.get(n)
	f.simd(0xf8) // i32x4.trunc_sat_f32x4_s
	f.tee(k)
	f.i32Const(1)
	f.simd(0xac) // i32x4.shr_s
	f.set(h)
	f.get(p)
	f.get(h)
	f.v128Splat32(127)
	f.i32x4Add()
	f.i32Const(23)
	f.i32x4Shl()
	f.f32x4Mul()
	f.get(k)
	f.get(h)
	f.simd(0xb1) // i32x4.sub
	f.v128Splat32(127)
	f.i32x4Add()
	f.i32Const(23)
	f.i32x4Shl()
	f.f32x4Mul()
}

// expKernels assembles KernelExp and KernelSiLU.
func expKernels() []*fn {
	e := &fn{name: KernelExp, params: []valType{i32, i32, i32, i32}}
	{
		const dst, x, n, m = 0, 1, 2, 3
		i, n4 := e.local(i32), e.local(i32)
		mv, v, nn, r, p, k, h := e.local(v128), e.local(v128), e.local(v128), e.local(v128), e.local(v128), e.local(v128), e.local(v128)
		e.get(n)
		e.i32Const(^3)
		e.i32And()
		e.set(n4)
		e.get(m)
		e.i32x4Splat() // m's bits in every lane: m as f32x4
		e.set(mv)
		e.i32Const(0)
		e.set(i)
		e.whileLt(i, n4, func() {
			// v = x[i:i+4] − m
			e.get(x)
			e.v128Load(0)
			e.get(mv)
			e.f32x4Sub()
			e.set(v)
			e.get(dst)
			e.expLanes(v, nn, r, p, k, h)
			e.v128Store(0)
			e.inc(x, 16)
			e.inc(dst, 16)
			e.inc(i, 4)
		})
	}
	s := &fn{name: KernelSiLU, params: []valType{i32, i32, i32}}
	{
		const g, u, n = 0, 1, 2
		i, n4 := s.local(i32), s.local(i32)
		gv, v, nn, r, p, k, h := s.local(v128), s.local(v128), s.local(v128), s.local(v128), s.local(v128), s.local(v128), s.local(v128)
		s.get(n)
		s.i32Const(^3)
		s.i32And()
		s.set(n4)
		s.i32Const(0)
		s.set(i)
		s.whileLt(i, n4, func() {
			// g = g/(1 + Exp(−g))·u
			s.get(g)
			s.v128Load(0)
			s.tee(gv)
			s.simd(0xe1) // f32x4.neg
			s.set(v)
			s.get(g)
			s.get(gv)
			s.splatF32(1)
			s.expLanes(v, nn, r, p, k, h)
			s.f32x4Add()
			s.simd(0xe7) // f32x4.div
			s.get(u)
			s.v128Load(0)
			s.f32x4Mul()
			s.v128Store(0)
			s.inc(g, 16)
			s.inc(u, 16)
			s.inc(i, 4)
		})
	}
	return []*fn{e, s}
}
