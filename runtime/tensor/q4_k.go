package tensor

import "fmt"

// quantizeQ4_K quantises super-blocks [lo, hi) of x into a (see the q4_k
// layout in quant.go).
func quantizeQ4_K(a blockArrays, x []float32, lo, hi int) { quantizeQ4_KCodes(a, x, lo, hi, 255) }

// quantizeQ4_KCodes is quantizeQ4_K with sub-scales and sub-minimums of at
// most top units: 255 for q4_k's bytes, 63 for ggml's 6-bit fields.
func quantizeQ4_KCodes(a blockArrays, x []float32, lo, hi, top int) {
	var scales, mins [qkK / qk]float32
	for b := lo; b < hi; b++ {
		xb := (*[qkK]float32)(x[qkK*b:])
		var maxScale, maxMin float32
		for s := range scales {
			scales[s], mins[s] = fitSubBlock((*[qk]float32)(xb[qk*s:]))
			maxScale, maxMin = max(maxScale, scales[s]), max(maxMin, mins[s])
		}
		d := putF16Unit(a.scales, 2*b, maxScale, top)
		dmin := putF16Unit(a.scales, 2*b+1, maxMin, top)
		sc := (*[qkK / qk]byte)(a.sub[qkK/qk*b:])
		mn := (*[qkK / qk]byte)(a.mins[qkK/qk*b:])
		q := (*[qkK / 2]byte)(a.qs[qkK/2*b:])
		for s := range scales {
			sc[s] = byte(steps(scales[s], d, top))
			mn[s] = byte(steps(mins[s], dmin, top))
			// Requantise against the scale and min actually stored.
			ds := float32(d * float32(sc[s]))
			ms := float32(dmin * float32(mn[s]))
			var id float32
			if ds != 0 {
				id = 1 / ds
			}
			xs := (*[qk]float32)(xb[qk*s:])
			for j := range qk / 2 {
				l0 := clampRound((xs[j]+ms)*id, 0, 15)
				l1 := clampRound((xs[j+qk/2]+ms)*id, 0, 15)
				q[qk/2*s+j] = byte(l0 | l1<<4)
			}
		}
	}
}

// steps is v/unit rounded to at most top, 0 when unit is 0.
func steps(v, unit float32, top int) int {
	if unit == 0 {
		return 0
	}
	return clampRound(v/unit, 0, top)
}

// putF16Unit stores max/top as f16 value i of b and returns the stored
// value: the unit of a sub-scale or sub-min of at most top units. It
// rounds to nearest unless that would leave max more than top+½ units
// (its code would clamp), which happens only where f16 is coarse:
// subnormal units, from tiny weights.
func putF16Unit(b []byte, i int, max float32, top int) float32 {
	h := F32ToF16(max / float32(top))
	if F16ToF32(h)*(float32(top)+0.5) < max {
		h++ // the next larger f16 for positive values, across the subnormal boundary too
	}
	b[2*i], b[2*i+1] = byte(h), byte(h>>8)
	return F16ToF32(h)
}

// GGMLQ4_K quantises rows of x (len(x) a multiple of 256, each row whole
// super-blocks) to ggml's Q4_K super-blocks: q4_k's fit, with the
// sub-scales and minimums in 63 units of d and dmin so that they fit
// ggml's 6-bit fields, packed as Q4_KFromGGML reads them. It refuses NaN,
// Inf and magnitudes Quantize refuses.
func GGMLQ4_K(x []float32) ([]byte, error) {
	if len(x)%qkK != 0 {
		return nil, fmt.Errorf("%d values are not a whole number of Q4_K super-blocks of %d", len(x), qkK)
	}
	if err := checkQuantizable("Q4_K", x); err != nil {
		return nil, err
	}
	nb := len(x) / qkK
	data := make([]byte, 148*nb)
	a := splitArrays(Q4_K, data, nb)
	quantizeQ4_KCodes(a, x, 0, nb, 63)
	out := make([]byte, ggmlQ4_KBytes*nb)
	for b := range nb {
		blk := (*[ggmlQ4_KBytes]byte)(out[ggmlQ4_KBytes*b:])
		copy(blk[:4], a.scales[4*b:])
		sc := (*[qkK / qk]byte)(a.sub[qkK/qk*b:])
		mn := (*[qkK / qk]byte)(a.mins[qkK/qk*b:])
		sm := (*[12]byte)(blk[4:])
		for j := range 4 {
			sm[j] = sc[j] | sc[j+4]>>4<<6
			sm[j+4] = mn[j] | mn[j+4]>>4<<6
			sm[j+8] = sc[j+4]&15 | mn[j+4]<<4
		}
		q := (*[qkK / 2]byte)(a.qs[qkK/2*b:])
		dst := (*[qkK / 2]byte)(blk[16:])
		for s := range qkK / qk {
			pair := dst[qk*(s/2) : qk*(s/2)+qk] // sub-blocks s&^1 (low nibbles) and s|1
			shift := 4 * (s % 2)
			for j := range qk / 2 {
				v := q[qk/2*s+j]
				pair[j] |= v & 15 << shift
				pair[j+qk/2] |= v >> 4 << shift
			}
		}
	}
	return out, nil
}

