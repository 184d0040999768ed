package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/moderuntime/mode/runtime/tensor"
)

// DequantizeF32 decodes a tensor to float32 in element order (Dims[0]
// fastest, i.e. row-major in Shape order). It handles F32, F16, BF16, Q4_0,
// Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K and MXFP4, computing
// what ggml's dequantize_row_* functions compute.
func DequantizeF32(raw RawTensor) ([]float32, error) {
	n, err := raw.check()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	dec, ok := dequantizers(raw.Type)
	if !ok {
		return nil, fmt.Errorf("gguf: tensor %q: dequantising %s is not supported", raw.Name, raw.Type)
	}
	out := make([]float32, n)
	bb, be := raw.Type.BlockBytes(), raw.Type.BlockElems()
	for b := range n / be {
		dec(out[b*be:(b+1)*be], raw.Data[b*bb:(b+1)*bb])
	}
	return out, nil
}

// blockDecoder decodes one block of src into dst (one block's elements).
type blockDecoder func(dst []float32, src []byte)

func dequantizers(t GGMLType) (blockDecoder, bool) {
	switch t {
	case TypeF32:
		return func(dst []float32, src []byte) { dst[0] = math.Float32frombits(binary.LittleEndian.Uint32(src)) }, true
	case TypeF16:
		return func(dst []float32, src []byte) { dst[0] = half(src) }, true
	case TypeBF16:
		return func(dst []float32, src []byte) {
			dst[0] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src)) << 16)
		}, true
	case TypeQ4_0:
		return dequantQ4_0, true
	case TypeMXFP4:
		return dequantMXFP4, true
	case TypeQ4_1:
		return dequantQ4_1, true
	case TypeQ5_0:
		return dequantQ5_0, true
	case TypeQ5_1:
		return dequantQ5_1, true
	case TypeQ8_0:
		return dequantQ8_0, true
	case TypeQ2_K:
		return dequantQ2_K, true
	case TypeQ3_K:
		return dequantQ3_K, true
	case TypeQ4_K:
		return dequantQ4_K, true
	case TypeQ5_K:
		return dequantQ5_K, true
	case TypeQ6_K:
		return dequantQ6_K, true
	case TypeQ8_K:
		return dequantQ8_K, true
	}
	return nil, false
}

// half decodes the little-endian IEEE binary16 at b[0:2].
func half(b []byte) float32 { return tensor.F16ToF32(binary.LittleEndian.Uint16(b)) }

// Q4_0: f16 d, then 16 bytes; byte j holds element j in its low nibble
// and element j+16 in its high nibble; value = (q-8)*d.
func dequantQ4_0(dst []float32, b []byte) {
	d, qs := half(b), b[2:18]
	for j := range 16 {
		dst[j] = float32(int(qs[j]&0xF)-8) * d
		dst[j+16] = float32(int(qs[j]>>4)-8) * d
	}
}

// Q4_1: f16 d, f16 m, then nibbles as Q4_0; value = q*d + m.
func dequantQ4_1(dst []float32, b []byte) {
	d, m, qs := half(b), half(b[2:]), b[4:20]
	for j := range 16 {
		dst[j] = float32(qs[j]&0xF)*d + m
		dst[j+16] = float32(qs[j]>>4)*d + m
	}
}

// Q5_0: f16 d, u32 qh holding the fifth bit of element j at bit j, then
// nibbles as Q4_0; value = (q-16)*d.
func dequantQ5_0(dst []float32, b []byte) {
	d, qh, qs := half(b), binary.LittleEndian.Uint32(b[2:]), b[6:22]
	for j := range 16 {
		lo := int(qs[j]&0xF) | int(qh>>j&1)<<4
		hi := int(qs[j]>>4) | int(qh>>(j+16)&1)<<4
		dst[j] = float32(lo-16) * d
		dst[j+16] = float32(hi-16) * d
	}
}

// Q5_1: f16 d, f16 m, u32 qh, nibbles; value = q*d + m.
func dequantQ5_1(dst []float32, b []byte) {
	d, m, qh, qs := half(b), half(b[2:]), binary.LittleEndian.Uint32(b[4:]), b[8:24]
	for j := range 16 {
		lo := qs[j]&0xF | uint8(qh>>j&1)<<4
		hi := qs[j]>>4 | uint8(qh>>(j+16)&1)<<4
		dst[j] = float32(lo)*d + m
		dst[j+16] = float32(hi)*d + m
	}
}

// Q8_0: f16 d, then 32 int8 in element order; value = q*d.
func dequantQ8_0(dst []float32, b []byte) {
	d := half(b)
	for j := range 32 {
		dst[j] = float32(int8(b[2+j])) * d
	}
}
