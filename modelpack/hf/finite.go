package hf

import (
	"encoding/binary"

	"github.com/moderuntime/mode/runtime/tensor"
)

// firstNonFinite finds the first NaN or infinity by its exponent bits,
// without decoding the tensor to float32: weights can be gigabytes.
func firstNonFinite(t *tensor.Tensor) (index int, value float32, found bool) {
	switch t.DType {
	case tensor.F32:
		for i := 0; i+4 <= len(t.Data); i += 4 {
			if b := binary.LittleEndian.Uint32(t.Data[i:]); b&0x7f800000 == 0x7f800000 {
				return i / 4, decode(t, i/4), true
			}
		}
	case tensor.F16:
		for i := 0; i+2 <= len(t.Data); i += 2 {
			if h := binary.LittleEndian.Uint16(t.Data[i:]); h&0x7c00 == 0x7c00 {
				return i / 2, decode(t, i/2), true
			}
		}
	case tensor.BF16:
		for i := 0; i+2 <= len(t.Data); i += 2 {
			if h := binary.LittleEndian.Uint16(t.Data[i:]); h&0x7f80 == 0x7f80 {
				return i / 2, decode(t, i/2), true
			}
		}
	}
	return 0, 0, false
}

// decode returns element i as float32, for error messages.
func decode(t *tensor.Tensor, i int) float32 {
	one := &tensor.Tensor{DType: t.DType, Shape: []int{1}, Data: t.Data[i*t.DType.ElemSize():][:t.DType.ElemSize()]}
	v, err := one.Float32s()
	if err != nil {
		return 0
	}
	return v[0]
}

// allZero reports whether every element is +0 or -0.
func allZero(t *tensor.Tensor) bool {
	size := t.DType.ElemSize()
	if size == 0 {
		return false
	}
	sign := uint32(1) << (8*size - 1)
	for i := 0; i+size <= len(t.Data); i += size {
		var v uint32
		for j := range size {
			v |= uint32(t.Data[i+j]) << (8 * j)
		}
		if v&^sign != 0 {
			return false
		}
	}
	return true
}
