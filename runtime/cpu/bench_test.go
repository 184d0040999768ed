package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/internal/cputime"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/tensor"
)

// BenchmarkMatVec multiplies a weight in each format by one token, the
// shape of decoding, on the exact and the fast path; the throughput is of
// the weight's stored bytes, which bound decoding speed once the kernel
// keeps up with memory. act8 is the fast path with 8-bit activations
// (NewAct8), for q8_0 and q4_0 decode. The shapes are the Mixtral-shaped synthetic
// model's down projection (512 outputs of 1408) and a 1024×512 matrix.
func BenchmarkMatVec(b *testing.B) {
	benchMul(b, 1)
}

// BenchmarkMatMul is BenchmarkMatVec for a 64-token prefill batch.
func BenchmarkMatMul(b *testing.B) {
	benchMul(b, 64)
}

func benchMul(b *testing.B, tokens int) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, shape := range [][2]int{{512, 1408}, {1024, 512}} {
		out, in := shape[0], shape[1]
		for _, d := range formats {
			if !tensor.CanQuantize(d, in) {
				continue // q4_k's 256-element super-blocks do not divide 1408
			}
			q, _ := quantized(b, r, d, out, in)
			x := randomF32(r, tokens*in, 1)
			for _, path := range []string{"exact", "fast", "act8"} {
				if path == "act8" && (tokens > 1 || d != tensor.Q8_0 && d != tensor.Q4_0) {
					continue // 8-bit activations are for decode's q8_0 and q4_0
				}
				b.Run(fmt.Sprintf("%dx%d/%v/%s", out, in, d, path), func(b *testing.B) {
					be := New(Options{Exact: path == "exact"})
					if path == "act8" {
						be = NewAct8(Options{})
					}
					defer be.Close()
					w, err := be.Upload(q)
					if err != nil {
						b.Fatal(err)
					}
					xb, _ := be.NewBuf(tokens, in)
					copy(xb.(*buf).f, x)
					dst, _ := be.NewBuf(tokens, out)
					b.SetBytes(w.Bytes())
					b.ReportAllocs()
					c0 := cputime.Now()
					for b.Loop() {
						be.MatMul(dst, xb, w, nil)
					}
					b.ReportMetric(float64(cputime.Now()-c0)/float64(b.N), "cpu-ns/op")
				})
			}
		}
	}
}

// BenchmarkAttention is one decode step's attention at position 1000 with
// Mixtral-shaped heads (8 query heads, 2 KV heads, head dim 64), on the
// exact and the fast path, over an f32 and an f16 cache.
func BenchmarkAttention(b *testing.B) {
	const heads, kvHeads, hd, pos = 8, 2, 64, 1000
	r := rand.New(rand.NewPCG(3, 4))
	for _, exact := range []bool{true, false} {
		for _, f16 := range []bool{false, true} {
			b.Run(fmt.Sprintf("exact=%v/f16=%v", exact, f16), func(b *testing.B) {
				be := New(Options{Exact: exact})
				defer be.Close()
				newKV := be.NewKV
				if f16 {
					newKV = be.NewKVF16
				}
				kc, _ := newKV(1, pos+1, kvHeads*hd)
				c := kc.(*kv)
				for l, v := range []bool{false, true} {
					c.store(0, v, 0, randomF32(r, (pos+1)*kvHeads*hd, float64(l+1)))
				}
				q, _ := be.NewBuf(1, heads*hd)
				k, _ := be.NewBuf(1, kvHeads*hd)
				v, _ := be.NewBuf(1, kvHeads*hd)
				out, _ := be.NewBuf(1, heads*hd)
				copy(q.(*buf).f, randomF32(r, heads*hd, 1))
				b.ReportAllocs()
				for b.Loop() {
					be.Attention(out, q, k, v, c, backend.AttnSpec{Heads: heads, KVHeads: kvHeads, HeadDim: hd, Pos0: pos})
				}
			})
		}
	}
}
