package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestHeadsKernels checks ScoresHeads and AxpyHeads against Scores and
// Axpy called head by head and row by row, bit for bit: head widths with
// and without whole 8-float chunks, one to sixteen heads, grouped-query
// layouts entered at every phase, strides wider than the heads' span.
func TestHeadsKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	for _, hd := range []int{8, 12, 64, 72} {
		for _, heads := range []int{1, 2, 5, 16} {
			for _, group := range []int{1, 2, 4} {
				for phase := range group {
					for _, rows := range []int{1, 3, 37} {
						name := fmt.Sprintf("hd=%d/heads=%d/group=%d/phase=%d/rows=%d", hd, heads, group, phase, rows)
						span := ((phase+heads-1)/group + 1) * hd
						stride := span + 8*(rows%3)
						n := rows + 2 // each head's scores n apart, some unused
						q, k, v := rnd(heads*hd), rnd((rows-1)*stride+span), rnd((rows-1)*stride+span)
						got, want := make([]float32, heads*n), make([]float32, heads*n)
						ScoresHeads(got, n, q, k, stride, rows, heads, hd, group, phase)
						for i := range rows {
							for h := range heads {
								off := i*stride + (phase+h)/group*hd
								Scores(want[h*n+i:h*n+i+1], q[h*hd:(h+1)*hd], k[off:off+hd], stride)
							}
						}
						for i := range got {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("%s: score %d = %v, head by head %v", name, i, got[i], want[i])
							}
						}
						o, ow := rnd(heads*hd), make([]float32, heads*hd)
						copy(ow, o)
						AxpyHeads(o, got, n, v, stride, rows, heads, hd, group, phase)
						for i := range rows {
							for h := range heads {
								off := i*stride + (phase+h)/group*hd
								Axpy(ow[h*hd:(h+1)*hd], got[h*n+i], v[off:off+hd])
							}
						}
						for i := range o {
							if math.Float32bits(o[i]) != math.Float32bits(ow[i]) {
								t.Fatalf("%s: output %d = %v, head by head %v", name, i, o[i], ow[i])
							}
						}
					}
				}
			}
		}
	}
}
