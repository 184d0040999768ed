package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/runtime/tensor"
)

// NewAct8 is New with 8-bit activations for the q8_0 and q4_0 products of
// decode (one token), llama.cpp's scheme: for the tests and benchmarks that
// measure it against the 16-bit default (RATIONALE.md, "8-bit activations,
// measured").
func NewAct8(o Options) *Backend {
	b := New(o)
	b.act8 = !b.exact
	return b
}

// TestAct8MatMul: a decode product with 8-bit activations is within its
// derived bound of the exact path (TestMatMulFast's, with the 8-bit block
// scale max|x|/127), and gives the same bits on one goroutine and three,
// for output counts that are not multiples of four.
func TestAct8MatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	const out = 13
	for _, d := range []tensor.DType{tensor.Q8_0, tensor.Q4_0} {
		for _, in := range []int{32, 96, 544} {
			t.Run(fmt.Sprintf("%v/%d", d, in), func(t *testing.T) {
				q, deq := quantized(t, r, d, out, in)
				x := randomF32(r, in, 1)
				mul := func(b *Backend) []float32 {
					defer b.Close()
					w, err := b.Upload(q)
					if err != nil {
						t.Fatal(err)
					}
					xb, _ := b.NewBuf(1, in)
					copy(xb.(*buf).f, x)
					dst, _ := b.NewBuf(1, out)
					b.MatMul(dst, xb, w, nil)
					return dst.(*buf).f
				}
				exact := mul(New(Options{Threads: 1, Exact: true}))
				fast := mul(NewAct8(Options{Threads: 1}))
				if f3 := mul(NewAct8(Options{Threads: 3})); !equal(f3, fast) {
					t.Errorf("three goroutines differ from one")
				}
				if f16 := mul(New(Options{Threads: 1})); equal(f16, fast) {
					t.Errorf("8-bit activations give the 16-bit path's bits: not in use")
				}
				var worst float64
				for i := range out {
					var quant, mag float64
					for j := range in {
						dj := blockScale(x, j) * 32767 / 127
						wj := math.Abs(float64(deq[i*in+j]))
						quant += wj * dj / 2
						mag += wj * (math.Abs(float64(x[j])) + dj)
					}
					bound := quant*(1+0x1p-15) + 2*float64(in+8)*u*mag
					diff := math.Abs(float64(fast[i]) - float64(exact[i]))
					if diff > bound {
						t.Errorf("row %d: act8 %v, exact %v: diff %.3g > bound %.3g", i, fast[i], exact[i], diff, bound)
					}
					worst = max(worst, diff/bound)
				}
				t.Logf("largest diff / bound %.3f", worst)
			})
		}
	}
}
