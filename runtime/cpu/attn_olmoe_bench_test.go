package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
)

// BenchmarkAttentionRowMajor is one decode step's attention over every
// layer of an OLMoE-shaped cache (16 layers, 16 heads of 64, rows of 4 KB:
// attnTask.rowMajor), far more than the caches hold, at positions 128 and
// 512, on two threads.
func BenchmarkAttentionRowMajor(b *testing.B) {
	const layers, heads, hd = 16, 16, 64
	r := rand.New(rand.NewPCG(7, 8))
	for _, pos := range []int{128, 512} {
		b.Run(fmt.Sprintf("pos=%d", pos), func(b *testing.B) {
			be := New(Options{Threads: 2})
			defer be.Close()
			c, _ := be.NewKV(layers, pos+1, heads*hd)
			for l := range layers {
				copy(c.(*kv).k[l], randomF32(r, len(c.(*kv).k[l]), 1))
				copy(c.(*kv).v[l], randomF32(r, len(c.(*kv).v[l]), 1))
			}
			q, _ := be.NewBuf(1, heads*hd)
			k, _ := be.NewBuf(1, heads*hd)
			v, _ := be.NewBuf(1, heads*hd)
			out, _ := be.NewBuf(1, heads*hd)
			copy(q.(*buf).f, randomF32(r, heads*hd, 1))
			b.SetBytes(int64(layers * (pos + 1) * heads * hd * 4 * 2))
			for b.Loop() {
				for l := range layers {
					be.Attention(out, q, k, v, c, backend.AttnSpec{Layer: l, Heads: heads, KVHeads: heads, HeadDim: hd, Pos0: pos})
				}
			}
		})
	}
}
