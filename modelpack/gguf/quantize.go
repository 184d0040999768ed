package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/moderuntime/mode/runtime/tensor"
)

// Quantize encodes values in type t: F32, F16, BF16, or Q8_0 and Q4_0
// with the semantics of llama.cpp's reference quantize_row_q8_0_ref and
// quantize_row_q4_0_ref, so that files written here match what
// llama.cpp's own tools write; MXFP4 as our pack's quantiser does (see
// quantMXFP4); Q4_K with q4_k's fit in 6-bit fields (tensor.GGMLQ4_K),
// not llama.cpp's weighted one: any valid Q4_K serves to give both
// runtimes the same weights. len(values) must be a whole number of
// blocks (of rows, for Q4_K); quantised types reject NaN and Inf.
func Quantize(t GGMLType, values []float32) ([]byte, error) {
	switch t {
	case TypeF32:
		b := make([]byte, 4*len(values))
		for i, x := range values {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return b, nil
	case TypeF16, TypeBF16:
		conv := tensor.F32ToF16
		if t == TypeBF16 {
			conv = tensor.F32ToBF16
		}
		b := make([]byte, 2*len(values))
		for i, x := range values {
			binary.LittleEndian.PutUint16(b[2*i:], conv(x))
		}
		return b, nil
	case TypeQ4_K:
		b, err := tensor.GGMLQ4_K(values)
		if err != nil {
			return nil, fmt.Errorf("quantising to %s: %w", t, err)
		}
		return b, nil
	case TypeQ8_0, TypeQ4_0, TypeMXFP4:
	default:
		return nil, fmt.Errorf("quantising to %s is not supported (f32, f16, bf16, q8_0, q4_0, q4_k, mxfp4)", t)
	}
	if len(values)%32 != 0 {
		return nil, fmt.Errorf("%d values are not a whole number of %s blocks of 32", len(values), t)
	}
	for i, x := range values {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("element %d is %v, which %s cannot encode", i, x, t)
		}
	}
	if t == TypeMXFP4 {
		return quantMXFP4(values)
	}
	bb := t.BlockBytes()
	out := make([]byte, len(values)/32*bb)
	for b := range len(values) / 32 {
		x, dst := values[32*b:32*b+32], out[bb*b:bb*b+bb]
		if t == TypeQ8_0 {
			quantQ8_0(dst, x)
		} else {
			quantQ4_0(dst, x)
		}
	}
	return out, nil
}

// quantQ8_0: d = max|x|/127; q = round(x/d) (half away from zero, as C's
// roundf). The f16 d is stored but the f32 d is used to quantise, as in
// ggml.
func quantQ8_0(dst []byte, x []float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, tensor.F32ToF16(d))
	for j, v := range x {
		dst[2+j] = byte(int8(math.Round(float64(v * id))))
	}
}

// quantQ4_0: d = m/-8 where m is the element of largest magnitude (the
// first such, keeping its sign), so that m itself maps to q = 0; q =
// min(15, trunc(x/d + 8.5)).
func quantQ4_0(dst []byte, x []float32) {
	var amax, m float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax {
			amax, m = a, v
		}
	}
	d := m / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, tensor.F32ToF16(d))
	q := func(v float32) uint8 {
		// float32() rounds the product on its own, as the reference does,
		// rather than letting it fuse with the addition.
		return uint8(min(15, max(0, int(float32(v*id)+8.5)))) // x/d+8.5 lies in [0.5, 16.5]
	}
	for j := range 16 {
		dst[2+j] = q(x[j]) | q(x[16+j])<<4
	}
}
