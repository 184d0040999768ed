package tensor

import (
	"math"
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

// TestMatrixSub: a Matrix.Sub of a matrix whose scales are decoded (as a
// wasm build with SIMD128 decodes them) is the Matrix NewMatrix makes of
// the same Sub, scales included, for rows and for columns; without decoded
// scales it is NewMatrix's; ranges that do not fit are refused.
func TestMatrixSub(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	rows, cols := 6, 256
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	decode := func(m *Matrix) {
		m.scales32 = make([]float32, m.rows*m.nb)
		for i := range m.scales32 {
			m.scales32[i] = F16ToF32(uint16(m.a.scales[2*i]) | uint16(m.a.scales[2*i+1])<<8)
		}
		m.size += 4 * len(m.scales32)
	}
	for _, d := range []DType{F16, Q8_0, Q4_0, Q4_K} {
		q, err := Quantize(FromF32("w", []int{rows, cols}, v), d)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := NewMatrix(q)
		if err != nil {
			t.Fatal(err)
		}
		scaled := d == Q8_0 || d == Q4_0
		if scaled && whole.scales32 == nil {
			decode(whole)
		}
		for _, c := range [][4]int{{0, rows, 0, cols}, {1, 4, 0, cols}, {0, rows, 64, 192}, {5, 6, cols - 32, cols}} {
			if d == Q4_K && (c[2]%256 != 0 || c[3]%256 != 0) {
				continue
			}
			s, err := Sub(q, c[0], c[1], c[2], c[3])
			if err != nil {
				t.Fatal(err)
			}
			got, err := whole.Sub(s, c[0], c[1], c[2], c[3])
			if err != nil {
				t.Fatalf("%v %v: %v", d, c, err)
			}
			want, err := NewMatrix(s)
			if err != nil {
				t.Fatal(err)
			}
			if scaled && want.scales32 == nil {
				decode(want)
			}
			if got.rows != want.rows || got.cols != want.cols || got.nb != want.nb || got.size != want.size || len(got.scales32) != len(want.scales32) {
				t.Fatalf("%v %v: %d×%d (%d blocks a row, %d bytes, %d scales), want %d×%d (%d, %d, %d)", d, c,
					got.rows, got.cols, got.nb, got.size, len(got.scales32), want.rows, want.cols, want.nb, want.size, len(want.scales32))
			}
			for i := range want.scales32 {
				if math.Float32bits(got.scales32[i]) != math.Float32bits(want.scales32[i]) {
					t.Fatalf("%v %v: scale %d is %v, want %v", d, c, i, got.scales32[i], want.scales32[i])
				}
			}
		}
		if scaled {
			s, _ := Sub(q, 0, 2, 0, cols)
			for _, c := range [][4]int{{0, 3, 0, cols}, {0, 2, 0, cols + 32}, {0, 2, 1, cols}, {0, 2, 32, cols + 32}} {
				if _, err := whole.Sub(s, c[0], c[1], c[2], c[3]); err == nil {
					t.Errorf("%v %v: no error", d, c)
				}
			}
		}
	}
}
