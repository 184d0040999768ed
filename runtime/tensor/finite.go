package tensor

import "encoding/binary"

// FirstNonFinite finds the first NaN or infinity of an f32, f16 or bf16
// tensor by its exponent bits, without decoding the tensor to float32:
// weights can be gigabytes. Other formats report none.
func FirstNonFinite(t *Tensor) (index int, value float32, found bool) {
	switch t.DType {
	case F32:
		for i := 0; i+4 <= len(t.Data); i += 4 {
			if b := binary.LittleEndian.Uint32(t.Data[i:]); b&0x7f800000 == 0x7f800000 {
				return i / 4, elemAt(t, i/4), true
			}
		}
	case F16:
		for i := 0; i+2 <= len(t.Data); i += 2 {
			if h := binary.LittleEndian.Uint16(t.Data[i:]); h&0x7c00 == 0x7c00 {
				return i / 2, elemAt(t, i/2), true
			}
		}
	case BF16:
		for i := 0; i+2 <= len(t.Data); i += 2 {
			if h := binary.LittleEndian.Uint16(t.Data[i:]); h&0x7f80 == 0x7f80 {
				return i / 2, elemAt(t, i/2), true
			}
		}
	}
	return 0, 0, false
}

// elemAt returns element i as float32, for error messages.
func elemAt(t *Tensor, i int) float32 {
	one := &Tensor{DType: t.DType, Shape: []int{1}, Data: t.Data[i*t.DType.ElemSize():][:t.DType.ElemSize()]}
	v, err := one.Float32s()
	if err != nil {
		return 0
	}
	return v[0]
}
