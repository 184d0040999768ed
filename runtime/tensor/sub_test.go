package tensor

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestSub: a sub-matrix decodes to exactly the values of the same rows and
// columns of the whole, for every format and ragged ranges, and ranges
// that are out of bounds or off the blocks are refused.
func TestSub(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	rows, cols := 5, 768
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	whole := FromF32("w", []int{rows, cols}, v)
	for _, d := range []DType{F32, F16, BF16, Q8_0, Q4_0, Q4_K, MXFP4} {
		q, err := Quantize(whole, d)
		if err != nil {
			t.Fatal(err)
		}
		all, err := q.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		bs := BlockSize(d)
		for _, c := range [][4]int{{0, rows, 0, cols}, {1, 4, 0, cols}, {0, rows, bs, 3 * bs}, {2, 3, cols - bs, cols}, {4, 5, 0, bs}} {
			s, err := Sub(q, c[0], c[1], c[2], c[3])
			if err != nil {
				t.Fatalf("%v %v: %v", d, c, err)
			}
			if err := s.Check(); err != nil {
				t.Fatalf("%v %v: %v", d, c, err)
			}
			got, err := s.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			m := c[3] - c[2]
			for i := c[0]; i < c[1]; i++ {
				for j := c[2]; j < c[3]; j++ {
					if g, w := got[(i-c[0])*m+j-c[2]], all[i*cols+j]; g != w {
						t.Fatalf("%v %v: [%d][%d] is %v, want %v", d, c, i, j, g, w)
					}
				}
			}
		}
		if bs > 1 {
			if _, err := Sub(q, 0, rows, 1, bs+1); err == nil || !strings.Contains(err.Error(), "blocks") {
				t.Errorf("%v: columns off the blocks: error %v", d, err)
			}
		}
		for _, c := range [][4]int{{0, rows + 1, 0, cols}, {2, 2, 0, cols}, {0, 1, 0, cols + bs}, {-1, 1, 0, cols}} {
			if _, err := Sub(q, c[0], c[1], c[2], c[3]); err == nil {
				t.Errorf("%v %v: no error", d, c)
			}
		}
	}
}
