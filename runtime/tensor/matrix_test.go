package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMatrixDot checks Dot against a float64 dot of the dequantised row,
// that Dot4 equals four Dots bit for bit (so a backend's result does not
// depend on where a row falls in its blocking), and that DequantizeRow
// agrees with Float32s.
func TestMatrixDot(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 7, 768
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	x := make([]float32, cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	xsum := make([]float32, cols/32)
	BlockSums(xsum, x)
	for _, d := range []DType{F16, Q8_0, Q4_0, Q4_K} {
		t.Run(d.String(), func(t *testing.T) {
			q, err := Quantize(FromF32("w", []int{rows, cols}, w), d)
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewMatrix(q)
			if err != nil {
				t.Fatal(err)
			}
			if m.Rows() != rows || m.Cols() != cols || m.DType() != d || m.Bytes() != len(q.Data) {
				t.Fatalf("matrix %v %d×%d of %d bytes", m.DType(), m.Rows(), m.Cols(), m.Bytes())
			}
			deq := decode(t, q)
			row := make([]float32, cols)
			dots := make([]float32, rows)
			for i := range rows {
				m.DequantizeRow(i, row)
				if !equalF32(row, deq[i*cols:(i+1)*cols]) {
					t.Fatalf("DequantizeRow(%d) differs from Float32s", i)
				}
				var want, mag float64
				for j, v := range row {
					want += float64(v) * float64(x[j])
					mag += math.Abs(float64(v) * float64(x[j]))
				}
				dots[i] = m.Dot(i, x, xsum)
				if diff := math.Abs(float64(dots[i]) - want); diff > 1e-5*mag {
					t.Errorf("row %d: Dot = %v, want %v (Σ|w·x| = %g)", i, dots[i], want, mag)
				}
			}
			for i := 0; i+4 <= rows; i++ {
				a0, a1, a2, a3 := m.Dot4(i, x, xsum)
				if got := []float32{a0, a1, a2, a3}; !equalF32(got, dots[i:i+4]) {
					t.Errorf("Dot4(%d) = %v, Dot gives %v", i, got, dots[i:i+4])
				}
			}
		})
	}
}

func TestBlockSums(t *testing.T) {
	x := make([]float32, 70) // two whole blocks; the last 6 elements are ignored
	for i := range x {
		x[i] = float32(i)
	}
	got := make([]float32, 3)
	BlockSums(got, x)
	if want := []float32{496, 1520, 0}; !equalF32(got, want) {
		t.Errorf("BlockSums = %v, want %v", got, want)
	}
}
