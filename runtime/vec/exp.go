package vec

import "math"

// Exp is e^x in float32 for the fast path's softmax and SiLU, without
// math.Exp's float64 special cases: x is clamped to [−87.33, 88.72] and
// split as n·ln2 + r with |r| ≤ ln2/2 (ln2 in two parts, Cody and Waite,
// so r is exact to float32), e^r is Cephes expf's polynomial, and 2^n goes
// into the exponent bits. Branch-free, so a loop of them pipelines.
//
// Its relative error against e^x is below 2^-21 over the clamped range
// (TestExp checks every 97th float32 of it), against float32's rounding
// of 2^-24. Below −87.33 it returns e^−87.33 ≈ 1.2e-38 instead of a
// smaller or subnormal number, above 88.72 e^88.72 ≈ 3.4e38 instead of a
// larger one or +Inf; NaN gives NaN. It is the same Go code, with no
// fused multiply-adds, on every platform, so it gives the same bits
// everywhere.
func Exp(x float32) float32 {
	var in, out [1]float32
	in[0] = x
	expInto(out[:], in[:], 0, false)
	return out[0]
}

// expInto sets dst[i] = Exp(x[i] − m), or Exp(−x[i]) when neg, returning
// their sum added in order.
func expInto(dst, x []float32, m float32, neg bool) float32 {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375    // ln2's leading bits: n·c1 is exact
		c2    = -2.12194440e-4 // ln2 − c1
		magic = 0x1.8p23       // adding and removing it rounds to an integer
	)
	dst = dst[:len(x)]
	var sum float32
	for i, v := range x {
		if neg {
			v = -v
		} else {
			v -= m
		}
		// The clamp as comparisons, not the min and max builtins: the
		// same value for every v (NaN included, the bounds far from ±0),
		// but Go's wasm port calls runtime.fmin32 and fmax32 for those
		// (with quantizeQ16Go's max, 5% of a profiled wazero guest).
		if v > 88.72 {
			v = 88.72
		}
		if v < -87.33 {
			v = -87.33
		}
		// The float32 conversions keep the compiler from fusing any
		// multiply-add, so every platform rounds alike.
		n := float32(float32(v*log2e)+magic) - magic
		r := v - float32(n*c1)
		r -= float32(n * c2)
		z := float32(r * r)
		p := float32(1.9875691500e-4)
		p = float32(p*r) + 1.3981999507e-3
		p = float32(p*r) + 8.3334519073e-3
		p = float32(p*r) + 4.1665795894e-2
		p = float32(p*r) + 1.6666665459e-1
		p = float32(p*r) + 5.0000001201e-1
		p = float32(float32(p*z)+r) + 1
		// 2^n with n in [−126, 128]: 2^128 overflows float32, so in two
		// factors.
		k := int32(n)
		h := k >> 1
		e := float32(p*math.Float32frombits(uint32(h+127)<<23)) * math.Float32frombits(uint32(k-h+127)<<23)
		dst[i] = e
		sum += e
	}
	return sum
}

// ExpShift sets dst[i] = Exp(x[i] − m) and returns their sum, added in
// order: the body of a softmax whose maximum is m.
func ExpShift(dst, x []float32, m float32) float32 {
	dst = dst[:len(x)]
	// The assembly's Exps have expInto's bits; the sum stays in order.
	if n := expShiftN(dst, x, m); n < len(x) {
		expInto(dst[n:], x[n:], m, false)
	}
	var sum float32
	for _, e := range dst {
		sum += e
	}
	return sum
}

// SiLUMul sets g[i] = SiLU(g[i])·u[i] = g[i]/(1 + Exp(−g[i]))·u[i], the
// gated activation of a SwiGLU block.
func SiLUMul(g, u []float32) {
	u = u[:len(g)]
	n := siluMulN(g, u) // the assembly, with siluMulGo's bits
	siluMulGo(g[n:], u[n:])
}

func siluMulGo(g, u []float32) {
	u = u[:len(g)]
	var e [64]float32
	for o := 0; o < len(g); o += len(e) {
		gs := g[o:min(o+len(e), len(g))]
		expInto(e[:len(gs)], gs, 0, true)
		us := u[o : o+len(gs)]
		for i, v := range gs {
			gs[i] = float32(v/(1+e[i])) * us[i]
		}
	}
}
