package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDivMax checks DivMax and Scale against the scalar loops (x[i] /= s
// and Max, x[i] *= c) bit for bit, on lengths around the kernels' eight
// lanes and values with ties, both zeros, infinities, subnormals and NaNs.
func TestDivMax(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(1), math.Float32frombits(0x80000005)}
	for _, kind := range []string{"normal", "zeros", "negzeros", "special", "nan"} {
		for _, n := range []int{1, 2, 7, 8, 9, 15, 16, 17, 31, 64, 100} {
			t.Run(fmt.Sprintf("%s/%d", kind, n), func(t *testing.T) {
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(r.NormFloat64() * 10)
					switch kind {
					case "zeros":
						x[i] = special[r.IntN(2)] // +0 and −0 mixed: the maximum is +0
					case "negzeros":
						x[i] = special[1]
						if i == n-1 && n > 1 {
							x[i] = float32(-r.Float64()) // the maximum is −0
						}
					case "special":
						if r.IntN(4) == 0 {
							x[i] = special[r.IntN(len(special))]
						}
					}
				}
				if kind == "nan" {
					x[r.IntN(n)] = float32(math.NaN())
				}
				for _, s := range []float32{8, 11.313708, -0.75, 1e-30} {
					got, want := append([]float32(nil), x...), append([]float32(nil), x...)
					m := DivMax(got, s)
					wm := want[0] / s
					for i := range want {
						want[i] /= s
						wm = Max(wm, want[i])
					}
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
							t.Fatalf("s=%v: x[%d]/s = %v, scalar %v", s, i, got[i], want[i])
						}
					}
					if math.Float32bits(m) != math.Float32bits(wm) && !(m != m && wm != wm) {
						t.Fatalf("s=%v: max %v (%#x), scalar %v (%#x)", s, m, math.Float32bits(m), wm, math.Float32bits(wm))
					}
					c := 1 / s
					Scale(got, c)
					for i := range want {
						want[i] *= c
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
							t.Fatalf("c=%v: x[%d]·c = %v, scalar %v", c, i, got[i], want[i])
						}
					}
				}
			})
		}
	}
}

// TestMaxMatchesBuiltin checks Max against the builtin max on the values
// where they could part: signed zeros, NaNs, infinities, equal values. A
// NaN's payload is not compared: amd64's builtin makes its own.
func TestMaxMatchesBuiltin(t *testing.T) {
	nan := float32(math.NaN())
	other := math.Float32frombits(0x7fc00001) // a NaN with another payload
	vals := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1e-45, -1e-45, 3.4e38, -3.4e38,
		float32(math.Inf(1)), float32(math.Inf(-1)), nan, other, 0.5, 0.5}
	for _, x := range vals {
		for _, y := range vals {
			got, want := Max(x, y), max(x, y)
			if got != got && want != want {
				continue
			}
			if math.Float32bits(got) != math.Float32bits(want) {
				t.Errorf("Max(%v, %v) = %#x, builtin %#x", x, y, math.Float32bits(got), math.Float32bits(want))
			}
		}
	}
}
