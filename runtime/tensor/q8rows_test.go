package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMulQuantized8 compares MulQuantized8 with the exact Dot for q8_0 and
// q4_0, on row counts that are not multiples of four (the four-row kernels
// and the one-row ones), widths of one block up to seventeen, and three
// activation rows; a split range must give the same bits.
//
// The bound is TestMulQuantized's, with 8-bit scales: |x − x̂| ≤ d/2 with
// d = max|x|/127 per block moves the result by at most Σ_j |w_j|·d_j/2
// (plus the rounding of x/d, 2^-16 of d), and both sums round in float32
// within 2·(cols+8)·u·Σ|w_j|·(|x_j|+d_j).
func TestMulQuantized8(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	for _, tc := range []struct {
		d          DType
		rows, cols int
	}{
		{Q8_0, 7, 32}, {Q8_0, 5, 96}, {Q8_0, 13, 544},
		{Q4_0, 7, 32}, {Q4_0, 5, 96}, {Q4_0, 13, 544},
	} {
		t.Run(fmt.Sprintf("%v/%dx%d", tc.d, tc.rows, tc.cols), func(t *testing.T) {
			w := make([]float32, tc.rows*tc.cols)
			for i := range w {
				w[i] = float32(r.NormFloat64() / math.Sqrt(float64(tc.cols)))
			}
			qt, err := Quantize(FromF32("w", []int{tc.rows, tc.cols}, w), tc.d)
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewMatrix(qt)
			if err != nil {
				t.Fatal(err)
			}
			const tokens = 3
			x := make([]float32, tokens*tc.cols)
			for i := range x {
				x[i] = float32(r.NormFloat64() * math.Exp(r.NormFloat64()))
			}
			var q Q8Rows
			q.Quantize(x, tokens, tc.cols)
			got := make([]float32, tokens*tc.rows)
			m.MulQuantized8(got, tc.rows, &q, 0, tc.rows)
			split := make([]float32, tokens*tc.rows)
			m.MulQuantized8(split, tc.rows, &q, 0, 3)
			m.MulQuantized8(split, tc.rows, &q, 3, tc.rows)

			row := make([]float32, tc.cols)
			xsum := make([]float32, tc.cols/qk)
			var worst float64
			for tk := range tokens {
				xt := x[tk*tc.cols : (tk+1)*tc.cols]
				BlockSums(xsum, xt)
				for i := range tc.rows {
					m.DequantizeRow(i, row)
					exact := m.Dot(i, xt, xsum)
					var quant, mag float64
					for j, wj := range row {
						d := float64(q.d[(tk*tc.cols+j)/qk])
						quant += math.Abs(float64(wj)) * d / 2
						mag += math.Abs(float64(wj)) * (math.Abs(float64(xt[j])) + d)
					}
					bound := quant*(1+0x1p-15) + 2*float64(tc.cols+8)*u*mag
					g := got[tk*tc.rows+i]
					if math.Float32bits(g) != math.Float32bits(split[tk*tc.rows+i]) {
						t.Fatalf("token %d row %d: %v computed whole, %v split", tk, i, g, split[tk*tc.rows+i])
					}
					diff := math.Abs(float64(g) - float64(exact))
					if diff > bound {
						t.Errorf("token %d row %d: fast %v, exact %v: diff %.3g > bound %.3g", tk, i, g, exact, diff, bound)
					}
					worst = max(worst, diff/bound)
				}
			}
			t.Logf("largest diff / bound: %.3f", worst)
		})
	}
}
