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
// at a split edge and past several splits; with QK-norm per head and
// over the whole projection; and with a routed FFN (softmax and sigmoid
// scoring, renormalised or not, scaled, with expert groups, experts of
// different and ragged widths, top-k from one to all). The residual row
// and both caches (every position: the new one written, the rest kept)
// must agree within the bound of the twins it stands for
// (TestAttention's 1e-5), and LayerFits or LayerMoEFits must take each
// case.
func TestLayer(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(61, 62))
	type moe struct {
		widths             []int
		topK               int
		sigmoid, norm      bool
		scale              float32
		groups, topKGroups int
	}
	for _, c := range []struct {
		dim, heads, kvHeads, hd, ffn, pos0 int
		inter                              bool
		qk                                 string // "", "head" or "full"
		moe                                *moe
	}{{64, 8, 8, 8, 172, 0, true, "", nil}, {64, 8, 4, 8, 172, 63, false, "", nil}, {36, 6, 2, 6, 20, 64, true, "", nil}, {100, 5, 1, 20, 260, 130, false, "", nil},
		{256, 4, 2, 64, 1024, 130, true, "", nil}, {64, 2, 2, 32, 64, 380, false, "", nil}, {64, 8, 8, 8, 172, 1023, true, "", nil}, {12, 2, 2, 6, 8, 3, false, "", nil},
		{100, 5, 1, 20, 260, 70, false, "head", nil}, {256, 4, 2, 64, 1024, 130, true, "full", nil}, {36, 6, 2, 6, 20, 5, true, "full", nil},
		{32, 4, 2, 8, 0, 11, false, "full", &moe{widths: []int{16, 16, 16, 16, 16, 16, 16, 16}, topK: 4, scale: 1}},
		{100, 5, 1, 20, 0, 70, true, "head", &moe{widths: []int{40, 24, 36, 40}, topK: 2, norm: true, scale: 1}},
		{64, 8, 4, 8, 0, 65, false, "", &moe{widths: []int{18, 30, 7, 64, 22}, topK: 5, sigmoid: true, norm: true, scale: 2.5}},
		{256, 4, 2, 64, 0, 3, true, "", &moe{widths: slices.Repeat([]int{64}, 64), topK: 8, sigmoid: true, norm: true, scale: 1.5, groups: 8, topKGroups: 3}},
		{12, 2, 2, 6, 0, 1, false, "", &moe{widths: []int{9, 5, 12}, topK: 1, scale: 1}},
	} {
		name := fmt.Sprintf("dim=%d/h=%d/kv=%d/hd=%d/ffn=%d/pos0=%d/qk=%q", c.dim, c.heads, c.kvHeads, c.hd, c.ffn, c.pos0, c.qk)
		if c.moe != nil {
			name += fmt.Sprintf("/experts=%d/top%d", len(c.moe.widths), c.moe.topK)
		}
		t.Run(name, func(t *testing.T) {
			qd, kvd := c.heads*c.hd, c.kvHeads*c.hd
			spec := shaders.Spec{}
			if c.moe == nil && !shaders.LayerFits(c.dim, c.heads, c.kvHeads, c.hd, c.ffn, c.pos0) ||
				c.moe != nil && !shaders.LayerMoEFits(c.dim, c.heads, c.kvHeads, c.hd, len(c.moe.widths), c.moe.topK, slices.Max(c.moe.widths), c.pos0) {
				t.Fatalf("LayerFits refuses the case")
			}
			seq := c.pos0 + 2
			p := shaders.LayerParams{Dim: uint32(c.dim), FFN: uint32(c.ffn), Eps: 1e-5}
			p.AttnParams = shaders.AttnParams{T: 1, Heads: uint32(c.heads), KVHeads: uint32(c.kvHeads), HeadDim: uint32(c.hd),
				Pos0: uint32(c.pos0), NSplit: uint32(c.pos0/shaders.AttnSplit + 1), Scale: float32(math.Sqrt(float64(c.hd))), Ring: uint32(seq)}
			p.Interleaved, p.AttnFactor = c.inter, 1.1
			// One weight buffer, the parts at ragged offsets.
			var w []uint32
			part := func(n, cols int, norm bool) uint32 {
				w = append(w, shaders.Bits(randn(r, 3, 1))...)
				off := uint32(len(w))
				if norm {
					for range n {
						w = append(w, math.Float32bits(float32(1+0.1*r.NormFloat64())))
					}
				} else {
					w = append(w, shaders.Bits(randn(r, n, 1/math.Sqrt(float64(cols))))...)
				}
				return off
			}
			p.AN, p.WQ, p.WK, p.WV = part(c.dim, 0, true), part(qd*c.dim, c.dim, false), part(kvd*c.dim, c.dim, false), part(kvd*c.dim, c.dim, false)
			p.WO, p.FN = part(c.dim*qd, qd, false), part(c.dim, 0, true)
			switch c.qk {
			case "head":
				p.QGroup, p.KGroup = uint32(c.hd), uint32(c.hd)
			case "full":
				p.QGroup, p.KGroup = uint32(qd), uint32(kvd)
			}
			if p.QGroup > 0 {
				p.QN, p.KN = part(int(p.QGroup), 0, true), part(int(p.KGroup), 0, true)
			}
			if m := c.moe; m != nil {
				E := len(m.widths)
				// The experts' sums in either lane order the backend may
				// ask for (one lane per row, or MoELanes).
				spec.E, spec.K, spec.L = E, m.topK, 1+(shaders.MoELanes-1)*(len(m.widths)%2)
				p.MoE, p.MaxW = true, uint32(slices.Max(m.widths))
				p.Route = shaders.RouteParams{Sigmoid: m.sigmoid, Norm: m.norm, Scale: m.scale, Groups: uint32(m.groups), TopKGroups: uint32(m.topKGroups)}
				p.WR = part(E*c.dim, c.dim, false)
				table := make([]uint32, shaders.LayerExpertWords*E)
				for e, wd := range m.widths {
					table[4*e], table[4*e+1], table[4*e+2], table[4*e+3] = part(wd*c.dim, c.dim, false), part(wd*c.dim, c.dim, false), part(c.dim*wd, wd, false), uint32(wd)
				}
				p.ET = uint32(len(w))
				w = append(w, table...)
			} else {
				p.WG, p.WU, p.WD = part(c.ffn*c.dim, c.dim, false), part(c.ffn*c.dim, c.dim, false), part(c.dim*c.ffn, c.ffn, false)
			}
			inv := make([]float32, c.hd/2)
			for i := range inv {
				inv[i] = float32(1 / math.Pow(10000, float64(2*i)/float64(c.hd)))
			}
			x := randn(r, c.dim, 1)
			kc, vc := randn(r, seq*kvd, 1), randn(r, seq*kvd, 1)
			gx, gkc, gvc := shaders.Bits(x), shaders.Bits(kc), shaders.Bits(vc)
			if err := d.Run(shaders.Layer, spec, [3]uint32{1, 1, 1}, p.Words(), w, gx, gkc, gvc, shaders.Bits(inv)); err != nil {
				t.Fatal(err)
			}
			tx, tkc, tvc := slices.Clone(x), slices.Clone(kc), slices.Clone(vc)
			shaders.LayerTwin(spec, p, w, shaders.Bits(inv), tx, tkc, tvc)
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
	if shaders.LayerMoEFits(64, 8, 8, 8, 257, 2, 16, 0) || shaders.LayerMoEFits(64, 8, 8, 8, 64, 8, 129, 0) || shaders.LayerMoEFits(64, 8, 8, 8, 8, 9, 16, 0) ||
		shaders.LayerMoEFits(64, 2, 2, 32, 256, 64, 16, 300) {
		t.Error("LayerMoEFits takes a layer layer.wgsl cannot run")
	}
}
