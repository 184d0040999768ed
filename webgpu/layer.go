package webgpu

import (
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

// layerPack is a dense layer's weights copied into one buffer for
// layer.wgsl, which has too few bindings for nine weights, and their word
// offsets there.
type layerPack struct {
	b                  *buffer
	an, wq, wk, wv, wo uint32
	fn, wg, wu, wd     uint32
}

// FuseLayer runs a dense layer on the one token of x as one layer.wgsl
// dispatch instead of the five the ops record (matvec_multi, attn_rope,
// matvec + residual, gate_up, matvec + residual), when the model is
// small enough for its vectors to live in workgroup memory
// (shaders.LayerFits), every weight is f32 in one page and the cache is
// f32 over the full context; otherwise it records nothing and reports
// false. On a CPU adapter each dispatch has a fixed cost (the queue,
// barriers, workgroup setup) that a small model's products do not
// amortise. The first call for a layer copies its weights into one
// buffer (layer.wgsl has too few bindings for nine), which costs the
// layer's weight bytes again on the device: the models it takes are at
// most a few MiB per layer.
func (b *Backend) FuseLayer(x backend.Buf, cache backend.KV, w *backend.DenseLayer, s backend.LayerSpec) bool {
	xb, ok := x.(*buf)
	c, ok2 := cache.(*kv)
	if !ok || !ok2 || b.noLayer || b.oldMatVec || b.unfused || b.s.err != nil || xb.rows != 1 || xb.off != 0 || c.f16 ||
		s.Layer >= len(c.lens) || c.lens[s.Layer] != c.seq || s.Pos0 >= c.seq || s.Rope == nil || len(s.Rope.InvFreq) != s.HeadDim/2 {
		return false
	}
	dim := xb.cols
	ffn := 0
	if g, ok := w.Gate.(*weight); ok {
		ffn = g.rows
	}
	if !shaders.LayerFits(dim, s.Heads, s.KVHeads, s.HeadDim, ffn, s.Pos0) {
		return false
	}
	qd, kvd := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	if c.dim != kvd {
		return false
	}
	pk := b.packs[w]
	if pk == nil {
		var ok bool
		if pk, ok = b.packLayer(w, dim, qd, kvd, ffn); !ok {
			return false
		}
	}
	p := shaders.LayerParams{Dim: u(dim), FFN: u(ffn), Eps: s.Eps,
		AN: pk.an, WQ: pk.wq, WK: pk.wk, WV: pk.wv, WO: pk.wo, FN: pk.fn, WG: pk.wg, WU: pk.wu, WD: pk.wd}
	p.AttnParams = shaders.AttnParams{T: 1, Heads: u(s.Heads), KVHeads: u(s.KVHeads), HeadDim: u(s.HeadDim), Pos0: u(s.Pos0),
		QStride: u(qd), DstStride: u(qd), NSplit: u(ceilDiv(s.Pos0+1, shaders.AttnSplit)),
		Scale: backend.AttnSpec{HeadDim: s.HeadDim, Divisor: s.Divisor}.ScoreDivisor(), Ring: u(c.seq)}
	p.Interleaved, p.AttnFactor = s.Rope.Interleaved, s.Rope.AttnFactor
	b.s.run(shaders.Layer, shaders.Spec{}, [3]uint32{1, 1, 1}, p.Words(), bufArg(pk.b), bufArg(xb.b), bufArg(c.k[s.Layer]), bufArg(c.v[s.Layer]),
		hostArg(shaders.Bits(s.Rope.InvFreq)))
	return b.s.err == nil
}

// packLayer checks w's shapes and formats and copies its weights into one
// buffer (recorded copies, ordered before the layer's dispatch).
func (b *Backend) packLayer(w *backend.DenseLayer, dim, qd, kvd, ffn int) (*layerPack, bool) {
	parts := []struct {
		w          backend.Weight
		rows, cols int
	}{{w.AttnNorm, 1, dim}, {w.Wq, qd, dim}, {w.Wk, kvd, dim}, {w.Wv, kvd, dim}, {w.Wo, dim, qd},
		{w.FFNNorm, 1, dim}, {w.Gate, ffn, dim}, {w.Up, ffn, dim}, {w.Down, dim, ffn}}
	offs := make([]uint32, len(parts))
	n := 0
	for i, pt := range parts {
		x, ok := pt.w.(*weight)
		if !ok || x.format != tensor.F32 || len(x.pages) != 1 || x.pooled != nil || x.rows*x.cols != pt.rows*pt.cols || x.cols != pt.cols {
			return nil, false
		}
		offs[i] = u(n)
		n += pt.rows * pt.cols
	}
	dst, err := b.newF32("layer pack", n)
	if err != nil {
		b.s.fail(err)
		return nil, false
	}
	for i, pt := range parts {
		pg := pt.w.(*weight).pages[0]
		b.copyRows(pg.buf, dst, int(pg.base), int(offs[i]), pt.rows*pt.cols)
	}
	pk := &layerPack{b: dst, an: offs[0], wq: offs[1], wk: offs[2], wv: offs[3], wo: offs[4], fn: offs[5], wg: offs[6], wu: offs[7], wd: offs[8]}
	if b.packs == nil {
		b.packs = map[*backend.DenseLayer]*layerPack{}
	}
	b.packs[w] = pk
	return pk, true
}
