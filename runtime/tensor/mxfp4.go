package tensor

import (
	"fmt"
	"math"
)

// mxfp4 (the OCP Microscaling format's MXFP4, as gpt-oss's checkpoints
// store their experts), B = 32:
//
//	scales  nblocks × u8 e8m0, zero-padded to a multiple of 4 bytes
//	qs      nblocks × 16 bytes: byte qs[16b+j] holds element 2j of block b
//	        in its low nibble and element 2j+1 in its high nibble (the
//	        order of the checkpoints' *_blocks tensors, so importing them
//	        copies bytes)
//
//	value(b, j) = e2m1(nibble) × 2^(scales[b] − 127)
//	size = align4(nblocks) + 16·nblocks
//
// e2m1 is a sign bit (8) over the magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6
// (FP4_VALUES in HF transformers' integrations/mxfp4.py). Scale 0xFF is
// e8m0's NaN, and 253 and 254 put 6·scale past float32's range: Check
// rejects a tensor that has any of them.

// e2m1 is the value of each FP4 code; code 8 is −0.
var e2m1 = [16]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6, float32(math.Copysign(0, -1)), -0.5, -1, -1.5, -2, -3, -4, -6}

// e2m1x2 is twice each code's value: the integers the fast kernels multiply.
var e2m1x2 = [16]int32{0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12}

// E8M0 is the scale 2^(e−127) an e8m0 byte stands for (e < 255).
func E8M0(e uint8) float32 {
	if e == 0 {
		return math.Float32frombits(0x00400000) // 2^-127, a subnormal
	}
	return math.Float32frombits(uint32(e) << 23)
}

// checkMXFP4 rejects the NaN scale, and scales 2^126 and 2^127, whose
// blocks' larger values (6·2^126) pass float32's range: no real weight is
// near it, and the kernels compute in float32.
func checkMXFP4(t *Tensor) error {
	nb := t.Elems() / qk
	for b, s := range t.Data[:nb] {
		switch {
		case s == 0xFF:
			return fmt.Errorf("tensor %s: mxfp4 block %d (row %d) has scale 0xFF, e8m0's NaN", t.Name, b, b/(t.Cols()/qk))
		case s > maxE8M0:
			return fmt.Errorf("tensor %s: mxfp4 block %d (row %d) has scale 2^%d, whose values pass float32's range", t.Name, b, b/(t.Cols()/qk), int(s)-127)
		}
	}
	return nil
}

// maxE8M0 is the largest scale whose block values (at most 6·2^125 ≈
// 2.6e38) stay finite in float32.
const maxE8M0 = 252

func dequantMXFP4(dst []float32, scales, qs []byte) {
	for b := range len(dst) / qk {
		d := E8M0(scales[b])
		q := (*[qk / 2]byte)(qs[qk/2*b:])
		o := (*[qk]float32)(dst[qk*b:])
		for j, v := range q {
			o[2*j] = e2m1[v&15] * d
			o[2*j+1] = e2m1[v>>4] * d
		}
	}
}

// dotMXFP4 is Σ w·x for one row of blocks: per block, scale × Σ e2m1·x in
// element order. e2m1 values times a power of two are exact in f32, so the
// only rounding is the sums'.
func dotMXFP4(scales, qs []byte, x []float32) float32 {
	var acc float32
	for b := range len(x) / qk {
		xb := (*[qk]float32)(x[qk*b:])
		q := (*[qk / 2]byte)(qs[qk/2*b:])
		var s float32
		for j, v := range q {
			s += float32(e2m1[v&15] * xb[2*j])
			s += float32(e2m1[v>>4] * xb[2*j+1])
		}
		acc += float32(E8M0(scales[b]) * s)
	}
	return acc
}

// quantizeMXFP4 quantises blocks [lo, hi) of x as the OCP MX spec does:
// the shared exponent is floor(log2(amax)) − 2 (e2m1's largest exponent),
// and each element rounds to the nearest e2m1 value, saturating at ±6.
func quantizeMXFP4(a blockArrays, x []float32, lo, hi int) {
	for b := lo; b < hi; b++ {
		xb := (*[qk]float32)(x[qk*b:])
		var amax float32
		for _, v := range xb {
			amax = max(amax, abs32(v))
		}
		e := 0
		if amax > 0 {
			_, exp := math.Frexp(float64(amax)) // amax = f·2^exp, f in [0.5, 1)
			e = exp - 1 - 2 + 127
		}
		e = min(max(e, 0), maxE8M0)
		a.scales[b] = uint8(e)
		id := 1 / E8M0(uint8(e))
		q := a.qs[qk/2*b : qk/2*(b+1)]
		for j := range q {
			q[j] = nearestE2M1(xb[2*j]*id) | nearestE2M1(xb[2*j+1]*id)<<4
		}
	}
}

// nearestE2M1 is the code of the e2m1 value nearest v (the smaller
// magnitude on a tie), saturating at ±6.
func nearestE2M1(v float32) uint8 {
	var sign uint8
	if v < 0 || (v == 0 && math.Signbit(float64(v))) {
		sign, v = 8, -v
	}
	best := uint8(0)
	for c := uint8(1); c < 8; c++ {
		if abs32(e2m1[c]-v) < abs32(e2m1[best]-v) {
			best = c
		}
	}
	return sign | best
}

// MXFP4FromBlocks builds an mxfp4 [rows, cols] matrix from the two arrays a
// checkpoint stores: scales (one e8m0 byte per block of 32, row by row) and
// blocks (16 bytes per block, element 2j in the low nibble of byte j). It
// copies them and checks the scales.
func MXFP4FromBlocks(name string, rows, cols int, scales, blocks []byte) (*Tensor, error) {
	size, err := ByteSize(MXFP4, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	nb := rows * cols / qk
	if len(scales) != nb || len(blocks) != qk/2*nb {
		return nil, fmt.Errorf("tensor %s: mxfp4 [%d, %d] needs %d scales and %d block bytes, got %d and %d", name, rows, cols, nb, qk/2*nb, len(scales), len(blocks))
	}
	t := &Tensor{Name: name, DType: MXFP4, Shape: []int{rows, cols}, Data: make([]byte, size)}
	a := splitArrays(MXFP4, t.Data, nb)
	copy(a.scales, scales)
	copy(a.qs, blocks)
	if err := t.Check(); err != nil {
		return nil, err
	}
	return t, nil
}
