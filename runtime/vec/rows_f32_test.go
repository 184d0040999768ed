package vec

import (
	"math/rand/v2"
	"testing"
)

// TestDotRows: DotRows gives Dot4x1's sums (and DotLanes's for the rows
// past the last four), bit for bit, for row counts and widths that are not
// multiples of four or eight, and row strides past the width.
func TestDotRows(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, rows := range []int{1, 3, 4, 5, 8, 13} {
		for _, n := range []int{1, 7, 8, 9, 17, 64, 1031} {
			ws := n + r.IntN(5)
			w := make([]float32, (rows-1)*ws+n)
			x := make([]float32, n)
			for i := range w {
				w[i] = float32(r.NormFloat64())
			}
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			got := make([]float32, rows)
			DotRows(got, w, ws, x, n)
			for i := 0; i < rows; i++ {
				want := DotLanes(w[i*ws:i*ws+n], x)
				if i+4 <= rows && i%4 == 0 {
					var o [4]float32
					Dot4x1(&o, w[i*ws:], ws, x, n)
					for k := range 4 {
						if o[k] != DotLanes(w[(i+k)*ws:(i+k)*ws+n], x) {
							t.Fatalf("rows %d n %d: Dot4x1 row %d %v, DotLanes %v", rows, n, i+k, o[k], DotLanes(w[(i+k)*ws:(i+k)*ws+n], x))
						}
					}
				}
				if got[i] != want {
					t.Fatalf("rows %d n %d row %d: DotRows %v, DotLanes %v", rows, n, i, got[i], want)
				}
			}
		}
	}
}
