package gptq

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/runtime/tensor"
)

// correlated returns n rows of d inputs mixed from d/4 latent factors plus
// a little noise: inputs that move together, as a network's activations do.
func correlated(r *rand.Rand, n, d int) []float32 {
	k := d / 4
	mix := make([]float32, k*d)
	for i := range mix {
		mix[i] = float32(r.NormFloat64())
	}
	x := make([]float32, n*d)
	for t := range n {
		z := make([]float32, k)
		for i := range z {
			z[i] = float32(r.NormFloat64())
		}
		for j := range d {
			v := 0.1 * float32(r.NormFloat64())
			for i := range k {
				v += z[i] * mix[i*d+j]
			}
			x[t*d+j] = v
		}
	}
	return x
}

// outputErr is Σ over inputs of ‖(W−Q)·x‖².
func outputErr(w, q, x []float32, rows, cols int) float64 {
	var s float64
	for t := range len(x) / cols {
		xt := x[t*cols : (t+1)*cols]
		for r := range rows {
			var d float64
			for c, v := range xt {
				d += float64(w[r*cols+c]-q[r*cols+c]) * float64(v)
			}
			s += d * d
		}
	}
	return s
}

// TestQuantizeBeatsRounding: on correlated inputs GPTQ's output error is
// well below round-to-nearest's for every block format, on the same
// inputs it was calibrated on and on fresh ones from the same
// distribution.
func TestQuantizeBeatsRounding(t *testing.T) {
	const rows, cols, n = 24, 256, 1024
	r := rand.New(rand.NewPCG(3, 4))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64()) * 0.05
	}
	all := correlated(r, 2*n, cols)
	calib, fresh := all[:n*cols], all[n*cols:]
	st := &Stats{h: map[string]*Hessian{}}
	st.add("w", calib, cols, nil)
	wt := tensor.FromF32("w", []int{rows, cols}, w)
	for _, d := range []tensor.DType{tensor.Q8_0, tensor.Q4_0, tensor.Q4_K} {
		t.Run(d.String(), func(t *testing.T) {
			rtn, err := tensor.Quantize(wt, d)
			if err != nil {
				t.Fatal(err)
			}
			g, err := Quantize(wt, d, st.Get("w"), 0)
			if err != nil {
				t.Fatal(err)
			}
			if g.DType != d || g.Rows() != rows || g.Cols() != cols {
				t.Fatalf("got %v %v", g.DType, g.Shape)
			}
			rq, _ := rtn.Float32s()
			gq, err := g.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			for _, set := range []struct {
				name string
				x    []float32
			}{{"calibration", calib}, {"fresh", fresh}} {
				er, eg := outputErr(w, rq, set.x, rows, cols), outputErr(w, gq, set.x, rows, cols)
				t.Logf("%v %s inputs: output error GPTQ/rounding = %.3f", d, set.name, eg/er)
				if eg > 0.8*er {
					t.Errorf("%v %s inputs: GPTQ output error %.4g not well below rounding's %.4g", d, set.name, eg, er)
				}
			}
		})
	}
}

// TestQuantizeWithoutStats: no statistics means plain rounding, byte for
// byte.
func TestQuantizeWithoutStats(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	w := make([]float32, 4*256)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	wt := tensor.FromF32("w", []int{4, 256}, w)
	for _, d := range []tensor.DType{tensor.Q8_0, tensor.Q4_0, tensor.Q4_K} {
		want, _ := tensor.Quantize(wt, d)
		got, err := Quantize(wt, d, nil, 0)
		if err != nil || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("%v: err %v, bytes equal %v", d, err, err == nil && bytes.Equal(got.Data, want.Data))
		}
	}
}

// TestQuantizeErrors: mismatched statistics and bad values are errors
// naming the tensor; degenerate statistics (all zero, rank one) still
// quantise.
func TestQuantizeErrors(t *testing.T) {
	wt := tensor.FromF32("blk.w", []int{2, 64}, make([]float32, 128))
	st := &Stats{h: map[string]*Hessian{}}
	st.add("x", make([]float32, 32), 32, nil)
	if _, err := Quantize(wt, tensor.Q4_0, st.Get("x"), 0); err == nil || !bytes.Contains([]byte(err.Error()), []byte("blk.w")) {
		t.Errorf("column mismatch: %v", err)
	}
	bad := tensor.FromF32("blk.nan", []int{1, 64}, append(make([]float32, 63), float32(nan())))
	st.add("blk.nan", make([]float32, 64), 64, nil)
	if _, err := Quantize(bad, tensor.Q4_0, st.Get("blk.nan"), 0); err == nil {
		t.Errorf("NaN weight quantised")
	}
	for _, tc := range []struct {
		name string
		x    []float32
	}{{"zero", make([]float32, 3*64)}, {"rank-one", func() []float32 {
		x := make([]float32, 3*64)
		for i := range x {
			x[i] = float32(i % 64)
		}
		return x
	}()}} {
		s := &Stats{h: map[string]*Hessian{}}
		s.add("w", tc.x, 64, nil)
		w := tensor.FromF32("w", []int{2, 64}, func() []float32 {
			v := make([]float32, 128)
			for i := range v {
				v[i] = float32(i%7) - 3
			}
			return v
		}())
		q, err := Quantize(w, tensor.Q4_0, s.Get("w"), 0)
		if err != nil {
			t.Errorf("%s statistics: %v", tc.name, err)
			continue
		}
		if _, err := q.Float32s(); err != nil {
			t.Errorf("%s statistics: %v", tc.name, err)
		}
	}
	_ = fmt.Sprint()
}

func nan() float64 { var z float64; return z / z }
