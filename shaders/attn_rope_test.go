package shaders_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/moderuntime/mode/shaders"
)

// TestAttnRoPE runs attn_rope against rope_store followed by attn_single
// on the device, which it must equal bit for bit (q rotated in place, the
// caches, the output), leaving k as it was; and against the twins
// (KVStoreTwin, AttentionTwin) within TestAttention's bound. Positions in
// the first split, at split edges and past several splits, grouped and
// ungrouped heads, both pair layouts, sinks and a window.
func TestAttnRoPE(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(51, 52))
	for _, c := range []struct {
		heads, kvHeads, hd, pos0 int
		inter, sinks             bool
		window                   int
	}{{4, 2, 24, 0, true, false, 0}, {4, 2, 24, 63, false, false, 0}, {4, 2, 24, 64, true, true, 0}, {6, 6, 64, 130, false, false, 0},
		{8, 2, 16, 700, false, false, 0}, {4, 1, 32, 200, true, true, 70}} {
		t.Run(fmt.Sprintf("h=%d/kv=%d/hd=%d/pos0=%d/window=%d", c.heads, c.kvHeads, c.hd, c.pos0, c.window), func(t *testing.T) {
			kvd := c.kvHeads * c.hd
			seq := c.pos0 + 3
			inv := make([]float32, c.hd/2)
			for i := range inv {
				inv[i] = float32(1 / math.Pow(10000, float64(2*i)/float64(c.hd)))
			}
			q, k, v := randn(r, c.heads*c.hd, 1), randn(r, 3+kvd, 1), randn(r, 5+kvd, 1)
			kc, vc := shaders.Bits(randn(r, seq*kvd, 1)), shaders.Bits(randn(r, seq*kvd, 1))
			sinks := randn(r, c.heads, 2)
			ap := shaders.AttnParams{T: 1, Heads: uint32(c.heads), KVHeads: uint32(c.kvHeads), HeadDim: uint32(c.hd), Pos0: uint32(c.pos0),
				QStride: uint32(c.heads * c.hd), DstStride: uint32(c.heads * c.hd), NSplit: uint32(c.pos0/shaders.AttnSplit + 1),
				Scale: float32(math.Sqrt(float64(c.hd))), Window: uint32(c.window), Ring: uint32(seq), HasSinks: c.sinks}
			kp := shaders.KVStoreParams{Rows: 1, HeadDim: uint32(c.hd), Pos0: uint32(c.pos0), Interleaved: c.inter, AttnFactor: 1.1,
				QStride: uint32(c.heads * c.hd), QCols: uint32(c.heads * c.hd), KOff: 3, KStride: uint32(kvd), VOff: 5, VStride: uint32(kvd), KVDim: uint32(kvd)}
			// Two dispatches on the device.
			wq, wk, wkc, wvc, want := shaders.Bits(q), shaders.Bits(k), slices.Clone(kc), slices.Clone(vc), make([]uint32, c.heads*c.hd)
			jobs := c.heads*c.hd/2 + kvd/2 + kvd
			if err := d.Run(shaders.RoPEStore, shaders.Spec{}, [3]uint32{uint32((jobs + 63) / 64), 1, 1}, kp.Words(),
				shaders.Bits(inv), wq, wk, shaders.Bits(v), wkc, wvc); err != nil {
				t.Fatal(err)
			}
			if err := d.Run(shaders.AttnSingle, shaders.Spec{}, [3]uint32{uint32(c.heads), 1, 1}, ap.Words(),
				wq, wkc, wvc, []uint32{0}, want, shaders.Bits(sinks)); err != nil {
				t.Fatal(err)
			}
			// One.
			p := shaders.AttnRoPEParams{AttnParams: ap, Interleaved: c.inter, AttnFactor: 1.1, KOff: 3, VOff: 5}
			gq, gk, gkc, gvc, got := shaders.Bits(q), shaders.Bits(k), slices.Clone(kc), slices.Clone(vc), make([]uint32, c.heads*c.hd)
			if err := d.Run(shaders.AttnRoPE, shaders.Spec{}, [3]uint32{uint32(c.heads), 1, 1}, p.Words(),
				gq, gkc, gvc, gk, shaders.Bits(v), got, shaders.Bits(sinks), shaders.Bits(inv)); err != nil {
				t.Fatal(err)
			}
			same(t, "output", got, want)
			same(t, "q", gq, wq)
			same(t, "k cache", gkc, wkc)
			same(t, "v cache", gvc, wvc)
			same(t, "k (unrotated)", gk, shaders.Bits(k))
			// The twins.
			tq, tk, tkc, tvc := slices.Clone(q), slices.Clone(k), slices.Clone(kc), slices.Clone(vc)
			shaders.KVStoreTwin(kp, true, shaders.Bits(inv), tq, tk, v, tkc, tvc)
			tw := make([]float32, c.heads*c.hd)
			ap.Ring = 0
			shaders.AttentionTwin(ap, tq, shaders.Floats(tkc), shaders.Floats(tvc), sinks, tw)
			near(t, "output twin", shaders.Floats(got), tw, 1e-5)
		})
	}
}
