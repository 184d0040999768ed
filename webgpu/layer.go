package webgpu

import (
	"fmt"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

// layerPack is a layer's weights copied into one buffer for layer.wgsl,
// which has too few bindings for them all, and their word offsets there:
// the parts of shaders.LayerParams.
type layerPack struct {
	b                  *buffer
	an, wq, wk, wv, wo uint32
	qn, kn             uint32
	fn, wg, wu, wd     uint32
	wr, et, maxW       uint32
}

// layerMaxPack bounds a packed layer's bytes: packing copies the layer's
// weights (a routed layer's every expert) once more on the device.
const layerMaxPack = 16 << 20

// FuseLayer runs a layer on the one token of x as one layer.wgsl
// dispatch instead of the five to seven the ops record (matvec_multi,
// rmsnorm for QK-norm, attn_rope, matvec + residual, then gate_up and
// matvec + residual, or router_route, moe_gu and moe_down_sum +
// residual), when the model is small enough for its vectors to live in
// workgroup memory (shaders.LayerFits, shaders.LayerMoEFits), every
// weight is f32 in one page and the cache is f32 over the full context;
// otherwise it records nothing and reports false. On a CPU adapter each
// dispatch has a fixed cost (the queue, barriers, workgroup setup) that
// a small model's products do not amortise. The first call for a layer
// copies its weights into one buffer (layer.wgsl has too few bindings
// for them), which costs the layer's weight bytes again on the device: at
// most layerMaxPack, and within one binding.
func (b *Backend) FuseLayer(x backend.Buf, cache backend.KV, w *backend.DenseLayer, s backend.LayerSpec) bool {
	xb, ok := x.(*buf)
	c, ok2 := cache.(*kv)
	if !ok || !ok2 || b.noLayer || b.oldMatVec || b.unfused || b.s.err != nil || xb.rows != 1 || xb.off != 0 || c.f16 ||
		s.Layer >= len(c.lens) || c.lens[s.Layer] != c.seq || s.Pos0 >= c.seq || s.Rope == nil || len(s.Rope.InvFreq) != s.HeadDim/2 {
		return false
	}
	dim := xb.cols
	qd, kvd := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	if c.dim != kvd {
		return false
	}
	spec := shaders.Spec{}
	if w.Router != nil {
		maxW := 0
		for _, e := range w.Experts {
			if e == nil {
				return false
			}
			if g, ok := e.Gate.(*weight); ok {
				maxW = max(maxW, g.rows)
			}
		}
		r := w.Rule
		if r == nil || r.SelectionBias || !shaders.LayerMoEFits(dim, s.Heads, s.KVHeads, s.HeadDim, len(w.Experts), r.TopK, maxW, s.Pos0) {
			return false
		}
		// The experts' sums in the order the unfused MoE kernels would
		// take on this adapter, so the fused layer keeps their bits.
		spec.E, spec.K, spec.L = len(w.Experts), r.TopK, b.moeLanes()
	} else {
		ffn := 0
		if g, ok := w.Gate.(*weight); ok {
			ffn = g.rows
		}
		if !shaders.LayerFits(dim, s.Heads, s.KVHeads, s.HeadDim, ffn, s.Pos0) {
			return false
		}
	}
	pk := b.packs[w]
	if pk == nil {
		var ok bool
		if pk, ok = b.packLayer(w, dim, qd, kvd); !ok {
			return false
		}
	}
	p := shaders.LayerParams{Dim: u(dim), Eps: s.Eps,
		AN: pk.an, WQ: pk.wq, WK: pk.wk, WV: pk.wv, WO: pk.wo, FN: pk.fn, WG: pk.wg, WU: pk.wu, WD: pk.wd}
	if w.Gate != nil {
		p.FFN = u(w.Gate.(*weight).rows)
	}
	if w.QNorm != nil {
		p.QN, p.KN, p.QGroup, p.KGroup = pk.qn, pk.kn, u(w.QNorm.(*weight).cols), u(w.KNorm.(*weight).cols)
	}
	if r := w.Rule; w.Router != nil {
		p.MoE, p.WR, p.ET, p.MaxW = true, pk.wr, pk.et, pk.maxW
		p.Route = shaders.RouteParams{Sigmoid: r.Scoring == model.Sigmoid, Norm: r.NormTopK, Scale: r.Scale(),
			Groups: u(r.Groups), TopKGroups: u(r.TopKGroups), Top2: r.GroupScore == model.GroupTop2Sum}
	}
	p.AttnParams = shaders.AttnParams{T: 1, Heads: u(s.Heads), KVHeads: u(s.KVHeads), HeadDim: u(s.HeadDim), Pos0: u(s.Pos0),
		QStride: u(qd), DstStride: u(qd), NSplit: u(ceilDiv(s.Pos0+1, shaders.AttnSplit)),
		Scale: backend.AttnSpec{HeadDim: s.HeadDim, Divisor: s.Divisor}.ScoreDivisor(), Ring: u(c.seq)}
	p.Interleaved, p.AttnFactor = s.Rope.Interleaved, s.Rope.AttnFactor
	b.s.run(shaders.Layer, spec, [3]uint32{1, 1, 1}, p.Words(), bufArg(pk.b), bufArg(xb.b), bufArg(c.k[s.Layer]), bufArg(c.v[s.Layer]),
		hostArg(shaders.Bits(s.Rope.InvFreq)))
	return b.s.err == nil
}

// packLayer checks w's shapes and formats and copies its weights into one
// buffer (recorded copies, ordered before the layer's dispatch), with a
// routed layer's expert table (shaders.LayerExpertWords per expert)
// after them.
func (b *Backend) packLayer(w *backend.DenseLayer, dim, qd, kvd int) (*layerPack, bool) {
	type part struct {
		w          backend.Weight
		rows, cols int
		off        *uint32
	}
	pk := &layerPack{}
	parts := []part{{w.AttnNorm, 1, dim, &pk.an}, {w.Wq, qd, dim, &pk.wq}, {w.Wk, kvd, dim, &pk.wk}, {w.Wv, kvd, dim, &pk.wv}, {w.Wo, dim, qd, &pk.wo},
		{w.FFNNorm, 1, dim, &pk.fn}}
	if w.QNorm != nil {
		qg, kg := w.QNorm.(*weight), w.KNorm.(*weight)
		if qg.cols == 0 || kg.cols == 0 || qd%qg.cols != 0 || kvd%kg.cols != 0 {
			return nil, false
		}
		parts = append(parts, part{w.QNorm, 1, qg.cols, &pk.qn}, part{w.KNorm, 1, kg.cols, &pk.kn})
	}
	var table []uint32
	if w.Router != nil {
		E := len(w.Experts)
		parts = append(parts, part{w.Router, E, dim, &pk.wr})
		table = make([]uint32, shaders.LayerExpertWords*E)
		for e, x := range w.Experts {
			g, ok := x.Gate.(*weight)
			if !ok {
				return nil, false
			}
			t := table[shaders.LayerExpertWords*e:]
			parts = append(parts, part{x.Gate, g.rows, dim, &t[0]}, part{x.Up, g.rows, dim, &t[1]}, part{x.Down, dim, g.rows, &t[2]})
			t[3] = u(g.rows)
			pk.maxW = max(pk.maxW, u(g.rows))
		}
	} else {
		ffn := w.Gate.(*weight).rows
		parts = append(parts, part{w.Gate, ffn, dim, &pk.wg}, part{w.Up, ffn, dim, &pk.wu}, part{w.Down, dim, ffn, &pk.wd})
	}
	n := 0
	for _, pt := range parts {
		x, ok := pt.w.(*weight)
		if !ok || x.format != tensor.F32 || len(x.pages) != 1 || x.rows*x.cols != pt.rows*pt.cols || x.cols != pt.cols {
			return nil, false
		}
		*pt.off = u(n)
		n += pt.rows * pt.cols
	}
	pk.et = u(n)
	if size := uint64(4 * (n + len(table))); size > layerMaxPack || size > b.d.MaxBinding || size > b.d.MaxBuffer {
		return nil, false // the ops' dispatches take it
	}
	dst, err := b.newF32("layer pack", n+len(table))
	if err != nil {
		b.s.fail(err)
		return nil, false
	}
	if len(table) > 0 {
		// Offsets are known now; the queue writes them before the
		// submission that holds the copies.
		if err := b.d.write(dst, 4*uint64(n), wordBytes(table)); err != nil {
			b.s.fail(fmt.Errorf("webgpu: writing a layer's expert table: %w", err))
			return nil, false
		}
	}
	for _, pt := range parts {
		pg := pt.w.(*weight).pages[0]
		b.copyRows(pg.buf, dst, int(pg.base), int(*pt.off), pt.rows*pt.cols)
	}
	pk.b = dst
	if b.packs == nil {
		b.packs = map[*backend.DenseLayer]*layerPack{}
	}
	b.packs[w] = pk
	return pk, true
}