// fitSubBlock fits x ≈ scale·l − min with l in 0..15, scale ≥ 0 and
// min = −offset ≥ 0 (the grid always reaches down to 0 or below, as
// llama.cpp's k-quants). It starts from the grid spanning [min(0, min x),
// max x], then tries 21 nearby grid spacings, refits scale and offset to
// each one's levels by least squares and keeps the fit with the smallest
// squared error: llama.cpp's make_qkx2_quants with unit weights, so it
// minimises the error RMSError measures.
func fitSubBlock(x *[qk]float32) (scale, mn float32) {
	lo, hi := x[0], x[0]
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	lo = min(lo, 0)
	if hi == lo {
		return 0, -lo
	}
	const nmax = 15
	var f fit
	for _, v := range x {
		f.sumX += float64(v)
		f.sumX2 += float64(v) * float64(v)
	}
	span := hi - lo
	f.levels(x, nmax/span, lo)
	bestScale, bestOff := float64(span)/nmax, float64(lo)
	bestErr := f.err(bestScale, bestOff)
	const rmin, rdelta, nstep = -1, 0.1, 20
	for is := 0; is <= nstep; is++ {
		f.levels(x, (rmin+rdelta*float32(is)+nmax)/span, lo)
		D := qk*f.sumL2 - f.sumL*f.sumL
		if D <= 0 {
			continue
		}
		s := (qk*f.sumXL - f.sumX*f.sumL) / D
		off := (f.sumL2*f.sumX - f.sumL*f.sumXL) / D
		if off > 0 {
			off, s = 0, f.sumXL/f.sumL2
		}
		if s < 0 {
			continue
		}
		if e := f.err(s, off); e < bestErr {
			bestErr, bestScale, bestOff = e, s, off
		}
	}
	return float32(bestScale), float32(-bestOff)
}

// fit holds the sums a least-squares fit of x on one grid's levels needs.
type fit struct {
	sumX, sumX2        float64 // of x alone
	sumL, sumL2, sumXL float64 // of the current levels l
}

// levels quantises x to the grid lo + l/iscale, l in 0..15, and sets the
// level sums. x − lo ≥ 0, so adding ½ and truncating rounds to nearest.
func (f *fit) levels(x *[qk]float32, iscale, lo float32) {
	f.sumL, f.sumL2, f.sumXL = 0, 0, 0
	for _, v := range x {
		l := float64(min(int(iscale*(v-lo)+0.5), 15))
		f.sumL += l
		f.sumL2 += l * l
		f.sumXL += l * float64(v)
	}
}

// err is Σ (scale·l + off − x)² over the current levels, expanded into
// the sums so it costs no second pass over x.
func (f *fit) err(scale, off float64) float64 {
	return scale*scale*f.sumL2 + 2*scale*off*f.sumL + qk*off*off -
		2*scale*f.sumXL - 2*off*f.sumX + f.sumX2
}

// dequantQ4_K decodes one row of len(dst)/256 super-blocks whose arrays
// start at dm, sub, mins and qs.
func dequantQ4_K(dst []float32, dm, sub, mins, qs []byte) {
	for b := range len(dst) / qkK {
		d, dmin := f16At(dm, 2*b), f16At(dm, 2*b+1)
		sc := (*[qkK / qk]byte)(sub[qkK/qk*b:])
		mn := (*[qkK / qk]byte)(mins[qkK/qk*b:])
		q := (*[qkK / 2]byte)(qs[qkK/2*b:])
		for s := range qkK / qk {
			ds := float32(d * float32(sc[s]))
			ms := float32(dmin * float32(mn[s]))
			qq := (*[qk / 2]byte)(q[qk/2*s:])
			o := (*[qk]float32)(dst[qkK*b+qk*s:])
			for j, v := range qq {
				o[j] = float32(ds*float32(v&15)) - ms
				o[j+qk/2] = float32(ds*float32(v>>4)) - ms
			}
		}
	}
}

