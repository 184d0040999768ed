package hf

import "github.com/moderuntime/mode/runtime/tensor"

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
