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

// TestHalfRows checks HalfRows against the scalar decoding of every f16
// value class (normal, subnormal, zeros, infinities, NaN) on row widths
// the kernel takes eight at a time and others.
func TestHalfRows(t *testing.T) {
	r := rand.New(rand.NewPCG(63, 64))
	for _, n := range []int{1, 7, 8, 16, 24, 64, 72} {
		for _, rows := range []int{1, 2, 5} {
			stride := n + 3*(rows%2)
			src := make([]uint16, (rows-1)*stride+n)
			for i := range src {
				src[i] = uint16(r.Uint32())
			}
			src[0], src[len(src)-1] = 0x8000, 0x7c00 // −0, +Inf
			got := make([]float32, rows*n)
			HalfRows(got, src, stride, rows, n)
			for i := range rows {
				for j := range n {
					want := half(src[i*stride+j])
					g := got[i*n+j]
					if math.Float32bits(g) != math.Float32bits(want) && !(g != g && want != want) {
						t.Fatalf("n=%d rows=%d: [%d][%d] of %#x = %v, want %v", n, rows, i, j, src[i*stride+j], g, want)
					}
				}
			}
		}
	}
}

// BenchmarkHalfRows decodes a head's slice of 1000 f16 cache rows
// (Mixtral's shape: 64 values of rows 128 apart).
func BenchmarkHalfRows(b *testing.B) {
	const n, stride, rows = 64, 128, 1000
	r := rand.New(rand.NewPCG(65, 66))
	src := make([]uint16, rows*stride)
	for i := range src {
		src[i] = uint16(r.IntN(0x7800)) | uint16(r.IntN(2))<<15 // finite, mostly normal
	}
	dst := make([]float32, rows*n)
	for b.Loop() {
		HalfRows(dst, src, stride, rows, n)
	}
}