// dotQ4_K is Σ w·x for one row of super-blocks. Per super-block it sums
// sc·Σ q·x and m·Σ x over the sub-blocks, then applies d and dmin once;
// xsum holds Σ x over each 32 elements of x (see BlockSums). The low- and
// high-nibble halves of each sub-block are summed separately and then added.
func dotQ4_K(dm, sub, mins, qs []byte, x, xsum []float32) float32 {
	var acc float32
	for b := range len(x) / qkK {
		xb := (*[qkK]float32)(x[qkK*b:])
		xs := (*[qkK / qk]float32)(xsum[qkK/qk*b:])
		sc := (*[qkK / qk]byte)(sub[qkK/qk*b:])
		mn := (*[qkK / qk]byte)(mins[qkK/qk*b:])
		q := (*[qkK / 2]byte)(qs[qkK/2*b:])
		var sq, sm float32
		for s := range qkK / qk {
			qq := (*[qk / 2]byte)(q[qk/2*s:])
			xx := (*[qk]float32)(xb[qk*s:])
			var lo, hi float32
			for j, v := range qq {
				lo += float32(float32(v&15) * xx[j])
				hi += float32(float32(v>>4) * xx[j+qk/2])
			}
			sq += float32(float32(sc[s]) * float32(lo+hi))
			sm += float32(float32(mn[s]) * xs[s])
		}
		acc += float32(f16At(dm, 2*b)*sq) - float32(f16At(dm, 2*b+1)*sm)
	}
	return acc
}

// dot4Q4_K is dotQ4_K for four consecutive rows at once (the arrays start
// at the first), each row summed in exactly dotQ4_K's order.
func dot4Q4_K(dm, sub, mins, qs []byte, x, xsum []float32) (a0, a1, a2, a3 float32) {
	const nsub = qkK / qk
	nb := len(x) / qkK
	for b := range nb {
		xb := (*[qkK]float32)(x[qkK*b:])
		xs := (*[nsub]float32)(xsum[nsub*b:])
		q0 := (*[qkK / 2]byte)(qs[qkK/2*b:])
		q1 := (*[qkK / 2]byte)(qs[qkK/2*(nb+b):])
		q2 := (*[qkK / 2]byte)(qs[qkK/2*(2*nb+b):])
		q3 := (*[qkK / 2]byte)(qs[qkK/2*(3*nb+b):])
		var sq0, sq1, sq2, sq3, sm0, sm1, sm2, sm3 float32
		for s := range nsub {
			xx := (*[qk]float32)(xb[qk*s:])
			r0 := (*[qk / 2]byte)(q0[qk/2*s:])
			r1 := (*[qk / 2]byte)(q1[qk/2*s:])
			r2 := (*[qk / 2]byte)(q2[qk/2*s:])
			r3 := (*[qk / 2]byte)(q3[qk/2*s:])
			var l0, l1, l2, l3, h0, h1, h2, h3 float32
			for j := range qk / 2 {
				v, w := xx[j], xx[j+qk/2]
				l0 += float32(float32(r0[j]&15) * v)
				l1 += float32(float32(r1[j]&15) * v)
				l2 += float32(float32(r2[j]&15) * v)
				l3 += float32(float32(r3[j]&15) * v)
				h0 += float32(float32(r0[j]>>4) * w)
				h1 += float32(float32(r1[j]>>4) * w)
				h2 += float32(float32(r2[j]>>4) * w)
				h3 += float32(float32(r3[j]>>4) * w)
			}
			sq0 += float32(float32(sub[nsub*b+s]) * float32(l0+h0))
			sq1 += float32(float32(sub[nsub*(nb+b)+s]) * float32(l1+h1))
			sq2 += float32(float32(sub[nsub*(2*nb+b)+s]) * float32(l2+h2))
			sq3 += float32(float32(sub[nsub*(3*nb+b)+s]) * float32(l3+h3))
			sm0 += float32(float32(mins[nsub*b+s]) * xs[s])
			sm1 += float32(float32(mins[nsub*(nb+b)+s]) * xs[s])
			sm2 += float32(float32(mins[nsub*(2*nb+b)+s]) * xs[s])
			sm3 += float32(float32(mins[nsub*(3*nb+b)+s]) * xs[s])
		}
		a0 += float32(f16At(dm, 2*b)*sq0) - float32(f16At(dm, 2*b+1)*sm0)
		a1 += float32(f16At(dm, 2*(nb+b))*sq1) - float32(f16At(dm, 2*(nb+b)+1)*sm1)
		a2 += float32(f16At(dm, 2*(2*nb+b))*sq2) - float32(f16At(dm, 2*(2*nb+b)+1)*sm2)
		a3 += float32(f16At(dm, 2*(3*nb+b))*sq3) - float32(f16At(dm, 2*(3*nb+b)+1)*sm3)
	}
	return a0, a1, a2, a3
}
