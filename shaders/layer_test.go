package shaders_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/moderuntime/mode/shaders"
)

// TestLayer runs layer.wgsl against its twin (LayerTwin) on random
// layers: widths that are not multiples of the workgroup's 64 (ragged
// rows and columns), grouped and ungrouped heads, both pair layouts, an
// FFN wider and narrower than the model, positions in the first split,
// at a split edge and past several splits. The residual row and both
// caches (every position: the new one written, the rest kept) must agree
// within the bound of the twins it stands for (TestAttention's 1e-5),
// and LayerFits must take each case.
func TestLayer(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(61, 62))
	for _, c := range []struct {
		dim, heads, kvHeads, hd, ffn, pos0 int
		inter                              bool
	}{{64, 8, 8, 8, 172, 0, true}, {64, 8, 4, 8, 172, 63, false}, {36, 6, 2, 6, 20, 64, true}, {100, 5, 1, 20, 260, 130, false},
		{256, 4, 2, 64, 1024, 130, true}, {64, 2, 2, 32, 64, 380, false}, {64, 8, 8, 8, 172, 1023, true}, {12, 2, 2, 6, 8, 3, false}} {
		t.Run(fmt.Sprintf("dim=%d/h=%d/kv=%d/hd=%d/ffn=%d/pos0=%d", c.dim, c.heads, c.kvHeads, c.hd, c.ffn, c.pos0), func(t *testing.T) {
			if !shaders.LayerFits(c.dim, c.heads, c.kvHeads, c.hd, c.ffn, c.pos0) {
				t.Fatalf("LayerFits refuses the case")
			}
			qd, kvd := c.heads*c.hd, c.kvHeads*c.hd
			seq := c.pos0 + 2
			p := shaders.LayerParams{Dim: uint32(c.dim), FFN: uint32(c.ffn), Eps: 1e-5}
			p.AttnParams = shaders.AttnParams{T: 1, Heads: uint32(c.heads), KVHeads: uint32(c.kvHeads), HeadDim: uint32(c.hd),
				Pos0: uint32(c.pos0), NSplit: uint32(c.pos0/shaders.AttnSplit + 1), Scale: float32(math.Sqrt(float64(c.hd))), Ring: uint32(seq)}
			p.Interleaved, p.AttnFactor = c.inter, 1.1
			// One weight buffer, the parts at ragged offsets.
			var w []float32
			part := func(n int, norm bool) uint32 {
				w = append(w, randn(r, 3, 1)...)
				off := uint32(len(w))
				if norm {
					for range n {
						w = append(w, float32(1+0.1*r.NormFloat64()))
					}
				} else {
					w = append(w, randn(r, n, 1/math.Sqrt(float64(n/max(1, c.dim))))...)
				}
				return off
			}
			p.AN, p.WQ, p.WK, p.WV = part(c.dim, true), part(qd*c.dim, false), part(kvd*c.dim, false), part(kvd*c.dim, false)
			p.WO, p.FN, p.WG, p.WU = part(c.dim*qd, false), part(c.dim, true), part(c.ffn*c.dim, false), part(c.ffn*c.dim, false)
			p.WD = part(c.dim*c.ffn, false)
			inv := make([]float32, c.hd/2)
			for i := range inv {
				inv[i] = float32(1 / math.Pow(10000, float64(2*i)/float64(c.hd)))
			}
			x := randn(r, c.dim, 1)
			kc, vc := randn(r, seq*kvd, 1), randn(r, seq*kvd, 1)
			gx, gkc, gvc := shaders.Bits(x), shaders.Bits(kc), shaders.Bits(vc)
			if err := d.Run(shaders.Layer, shaders.Spec{}, [3]uint32{1, 1, 1}, p.Words(), shaders.Bits(w), gx, gkc, gvc, shaders.Bits(inv)); err != nil {
				t.Fatal(err)
			}
			tx, tkc, tvc := slices.Clone(x), slices.Clone(kc), slices.Clone(vc)
			shaders.LayerTwin(p, shaders.Bits(w), shaders.Bits(inv), tx, tkc, tvc)
			near(t, "x", shaders.Floats(gx), tx, 1e-5)
			near(t, "k cache", shaders.Floats(gkc), tkc, 1e-5)
			near(t, "v cache", shaders.Floats(gvc), tvc, 1e-5)
			if slices.Equal(tx, x) {
				t.Fatal("the twin left x as it was")
			}
		})
	}
	if shaders.LayerFits(64, 2, 2, 32, 64, 511) || shaders.LayerFits(260, 4, 4, 65, 100, 0) || shaders.LayerFits(64, 8, 8, 8, 1028, 0) || shaders.LayerFits(64, 8, 8, 8, 172, 1024) ||
		shaders.LayerFits(66, 6, 6, 11, 172, 0) {
		t.Error("LayerFits takes a layer layer.wgsl cannot run")
	}
}
