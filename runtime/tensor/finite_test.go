package tensor

import (
	"math"
	"testing"
)

// TestFirstNonFinite: the first NaN or infinity of an f32, f16 or bf16
// tensor, by index and value, found from the bits; none in a finite
// tensor (the largest magnitudes and subnormals included) or in a format
// it does not read.
func TestFirstNonFinite(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	for _, d := range []DType{F32, F16, BF16} {
		for _, c := range []struct {
			v    []float32
			at   int
			want float32
		}{
			{[]float32{1, -2, 1e-7, 0}, -1, 0},
			{[]float32{1, inf, nan}, 1, inf},
			{[]float32{0, 0, 0, -inf}, 3, -inf},
			{[]float32{nan, inf}, 0, nan},
		} {
			tt, err := Quantize(FromF32("w", []int{len(c.v)}, c.v), d)
			if err != nil {
				t.Fatal(err)
			}
			i, v, bad := FirstNonFinite(tt)
			if bad != (c.at >= 0) || bad && (i != c.at || math.Float32bits(v) != math.Float32bits(c.want) && !(math.IsNaN(float64(v)) && math.IsNaN(float64(c.want)))) {
				t.Errorf("%v %v: (%d, %v, %v), want index %d value %v", d, c.v, i, v, bad, c.at, c.want)
			}
		}
	}
	big := FromF32("w", []int{2}, []float32{math.MaxFloat32, -math.SmallestNonzeroFloat32})
	if _, _, bad := FirstNonFinite(big); bad {
		t.Error("a finite f32 tensor reported a non-finite element")
	}
	if _, _, bad := FirstNonFinite(&Tensor{DType: Q8_0, Data: []byte{0x00, 0x7c}}); bad {
		t.Error("a q8_0 tensor's bytes were read as f16")
	}
}
