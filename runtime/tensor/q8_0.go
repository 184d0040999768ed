package tensor

import "math"

// quantizeQ8_0 quantises blocks [lo, hi) of x into a, as llama.cpp's
// quantize_row_q8_0_ref: scale = amax/127, q = round(x/scale).
func quantizeQ8_0(a blockArrays, x []float32, lo, hi int) {
	for b := lo; b < hi; b++ {
		xb := (*[qk]float32)(x[qk*b:])
		q := (*[qk]byte)(a.qs[qk*b:])
		var amax float32
		for _, v := range xb {
			amax = max(amax, abs32(v))
		}
		// Quantise against the unrounded scale, as llama.cpp does; the f16
		// rounding of the stored scale is far below a quantisation step.
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putF16(a.scales, b, d)
		for j, v := range xb {
			q[j] = byte(int8(clampRound(v*id, -127, 127)))
		}
	}
}

// dequantQ8_0 decodes one row: dst holds len(dst)/32 blocks whose scales
// and quants start at scales and qs.
func dequantQ8_0(dst []float32, scales, qs []byte) {
	for b := range len(dst) / qk {
		d := f16At(scales, b)
		q := (*[qk]byte)(qs[qk*b:])
		o := (*[qk]float32)(dst[qk*b:])
		for j, v := range q {
			o[j] = float32(d * float32(int8(v)))
		}
	}
}

// dotQ8_0 is Σ w·x for one row of blocks: per block, scale × Σ q·x, with
// the block's first and second halves summed separately (two dependency
// chains) and then added.
func dotQ8_0(scales, qs []byte, x []float32) float32 {
	var acc float32
	for b := range len(x) / qk {
		xb := (*[qk]float32)(x[qk*b:])
		q := (*[qk]byte)(qs[qk*b:])
		var lo, hi float32
		for j := range qk / 2 {
			lo += float32(float32(int8(q[j])) * xb[j])
			hi += float32(float32(int8(q[j+qk/2])) * xb[j+qk/2])
		}
		acc += float32(f16At(scales, b) * float32(lo+hi))
	}
	return acc
}

// dot4Q8_0 is dotQ8_0 for four consecutive rows at once (scales and qs
// start at the first), sharing the loads of x; each row's sum is computed
// in exactly dotQ8_0's order.
func dot4Q8_0(scales, qs []byte, x []float32) (a0, a1, a2, a3 float32) {
	nb := len(x) / qk
	for b := range nb {
		xb := (*[qk]float32)(x[qk*b:])
		q0 := (*[qk]byte)(qs[qk*b:])
		q1 := (*[qk]byte)(qs[qk*(nb+b):])
		q2 := (*[qk]byte)(qs[qk*(2*nb+b):])
		q3 := (*[qk]byte)(qs[qk*(3*nb+b):])
		var l0, l1, l2, l3, h0, h1, h2, h3 float32
		for j := range qk / 2 {
			v, w := xb[j], xb[j+qk/2]
			l0 += float32(float32(int8(q0[j])) * v)
			l1 += float32(float32(int8(q1[j])) * v)
			l2 += float32(float32(int8(q2[j])) * v)
			l3 += float32(float32(int8(q3[j])) * v)
			h0 += float32(float32(int8(q0[j+qk/2])) * w)
			h1 += float32(float32(int8(q1[j+qk/2])) * w)
			h2 += float32(float32(int8(q2[j+qk/2])) * w)
			h3 += float32(float32(int8(q3[j+qk/2])) * w)
		}
		a0 += float32(f16At(scales, b) * float32(l0+h0))
		a1 += float32(f16At(scales, nb+b) * float32(l1+h1))
		a2 += float32(f16At(scales, 2*nb+b) * float32(l2+h2))
		a3 += float32(f16At(scales, 3*nb+b) * float32(l3+h3))
	}
	return a0, a1, a2, a3
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// clampRound rounds v to the nearest integer, halves away from zero (C's
// roundf, which llama.cpp's quantisers use), and clamps it to [lo, hi].
func clampRound(v float32, lo, hi int) int {
	r := int(math.Round(float64(v)))
	return min(max(r, lo), hi)
}
