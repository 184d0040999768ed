package wasmsimd

// KernelQ16 has the signature (q, d, g, x, nb i32) and quantises nb
// blocks of 32 f32 at x as vec.QuantizeQ16 does (tensor.Q16Rows' layout):
// per block d = max|x|/32767, q = x·(1/d) rounded to nearest even and
// clamped to ±32767 (0 when d is 0), g = d·Σq; bit for bit on finite
// input. |x| is the sign bit cleared, as in the Go code; the maximum of
// non-negative floats does not depend on the order; x·(1/d) is an f32
// product rounded to an integer once (Go rounds its exact float64 value);
// the sum of quants is integer. Where 1/d overflows to +Inf (d the
// smallest subnormals) the products are ±Inf, which the kernel converts
// as the Go code does on wasm, the build it stands in for (amd64's Go
// converts them otherwise).
const KernelQ16 = "q16"

func q16Kernel() *fn {
	f := &fn{name: KernelQ16, params: []valType{i32, i32, i32, i32, i32}}
	const q, d, g, x, nb = 0, 1, 2, 3, 4
	b := f.local(i32)
	db, id := f.local(f32), f.local(f32)
	m, idv, s, t0, t1 := f.local(v128), f.local(v128), f.local(v128), f.local(v128), f.local(v128)
	f.forLoop(b, nb, func() {
		// the block's last byte first: one bounds check for its loads
		f.get(x)
		f.i32Load8U(127)
		f.drop()
		// m = lanewise max of |x| over the eight vectors
		for k := range 8 {
			f.get(x)
			f.v128Load(uint32(16 * k))
			f.v128Splat32(0x7fffffff)
			f.v128And()
			if k > 0 {
				f.get(m)
				f.simd(0xe9) // f32x4.max
			}
			f.set(m)
		}
		// db = max of m's lanes / 32767
		f.get(m)
		f.f32x4ExtractLane(0)
		f.get(m)
		f.f32x4ExtractLane(1)
		f.op(0x97) // f32.max
		f.get(m)
		f.f32x4ExtractLane(2)
		f.get(m)
		f.f32x4ExtractLane(3)
		f.op(0x97)
		f.op(0x97)
		f.f32Const(32767)
		f.op(0x95) // f32.div
		f.tee(db)
		// id = db != 0 ? 1/db : 0
		f.f32Const(1)
		f.get(db)
		f.op(0x95)
		f.f32Const(0)
		f.get(db)
		f.f32Const(0)
		f.op(0x5c) // f32.ne
		f.sel()
		f.tee(id)
		f.f32x4Splat()
		f.set(idv)
		f.v128Zero()
		f.set(s)
		for k := range 4 { // pairs of vectors into eight int16 lanes
			for h := range 2 {
				f.get(x)
				f.v128Load(uint32(32*k + 16*h))
				f.get(idv)
				f.f32x4Mul()
				f.simd(0x6a) // f32x4.nearest
				f.simd(0xf8) // i32x4.trunc_sat_f32x4_s
				// ±Inf (1/d overflowed, d subnormal) as Go's wasm port
				// converts them, through i64.trunc_sat and the low 32
				// bits: +Inf to −1, −Inf to 0 (finite products stay far
				// inside the int32 range)
				f.tee(t1)
				f.get(t1)
				f.v128Splat32(0x7fffffff)
				f.i32x4Eq()
				f.v128Or()
				f.get(t1)
				f.v128Splat32(0x80000000)
				f.i32x4Eq()
				f.simd(0x4f) // v128.andnot
				f.v128Splat32(32767)
				f.simd(0xb6)              // i32x4.min_s
				f.v128Splat32(0xffff8001) // −32767
				f.simd(0xb8)              // i32x4.max_s
				if h == 0 {
					f.tee(t0)
				} else {
					f.tee(m)
				}
				f.get(s)
				f.i32x4Add()
				f.set(s)
			}
			f.get(q)
			f.get(t0)
			f.get(m)
			f.simd(0x85) // i16x8.narrow_i32x4_s
			f.v128Store(uint32(16 * k))
		}
		// d[b] = db; g[b] = db·float32(Σq)
		f.get(d)
		f.get(db)
		f.f32Store(0)
		f.get(g)
		f.get(db)
		f.get(s)
		f.simd(0x1b) // i32x4.extract_lane 0
		f.op(0x00)
		f.get(s)
		f.simd(0x1b)
		f.op(0x01)
		f.i32Add()
		f.get(s)
		f.simd(0x1b)
		f.op(0x02)
		f.get(s)
		f.simd(0x1b)
		f.op(0x03)
		f.i32Add()
		f.i32Add()
		f.op(0xb2) // f32.convert_i32_s
		f.f32Mul()
		f.f32Store(0)
		f.inc(x, 128)
		f.inc(q, 64)
		f.inc(d, 4)
		f.inc(g, 4)
	})
	return f
}
