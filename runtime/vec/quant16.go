package vec

import "math"

// QuantizeQ16 quantises len(d) blocks of 32 values of x to int16, as
// tensor.Q16Rows describes: per block, d = max|x|/32767, q = x·(1/d)
// rounded to nearest even and clamped to ±32767 (0 when d is 0), and
// g = d·Σq. The assembly computes the same IEEE operations, so the two
// agree bit for bit on finite input.
func QuantizeQ16(q []int16, d, g, x []float32) {
	n := len(d)
	q, g, x = q[:BlockSize*n], g[:n], x[:BlockSize*n]
	if n == 0 {
		return
	}
	quantizeQ16(q, d, g, x)
}

func quantizeQ16Go(q []int16, d, g, x []float32) {
	for b := range d {
		xb := (*[BlockSize]float32)(x[BlockSize*b:])
		qb := (*[BlockSize]int16)(q[BlockSize*b:])
		var amax float32
		for _, v := range xb {
			// max(amax, a) as comparisons (a NaN sticks, as with the
			// builtin; a is never −0): Go's wasm port calls
			// runtime.fmax32 for the builtin.
			if a := math.Float32frombits(math.Float32bits(v) &^ (1 << 31)); a > amax || a != a {
				amax = a
			}
		}
		db := amax / 32767
		var id float32
		if db != 0 {
			id = 1 / db
		}
		var s int32
		for j, v := range xb {
			// v·id rounds to at most 32767 in magnitude, barring the last
			// bit of 1/d; the clamp makes sure of it (the dot kernels rely
			// on −32768 never occurring).
			n := int32(math.RoundToEven(float64(v * id)))
			n = min(max(n, -32767), 32767)
			qb[j] = int16(n)
			s += n
		}
		d[b], g[b] = db, db*float32(s)
	}
}
