package webgpu

import (
	"encoding/binary"
	"math"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

func float32frombytes(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

func u(n int) uint32 { return uint32(n) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func (b *Backend) Embed(dst backend.Buf, table backend.Weight, ids []int) {
	d, w := dst.(*buf), table.(*weight)
	words := make([]uint32, len(ids))
	for i, id := range ids {
		words[i] = u(id)
	}
	for _, pg := range w.pages {
		p := shaders.EmbedParams{N: u(len(ids)), Cols: u(w.cols), Rows: u(pg.rows), Row0: u(pg.row0), WBase: pg.base, DstOff: u(d.off), DstStride: u(d.cols)}
		grid := [3]uint32{u(ceilDiv(ceilDiv(w.cols, 32), 64)), u(len(ids)), 1}
		b.s.run(shaders.Embed, shaders.Spec{Format: w.format}, grid, p.Words(), bufArg(pg.buf), hostArg(words), bufArg(d.b))
	}
}

func (b *Backend) RMSNorm(dst, x backend.Buf, w backend.Weight, eps float32) {
	d, s, g := dst.(*buf), x.(*buf), w.(*weight)
	if s.b == d.b {
		// In place (the q/k norms): WebGPU forbids binding one buffer to two
		// writable bindings of a dispatch, so normalise from a copy.
		tmp, err := b.scratch(s.rows, s.cols)
		if err != nil {
			b.s.fail(err)
			return
		}
		defer b.s.pool.put(tmp.b)
		b.copyRows(s.b, tmp.b, s.off, 0, s.rows*s.cols)
		s = tmp
	}
	p := shaders.RMSNormParams{Rows: u(s.rows), Cols: u(s.cols), Group: u(g.cols), XOff: u(s.off), XStride: u(s.cols),
		DstOff: u(d.off), DstStride: u(d.cols), Eps: eps}
	b.s.run(shaders.RMSNorm, shaders.Spec{}, [3]uint32{u(s.cols / g.cols), u(s.rows), 1}, p.Words(),
		bufArg(g.pages[0].buf), bufArg(s.b), bufArg(d.b))
}

// MatMul runs one dispatch per page of w. Batches useGEMM picks go to the
// tiled gemm kernel (64 rows × 32 tokens per workgroup, staged in
// workgroup memory). Otherwise rows of at most shortRow columns go to
// matvec_rows, one invocation per row; a batch of one token (decode) uses
// the matrix-vector specialisation of matmul, and other batches put 8
// tokens in a workgroup so that each dequantised weight chunk serves all 8. f16 weights
// with an even number of columns use f16 arithmetic when the device has
// shader-f16.
func (b *Backend) MatMul(dst, x backend.Buf, w, bias backend.Weight) {
	d, s, m := dst.(*buf), x.(*buf), w.(*weight)
	bb := b.zero
	if bias != nil {
		bb = bias.(*weight).pages[0].buf
	}
	spec := shaders.Spec{Format: m.format, F16: b.f16 && m.format == tensor.F16 && m.cols%2 == 0}
	for _, pg := range m.pages {
		k, sp := shaders.MatMul, spec
		var groups, z int
		switch {
		case b.useGEMM(s.rows, m.cols, m.format):
			k, groups, z = shaders.GEMM, ceilDiv(pg.rows, 64), ceilDiv(s.rows, 32)
		case m.cols <= shortRow:
			k, groups, z = shaders.MatVecRows, ceilDiv(pg.rows, 64), s.rows
		default:
			sp.TT = 8
			if s.rows == 1 {
				sp.TT = 1
			}
			groups, z = pg.rows, ceilDiv(s.rows, sp.TT)
		}
		nx, ny := shaders.Grid(groups)
		p := shaders.MatMulParams{Rows: u(pg.rows), Cols: u(m.cols), T: u(s.rows), XOff: u(s.off), XStride: u(s.cols),
			DstOff: u(d.off), DstStride: u(d.cols), WBase: pg.base, HasBias: bias != nil, Row0: u(pg.row0), NX: nx}
		b.s.run(k, sp, [3]uint32{nx, ny, u(z)}, p.Words(), bufArg(pg.buf), bufArg(s.b), bufArg(d.b), bufArg(bb))
	}
}

// shortRow is the widest row matvec_rows takes (see matvec_rows.wgsl).
const shortRow = 256

// useGEMM says whether a batch of t tokens through rows of cols columns
// in format f goes to the tiled gemm kernel, from BenchmarkPrefill on
// lavapipe (see RATIONALE.md): past 8 tokens for rows wider than shortRow
// (matmul then needs a second 8-token group and gemm has its 32-token tile
// for the same cost); from 16 tokens for short rows, which matvec_rows
// handles well below that, except in q4_k, whose short rows gemm stages
// more slowly than matvec_rows reads them at every batch size measured.
func (b *Backend) useGEMM(t, cols int, f tensor.DType) bool {
	switch b.gemm {
	case gemmNever:
		return false
	case gemmAlways:
		return t > 1
	}
	if cols > shortRow {
		return t > 8
	}
	return t >= 16 && f != tensor.Q4_K
}

// Backend.gemm: when MatMul uses the tiled kernel.
const (
	gemmAuto   = iota // useGEMM's measured rule
	gemmNever         // benchmarks: the kernels it replaces
	gemmAlways        // benchmarks: every batch
)

func (b *Backend) RoPE(x backend.Buf, headDim, pos0 int, r *backend.Rope) {
	s := x.(*buf)
	p := shaders.RoPEParams{Rows: u(s.rows), Cols: u(s.cols), HeadDim: u(headDim), Pos0: u(pos0), XOff: u(s.off), XStride: u(s.cols),
		Interleaved: r.Interleaved, AttnFactor: r.AttnFactor}
	grid := [3]uint32{u(ceilDiv(s.cols/2, 64)), u(s.rows), 1}
	b.s.run(shaders.RoPE, shaders.Spec{}, grid, p.Words(), hostArg(shaders.Bits(r.InvFreq)), bufArg(s.b))
}

// copyRows records dst[dstOff:] = src[srcOff:] for n floats.
func (b *Backend) copyRows(src, dst *buffer, srcOff, dstOff, n int) {
	nx, ny := shaders.Grid(ceilDiv(n, 256))
	p := shaders.CopyParams{N: u(n), SrcOff: u(srcOff), DstOff: u(dstOff), NX: nx}
	b.s.run(shaders.Copy, shaders.Spec{}, [3]uint32{nx, ny, 1}, p.Words(), bufArg(src), bufArg(dst))
}

// packF16 records dst[dstOff/2:] = src[srcOff:] for n floats (n, dstOff
// even) rounded to f16 and packed in pairs.
func (b *Backend) packF16(src, dst *buffer, srcOff, dstOff, n int) {
	nx, ny := shaders.Grid(ceilDiv(n/2, 256))
	p := shaders.CopyParams{N: u(n), SrcOff: u(srcOff), DstOff: u(dstOff), NX: nx}
	b.s.run(shaders.PackF16, shaders.Spec{}, [3]uint32{nx, ny, 1}, p.Words(), bufArg(src), bufArg(dst))
}

// Attention stores k and v with the copy kernel (pack_f16 for an f16
// cache), then runs the two flash-decoding passes, specialised to read the
// cache's format; the partials live in pooled scratch.
func (b *Backend) Attention(dst, q, k, v backend.Buf, cache backend.KV, s backend.AttnSpec) {
	out, qb, kb, vb, c := dst.(*buf), q.(*buf), k.(*buf), v.(*buf), cache.(*kv)
	kvDim := s.KVHeads * s.HeadDim
	T := qb.rows
	store := b.copyRows
	if c.f16 {
		store = b.packF16
	}
	store(kb.b, c.k[s.Layer], kb.off, s.Pos0*kvDim, T*kvDim)
	store(vb.b, c.v[s.Layer], vb.off, s.Pos0*kvDim, T*kvDim)
	nsplit := ceilDiv(s.Pos0+T, shaders.AttnSplit)
	part, err := b.scratch(T*s.Heads*nsplit, s.HeadDim+2)
	if err != nil {
		b.s.fail(err)
		return
	}
	defer b.s.pool.put(part.b)
	p := shaders.AttnParams{T: u(T), Heads: u(s.Heads), KVHeads: u(s.KVHeads), HeadDim: u(s.HeadDim), Pos0: u(s.Pos0),
		QOff: u(qb.off), QStride: u(qb.cols), DstOff: u(out.off), DstStride: u(out.cols), NSplit: u(nsplit),
		Scale: float32(math.Sqrt(float64(s.HeadDim)))}
	args := []arg{bufArg(qb.b), bufArg(c.k[s.Layer]), bufArg(c.v[s.Layer]), bufArg(part.b), bufArg(out.b)}
	b.s.run(shaders.AttnPartial, shaders.Spec{KVF16: c.f16}, [3]uint32{u(nsplit), u(s.Heads), u(T)}, p.Words(), args...)
	// attn_reduce only combines the partials, so one pipeline serves both
	// cache formats.
	b.s.run(shaders.AttnReduce, shaders.Spec{}, [3]uint32{u(s.Heads), u(T), 1}, p.Words(), args...)
}

func (b *Backend) Add(dst, x backend.Buf) {
	d, s := dst.(*buf), x.(*buf)
	n := d.rows * d.cols
	nx, ny := shaders.Grid(ceilDiv(n, 256))
	p := shaders.AddParams{N: u(n), DstOff: u(d.off), XOff: u(s.off), NX: nx}
	b.s.run(shaders.Add, shaders.Spec{}, [3]uint32{nx, ny, 1}, p.Words(), bufArg(d.b), bufArg(s.b))
}

// ffnStep records swiglu or accum over rows×cols.
func (b *Backend) ffnStep(k shaders.Kernel, dst, y *buf, gOff, mode int) {
	p := shaders.FFNParams{Rows: u(dst.rows), Cols: u(dst.cols), DstOff: u(dst.off), DstStride: u(dst.cols),
		YOff: u(y.off), YStride: u(y.cols), GOff: u(gOff), Mode: u(mode)}
	b.s.run(k, shaders.Spec{}, [3]uint32{u(ceilDiv(dst.cols, 64)), u(dst.rows), 1}, p.Words(), bufArg(dst.b), bufArg(y.b))
}
