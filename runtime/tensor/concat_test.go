package tensor

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestConcatRows: quantising chunks of rows and joining them gives the bytes
// of quantising the whole matrix, for every format (rows are quantised
// independently, so this must hold exactly).
func TestConcatRows(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rows, cols := 7, 512
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	whole := FromF32("w", []int{rows, cols}, v)
	for _, d := range []DType{F32, F16, Q8_0, Q4_0, Q4_K} {
		want, err := Quantize(whole, d)
		if err != nil {
			t.Fatal(err)
		}
		var parts []*Tensor
		for _, split := range [][2]int{{0, 3}, {3, 4}, {4, 7}} {
			p := FromF32("w", []int{split[1] - split[0], cols}, v[split[0]*cols:split[1]*cols])
			q, err := Quantize(p, d)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, q)
		}
		got, err := ConcatRows(parts)
		if err != nil {
			t.Fatalf("%v: %v", d, err)
		}
		if !bytes.Equal(got.Data, want.Data) || got.Rows() != rows {
			t.Errorf("%v: concatenated chunks differ from the whole matrix", d)
		}
	}
	if _, err := ConcatRows([]*Tensor{whole, FromF32("w", []int{1, 3}, []float32{1, 2, 3})}); err == nil {
		t.Error("chunks of different widths were joined")
	}
}
