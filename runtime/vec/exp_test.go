package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestExp: Exp's relative error against math.Exp (float64, then compared
// unrounded) stays below the 2^-21 its doc states over every 97th float32
// from −87.33 to 88.72, and the ends clamp as stated.
func TestExp(t *testing.T) {
	var worst float64
	var at float32
	check := func(x float32) {
		want := math.Exp(float64(x))
		got := float64(Exp(x))
		if e := math.Abs(got-want) / want; e > worst {
			worst, at = e, x
		}
	}
	for b := math.Float32bits(88.72); b >= 97; b -= 97 { // positive, down to the smallest
		check(math.Float32frombits(b))
	}
	for b := uint32(0x80000000); b <= math.Float32bits(-87.33); b += 97 { // negative
		check(math.Float32frombits(b))
	}
	for _, x := range []float32{0, -0.5, 0.5, 1, -1, 10, -10, 88.72, -87.33, -87.32} {
		check(x)
	}
	t.Logf("largest relative error %.3g (2^%.2f) at %v", worst, math.Log2(worst), at)
	if worst > 0x1p-21 {
		t.Errorf("relative error %.3g at %v, above 2^-21", worst, at)
	}
	for _, c := range []struct {
		x, want float32
	}{{-88, Exp(-87.33)}, {-1000, Exp(-87.33)}, {float32(math.Inf(-1)), Exp(-87.33)}, {89, Exp(88.72)}, {float32(math.Inf(1)), Exp(88.72)}} {
		if g := Exp(c.x); g != c.want || math.IsInf(float64(g), 0) || g == 0 {
			t.Errorf("Exp(%v) = %v, want %v", c.x, g, c.want)
		}
	}
	if g := Exp(float32(math.NaN())); g == g {
		t.Errorf("Exp(NaN) = %v, want NaN", g)
	}
}

// TestExpShiftSiLUMul: the slice helpers compute what Exp does element by
// element, the sum in order.
func TestExpShiftSiLUMul(t *testing.T) {
	x := []float32{-3, -1.5, 0, 0.25, 2, 7, -20}
	dst := make([]float32, len(x))
	sum := ExpShift(dst, x, 2)
	var want float32
	for i, v := range x {
		e := Exp(v - 2)
		if dst[i] != e {
			t.Errorf("ExpShift[%d] = %v, want %v", i, dst[i], e)
		}
		want += e
	}
	if sum != want {
		t.Errorf("ExpShift sum %v, want %v", sum, want)
	}
	g := append([]float32(nil), x...)
	u := []float32{1, 2, -1, 0.5, 3, -2, 1}
	SiLUMul(g, u)
	for i, v := range x {
		silu := float64(v) / (1 + math.Exp(-float64(v)))
		if d := math.Abs(float64(g[i]) - silu*float64(u[i])); d > 1e-6*math.Abs(silu*float64(u[i]))+1e-30 {
			t.Errorf("SiLUMul(%v)·%v = %v, want %v", v, u[i], g[i], silu*float64(u[i]))
		}
	}
}

func BenchmarkExp(b *testing.B) {
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(i%200)/10 - 10
	}
	dst := make([]float32, len(x))
	b.Run("vec", func(b *testing.B) {
		for b.Loop() {
			ExpShift(dst, x, 0)
		}
	})
	b.Run("math", func(b *testing.B) {
		for b.Loop() {
			for i, v := range x {
				dst[i] = float32(math.Exp(float64(v)))
			}
		}
	})
}

// TestExpKernels: the assembly behind ExpShift and SiLUMul gives expInto's
// and siluMulGo's bits, on lengths that are not multiples of eight and on
// arguments spanning the clamps, zeros, infinities and subnormals.
func TestExpKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	special := []float32{0, float32(math.Copysign(0, -1)), 88.72, -87.33, 88.73, -87.34, 1e-40, -1e-40,
		float32(math.Inf(1)), float32(math.Inf(-1)), 100, -100, 0.5, -0.5}
	for _, n := range []int{1, 7, 8, 9, 63, 64, 65, 1408} {
		x := make([]float32, n)
		u := make([]float32, n)
		for i := range x {
			switch i % 3 {
			case 0:
				x[i] = float32(r.NormFloat64() * 4)
			case 1:
				x[i] = float32(r.Float64()*200 - 100)
			default:
				x[i] = special[r.IntN(len(special))]
			}
			u[i] = float32(r.NormFloat64())
		}
		const m = 1.25
		want := make([]float32, n)
		var wsum float32
		expInto(want, x, m, false)
		for _, e := range want {
			wsum += e
		}
		got := make([]float32, n)
		gsum := ExpShift(got, x, m)
		for i := range x {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("n=%d: ExpShift(%v) = %v (%#x), Go %v (%#x)", n, x[i], got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
		if math.Float32bits(gsum) != math.Float32bits(wsum) {
			t.Errorf("n=%d: ExpShift sum %v, in-order Go sum %v", n, gsum, wsum)
		}
		g, gw := append([]float32(nil), x...), append([]float32(nil), x...)
		SiLUMul(g, u)
		siluMulGo(gw, u)
		for i := range x {
			if math.Float32bits(g[i]) != math.Float32bits(gw[i]) {
				t.Fatalf("n=%d: SiLUMul(%v)·%v = %v, Go %v", n, x[i], u[i], g[i], gw[i])
			}
		}
	}
}
