package vec

import "math"

// Max is the builtin max(x, y) written out as the runtime's fmax, the
// same result (NaN if either is, +0 over −0; bit for bit but for a NaN's
// payload): Go's wasm port calls runtime.fmax32 for the builtin, a call
// per attention score (1–2% of a profiled wazero guest's decode), where
// this inlines.
func Max(x, y float32) float32 {
	if y != y || y > x {
		return y
	}
	if x != x || x > y || x != 0 {
		return x
	}
	return math.Float32frombits(math.Float32bits(x) & math.Float32bits(y)) // ±0: −0 only if both are
}

// DivMax divides every x[i] by s, in place, and returns the largest
// quotient as Max finds it: NaN if any quotient is NaN, +0 over −0. x
// must not be empty. Each quotient is the one division rounds, whatever
// the kernel: attention's scores divided by √d, then their maximum, the
// first steps of a softmax.
func DivMax(x []float32, s float32) float32 {
	if len(x) == 0 {
		panic("vec: DivMax of no values")
	}
	n, m, nan := divMaxN(x, s) // the vectorised part, and its maximum
	if n == 0 {
		x[0] /= s
		m, n = x[0], 1
	}
	for i := n; i < len(x); i++ {
		x[i] /= s
		m = Max(m, x[i])
	}
	if nan {
		return float32(math.NaN())
	}
	if m == 0 {
		// The kernels' maximum may be −0 where a +0 is among the values
		// (a lane's max of ±0 keeps either): settle the sign here, rarely.
		for _, v := range x {
			m = Max(m, v)
		}
	}
	return m
}

// Scale multiplies every x[i] by c, in place.
func Scale(x []float32, c float32) {
	n := scaleN(x, c)
	for i := n; i < len(x); i++ {
		x[i] *= c
	}
}
