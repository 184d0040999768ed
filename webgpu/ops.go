package webgpu

import (
	"encoding/binary"
	"math"
	"slices"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

func float32frombytes(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

func u(n int) uint32 { return uint32(n) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func (b *Backend) Embed(dst backend.Buf, table backend.Weight, ids []int) {
	d, w := dst.(*buf), table.(*weight)
	if len(ids) == d.rows {
		b.s.overwritten(d) // all of d is written
	}
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
	if s.b == d.b && s.off == d.off && s.cols == d.cols && !b.oldMatVec {
		// In place (the q/k norms): WebGPU forbids binding one buffer to
		// two writable bindings of a dispatch, so in_place binds it once.
		p := shaders.RMSNormParams{Rows: u(s.rows), Cols: u(s.cols), Group: u(g.cols), XOff: u(s.off), XStride: u(s.cols),
			DstOff: u(d.off), DstStride: u(d.cols), Eps: eps}
		l, n := b.lastNorm, len(b.s.ops)
		if n > 0 && l.op == n-1 && l.submits == b.s.submits && l.p.Rows == p.Rows && l.p.Eps == eps && l.x != s.b && l.p.Groups1 == 0 {
			// The previous dispatch normalised another tensor in place
			// (the q norm before this k norm): one in_place2 for both.
			b.s.ops = b.s.ops[:n-1]
			b.s.byFile[shaders.RMSNormIP.File]--
			p2 := l.p
			p2.Groups1, p2.Group2, p2.XOff2, p2.XStride2 = p2.Cols/p2.Group, p.Group, p.XOff, p.XStride
			b.s.run(shaders.RMSNormIP2, shaders.Spec{}, [3]uint32{p2.Groups1 + p.Cols/p.Group, p.Rows, 1}, p2.Words(),
				bufArg(l.w), bufArg(l.x), bufArg(b.spare), bufArg(g.pages[0].buf), bufArg(s.b))
			b.lastNorm = lastNorm{op: -1}
			return
		}
		b.s.run(shaders.RMSNormIP, shaders.Spec{}, [3]uint32{u(s.cols / g.cols), u(s.rows), 1}, p.Words(),
			bufArg(g.pages[0].buf), bufArg(s.b), bufArg(b.spare))
		b.lastNorm = lastNorm{op: len(b.s.ops) - 1, submits: b.s.submits, p: p, w: g.pages[0].buf, x: s.b}
		return
	}
	b.s.overwritten(d, s.b)
	fusable := s.b != d.b && g.cols == s.cols
	if s.b == d.b {
		// Overlapping views: normalise from a copy.
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
	if fusable && b.s.err == nil {
		b.noteNorm(s, d, g.pages[0].buf, 0, eps)
	}
}

// lastNorm is a recorded in-place rmsnorm dispatch the next in-place one
// may join (see lastMatVec for op and submits).
type lastNorm struct {
	op, submits int
	p           shaders.RMSNormParams
	w, x        *buffer
}

// MatMul runs one dispatch per page of w (mulPath picks the kernel).
// Decode steps, and on a CPU adapter batches up to matVecBatch tokens, go
// to matvec, in chunks of tokens that fit a uniform binding of x where
// that is how matvec reads x (xuTokens). Batches useGEMM picks go to the
// tiled gemm kernel (64 rows × 32 tokens per workgroup, staged in
// workgroup memory). Otherwise rows of at most shortRow columns go to
// matvec_rows, one invocation per row; a batch of one token (decode) uses
// the matrix-vector specialisation of matmul, and other batches put 8
// tokens in a workgroup so that each dequantised weight chunk serves all 8. f16 weights
// with an even number of columns use f16 arithmetic when the device has
// shader-f16.
func (b *Backend) MatMul(dst, x backend.Buf, w, bias backend.Weight) {
	d, s, m := dst.(*buf), x.(*buf), w.(*weight)
	if d.rows*d.cols == s.rows*m.rows {
		b.s.overwritten(d, s.b) // every path writes all of d
	}
	bb := b.zero
	if bias != nil {
		bb = bias.(*weight).pages[0].buf
	}
	spec := shaders.Spec{Format: m.format, F16: b.f16 && m.format == tensor.F16 && m.cols%2 == 0}
	path := b.mulPath(s, m, spec)
	if path == pathMatVec {
		if bias == nil && b.fuseMulti(d, s, m) {
			return
		}
		if len(m.pages) == 1 {
			if nm := b.normFor(s, ceilDiv(m.rows, shaders.MatVecGroupRows(shaders.MatVec, b.matVecLanes(m.cols))), d.b); nm != nil {
				pg := m.pages[0]
				b.matVecRes(shaders.MatVec, d, s, m, pg, bb, bias != nil, pg.buf, pg.base, nil, nm)
				return
			}
		}
		n := b.xuTokens(d, s, m)
		for _, pg := range m.pages {
			for i := 0; i < s.rows; i += n {
				// A batch larger than a uniform binding holds goes in
				// chunks that fit (see xuTokens).
				c := min(n, s.rows-i)
				xi, di := &buf{b: s.b, rows: c, cols: s.cols, off: s.off + i*s.cols}, &buf{b: d.b, rows: c, cols: d.cols, off: d.off + i*d.cols}
				b.matVec(shaders.MatVec, di, xi, m, pg, bb, bias != nil, pg.buf)
			}
		}
		return
	}
	for _, pg := range m.pages {
		k, sp := shaders.MatMul, spec
		var groups, z int
		switch path {
		case pathGEMM:
			k, groups, z = shaders.GEMM, ceilDiv(pg.rows, 64), ceilDiv(s.rows, 32)
		case pathRows:
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

// mulPath is the kernel MatMul sends a product to.
type mulPath int

const (
	pathMatVec mulPath = iota // matvec.wgsl, a workgroup row per token
	pathGEMM                  // gemm.wgsl, 64 rows × 32 tokens per workgroup
	pathRows                  // matvec_rows.wgsl, one invocation per row
	pathMatMul                // matmul.wgsl, 8 tokens per workgroup
)

// mulPath says which kernel MatMul runs x through w on (spec is MatMul's
// specialisation, for F16): matvec when useMatVec says so, gemm when
// useGEMM does, else matvec_rows for rows of at most shortRow columns and
// matmul for wider ones.
func (b *Backend) mulPath(x *buf, w *weight, spec shaders.Spec) mulPath {
	switch {
	case b.useMatVec(x, w, spec):
		return pathMatVec
	case b.useGEMM(x.rows, w.cols, w.format):
		return pathGEMM
	case w.cols <= shortRow:
		return pathRows
	}
	return pathMatMul
}

// useMatVec says whether x through w goes to the matvec kernel: a batch
// of at most matVecBatch tokens (one on a GPU), at an offset and width
// that are multiples of four, through rows of whole matvec units (see
// shaders.MatVecUnit), unless f16 arithmetic is on (matvec has only the
// f32 path).
func (b *Backend) useMatVec(x *buf, w *weight, spec shaders.Spec) bool {
	// matvec reads x in aligned quads (see matvec.wgsl).
	return !b.oldMatVec && x.rows <= b.matVecBatch(w.format) && x.off%4 == 0 && x.cols%4 == 0 && w.cols%shaders.MatVecUnit(w.format) == 0 && !spec.F16
}

// matVecBatch is the largest batch of tokens MatMul sends through weights
// in format f to matvec, one workgroup row per token (each token reads
// the weights again), rather than matmul or gemm. On a CPU adapter, from
// BenchmarkPrefill on lavapipe (RATIONALE.md, "WebGPU: prefill through
// matvec on a CPU adapter"): caches serve the repeated reads and gemm's
// staging and barriers cost more than they save, so for f16 and the block
// formats matvec took 0.13-0.82 of gemm's CPU time at every batch measured
// (16 to 512 tokens, 512 and 1024 columns, 64 and 256 tokens at 4096) with
// one lane per row (lavapipe), and 0.28-1.02 with eight lanes meeting in
// workgroup memory (the shape of a CPU adapter with subgroups,
// SwiftShader), while f32's gemm was the cheaper from 32 or 64 tokens. So the rule depends on the adapter being
// a CPU, not on its lanes. On a GPU the weights' reuse is what gemm is
// for and nothing was measured: decode only, as before.
// Backend.matVecTokens overrides it (benchmarks, tests): n > 0 up to n
// tokens, n < 0 decode only.
func (b *Backend) matVecBatch(f tensor.DType) int {
	switch {
	case b.matVecTokens > 0:
		return b.matVecTokens
	case b.matVecTokens < 0 || !b.d.Adapter.Software:
		return 1
	case f == tensor.F32:
		return 16
	}
	return 512
}

// matVecLanes is matvec's lanes per row for rows of cols columns: one for
// short rows (no barrier, which on a CPU adapter is a context switch);
// where the lanes meet through subgroups, MatVecWide or the adapter's
// smallest subgroup if that is narrower (every lane of a row must be in
// one subgroup; see lanes_sg.wgsl); otherwise one on a CPU adapter and
// MatVecWide on a GPU. On a CPU adapter an invocation is a SIMD lane, so
// with one lane per row a SIMD group is neighbouring rows that load the
// same x quad (one broadcast load, no gather) and there is no barrier:
// on lavapipe that measured 1.1-1.9x MatVecWide's ratio to the copy
// kernel at 512² and 2048² for every format, and decoded the Mixtral
// shape 1.2x faster (RATIONALE.md, "WebGPU: one lane per row on a CPU
// adapter"). SwiftShader in the browser has subgroups and keeps its
// lanes. b.lanes overrides the choice past shortRow.
func (b *Backend) matVecLanes(cols int) int {
	switch {
	case cols <= shortRow:
		return 1
	case b.lanes > 0:
		return b.lanes
	case b.subgroups:
		return min(shaders.MatVecWide, b.d.SubgroupMin)
	case b.d.Adapter.Software:
		return 1
	}
	return shaders.MatVecWide
}

// matVecSpec is matvec's specialisation for weights in format f with l
// lanes per row: subgroups where lanes meet (l > 1) and the backend uses
// them.
func (b *Backend) matVecSpec(f tensor.DType, l int) shaders.Spec {
	return shaders.Spec{Format: f, L: l, Subgroups: b.subgroups && l > 1}
}

// lastMatVec is a recorded matvec dispatch Add may redo with the residual
// add fused in: op is its index in the stream and submits the stream's
// submission count when it was recorded (a flush in between ends it).
type lastMatVec struct {
	op, submits int
	k           shaders.Kernel
	dst, x      *buf
	w           *weight
	pg          page
	bias        *buffer
	hasBias     bool
	w2          *buffer
	res         bool    // the residual add is fused in
	norm        *mvNorm // the RMSNorm before it is fused in (x is the norm's output)
	// group is the products of a matvec_multi dispatch (k MatVecMulti),
	// in its order.
	group []mvPart
}

// mvPart is one product of a matvec_multi dispatch.
type mvPart struct {
	dst *buf
	w   *weight
}

// fuseMulti records dst = w·x by redoing the last dispatch, when it is a
// one-page matvec of the same x with no bias and no residual, or a
// matvec_multi of fewer than three, as a matvec_multi that includes this
// product (the q, k and v projections become one dispatch). It reports
// whether it did.
func (b *Backend) fuseMulti(d, x *buf, w *weight) bool {
	l := b.last
	n := len(b.s.ops)
	if b.oldMatVec || b.s.err != nil || x.rows != 1 || n == 0 || l.op != n-1 || l.submits != b.s.submits || len(w.pages) != 1 ||
		*l.x != *x || l.w.format != w.format || l.w.cols != w.cols || len(l.w.pages) != 1 {
		return false
	}
	var group []mvPart
	switch {
	case l.k.File == shaders.MatVec.File && l.k.Entry == shaders.MatVec.Entry && !l.hasBias && !l.res:
		group = []mvPart{{l.dst, l.w}}
		if l.norm != nil && l.dst.b == l.norm.h.b {
			return false
		}
	case l.k.File == shaders.MatVecMulti.File && len(l.group) < 3:
		group = l.group
	default:
		return false
	}
	if d.b == x.b || l.norm != nil && (d.b == l.norm.x.b || d.b == l.norm.h.b) {
		return false
	}
	for _, g := range group {
		if g.dst.b == d.b {
			return false // two writable bindings of one buffer
		}
	}
	group = append(append([]mvPart(nil), group...), mvPart{d, w})
	b.s.ops = b.s.ops[:n-1]
	b.s.byFile[l.k.File]--
	p := shaders.MatVecMultiParams{Cols: u(w.cols), XOff: u(x.off)}
	bufs := [3]*buffer{b.spare, b.spare2, b.spare3}
	ws := [3]*buffer{group[0].w.pages[0].buf, group[0].w.pages[0].buf, group[0].w.pages[0].buf}
	for i, g := range group {
		p.Rows[i], p.Base[i], p.DstOff[i] = u(g.w.rows), g.w.pages[0].base, u(g.dst.off)
		bufs[i], ws[i] = g.dst.b, g.w.pages[0].buf
	}
	l2 := b.matVecLanes(w.cols)
	nx, ny := shaders.Grid(shaders.MatVecMultiGroups(p.Rows, l2))
	p.NX = nx
	args := []arg{bufArg(ws[0]), bufArg(x.b), bufArg(bufs[0]), bufArg(ws[1]), bufArg(ws[2]), bufArg(bufs[1]), bufArg(bufs[2])}
	k, spec := shaders.MatVecMulti, b.matVecSpec(w.format, l2)
	if nm := l.norm; nm != nil {
		// The norm goes in too, but its output is no longer written: it
		// waits aside (pend) for a reader.
		k, spec.Norm = shaders.MatVecMultiNorm, true
		p.XOff, p.NOff, p.Eps = u(nm.x.off), nm.base, nm.eps
		args[1] = bufArg(nm.x.b)
		args = append(args, bufArg(nm.w))
	}
	b.s.run(k, spec, [3]uint32{nx, ny, 1}, p.Words(), args...)
	b.last = lastMatVec{op: len(b.s.ops) - 1, submits: b.s.submits, k: shaders.MatVecMulti, x: x, w: w, group: group, norm: l.norm}
	if nm := l.norm; nm != nil && b.s.err == nil {
		b.s.overwritten(nm.h) // the pending norm of the dispatch this one replaces
		b.s.pend = append(b.s.pend, pendOp{out: *nm.h, at: len(b.s.ops) - 1, submits: b.s.submits, d: nm.d, file: shaders.RMSNorm.File})
	}
	return true
}

// matVec records k over page pg of w for the one token of x. For gate_up
// (MatVecGU) w2 holds the up matrix at the same page layout.
func (b *Backend) matVec(k shaders.Kernel, d, x *buf, w *weight, pg page, bias *buffer, hasBias bool, w2 *buffer) {
	b.matVecRes(k, d, x, w, pg, bias, hasBias, w2, pg.base, nil, nil)
}

// matVecRes is matVec adding into res when it is not nil, and with the
// RMSNorm nm fused in when that is not nil (x is then nm's output, which
// the dispatch writes too).
func (b *Backend) matVecRes(k shaders.Kernel, d, x *buf, w *weight, pg page, bias *buffer, hasBias bool, w2 *buffer, w2Base uint32, res *buf, nm *mvNorm) {
	l := b.matVecLanes(w.cols)
	nx, ny := shaders.Grid(ceilDiv(pg.rows, shaders.MatVecGroupRows(k, l)))
	p := shaders.MatMulParams{Rows: u(pg.rows), Cols: u(w.cols), T: u(x.rows), XOff: u(x.off), XStride: u(x.cols),
		DstOff: u(d.off), DstStride: u(d.cols), WBase: pg.base, HasBias: hasBias, Row0: u(pg.row0), NX: nx, W2Base: w2Base}
	rb := b.spare
	if res != nil {
		p.AddRes, p.ResOff, p.ResStride, rb = true, u(res.off), u(res.cols), res.b
	}
	kr, spec, xb := k, b.matVecSpec(w.format, l), x.b
	var extra []arg
	if nm != nil {
		kr, spec.Norm, xb = shaders.MatVecNorm, true, nm.x.b
		if k.Entry == shaders.MatVecGU.Entry {
			kr = shaders.MatVecGUNorm
		}
		p.XOff, p.XStride, p.NOff, p.Eps, p.HOff = u(nm.x.off), u(nm.x.cols), nm.base, nm.eps, u(nm.h.off)
		extra = []arg{bufArg(nm.w), bufArg(nm.h.b)}
	}
	xa := bufArg(xb)
	if l == 1 && !spec.Subgroups {
		writes := []*buffer{d.b, rb}
		if nm != nil {
			writes = append(writes, nm.h.b)
		}
		if a, xu, off, ok := b.uniformX(xb, p.XOff, p.XStride, x.rows, w.cols, writes...); ok {
			xa, spec.XU, p.XOff = a, xu, off
		}
	}
	b.s.run(kr, spec, [3]uint32{nx, ny, u(x.rows)}, p.Words(),
		append([]arg{bufArg(pg.buf), xa, bufArg(d.b), bufArg(bias), bufArg(rb), bufArg(w2)}, extra...)...)
	b.last = lastMatVec{op: len(b.s.ops) - 1, submits: b.s.submits, k: k, dst: d, x: x, w: w, pg: pg, bias: bias, hasBias: hasBias, w2: w2, res: res != nil, norm: nm}
}

// xuTokens is how many tokens of x one matvec dispatch through w into d
// takes: all of them, unless the kernel runs one lane per row and x's
// rows could be a uniform binding (uniformX) but all of them do not fit
// one: then as many as fit with room for the binding's offset alignment.
// On lavapipe 1024-wide batches of 32 to 512 tokens in chunks of 15 took
// 0.67-0.89 of the CPU time of one dispatch reading x from storage in 9
// of 11 cells, 1.06 and 1.24 in two (BenchmarkPrefill's matvec_sx;
// RATIONALE.md, "WebGPU: prefill through matvec on a CPU adapter").
func (b *Backend) xuTokens(d, x *buf, w *weight) int {
	limit := min(b.d.MaxUniform, 16*shaders.MaxXU)
	if x.rows == 1 || b.matVecLanes(w.cols) != 1 || b.noUniformX || x.b.usage&wgpu.BufferUsageUniform == 0 || x.b == d.b || limit < b.d.UniformAlign {
		return x.rows
	}
	avail := int((limit - b.d.UniformAlign) / 4) // floats past the aligned start
	if x.off%4 != 0 || x.cols%4 != 0 || avail < w.cols {
		return x.rows
	}
	if whole := 4 * (uint64(x.rows-1)*uint64(x.cols) + uint64(w.cols)); whole <= limit-b.d.UniformAlign {
		return x.rows
	}
	return max(1, (avail-w.cols)/x.cols+1)
}

// uniformX binds t rows of cols values of x, the first at word off and
// stride words apart, as a uniform (shaders.Spec.XU) for a one-lane-per-row
// matvec: it returns the binding, the vec4s it holds and off within it.
// ok is false, and x stays a storage binding, when x's buffer cannot be a
// uniform, the range passes the device's uniform binding limit or
// shaders.MaxXU, or the dispatch also writes x's buffer (a uniform and a
// writable storage binding of one buffer conflict in WebGPU).
func (b *Backend) uniformX(x *buffer, off, stride uint32, t, cols int, writes ...*buffer) (a arg, xu int, rel uint32, ok bool) {
	if b.noUniformX || x.usage&wgpu.BufferUsageUniform == 0 || off%4 != 0 || stride%4 != 0 || slices.Contains(writes, x) {
		return arg{}, 0, 0, false
	}
	start := (4 * uint64(off)) &^ (b.d.UniformAlign - 1)
	end := 4 * (uint64(off) + uint64(t-1)*uint64(stride) + uint64(cols))
	size := (end - start + 15) &^ 15
	if size > b.d.MaxUniform || size > 16*shaders.MaxXU || start+size > x.size {
		return arg{}, 0, 0, false
	}
	return arg{buf: x, off: start, size: size}, int(size / 16), off - uint32(start/4), true
}

// fuseAdd records dst += x by redoing the last dispatch, when it is a
// one-page matvec main that wrote exactly x and nothing was recorded
// since, as that matvec with the add fused in: the same sums, so the same
// bits as Add after it. It reports whether it did.
func (b *Backend) fuseAdd(dst, x *buf) bool {
	l := b.last
	n := len(b.s.ops)
	if b.oldMatVec || b.s.err != nil || l.k.Entry != shaders.MatVec.Entry || l.k.File != shaders.MatVec.File ||
		l.submits != b.s.submits || l.op != n-1 || n == 0 || len(l.w.pages) != 1 {
		return false
	}
	if *l.dst != *x || x.rows != 1 || x.cols != l.w.rows || dst.rows*dst.cols != x.cols ||
		dst.b == x.b || dst.b == l.x.b || dst.b == l.pg.buf || l.norm != nil && (dst.b == l.norm.x.b || dst.b == l.norm.h.b) {
		return false
	}
	b.s.ops = b.s.ops[:n-1] // its params stay in the arena, unused, until the flush
	b.s.byFile[l.k.File]--
	b.matVecRes(l.k, l.dst, l.x, l.w, l.pg, l.bias, l.hasBias, l.w2, l.pg.base, &buf{b: dst.b, off: dst.off, rows: 1, cols: dst.cols}, l.norm)
	return true
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
	b.ropes[0], b.ropes[1] = b.ropes[1], lastRoPE{op: len(b.s.ops) - 1, submits: b.s.submits, x: *s, headDim: headDim, pos0: pos0, r: r}
}

// lastRoPE is a recorded rope dispatch Attention may redo inside
// rope_store (see lastMatVec for op and submits).
type lastRoPE struct {
	op, submits int
	x           buf
	headDim     int
	pos0        int
	r           *backend.Rope
}

// fusedRoPE says whether the last two dispatches recorded are RoPE(q) and
// then RoPE(k) at pos0 that rope_store can redo with the cache store.
func (b *Backend) fusedRoPE(q, k *buf, headDim, pos0 int) bool {
	n := len(b.s.ops)
	rq, rk := b.ropes[0], b.ropes[1]
	return !b.oldMatVec && b.s.err == nil && n >= 2 && rq.op == n-2 && rk.op == n-1 && rq.submits == b.s.submits && rk.submits == b.s.submits &&
		rq.x == *q && rk.x == *k && rq.r == rk.r && rq.headDim == headDim && rk.headDim == headDim && rq.pos0 == pos0 && rk.pos0 == pos0
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
// cache's format; the partials live in pooled scratch. Contexts of at most
// AttnSingleSplits splits (1024 positions) take attn_single instead, both
// passes in one workgroup per (head, token): a dispatch fewer per layer,
// at the cost of fewer workgroups, which matters only past that length.
func (b *Backend) Attention(dst, q, k, v backend.Buf, cache backend.KV, s backend.AttnSpec) {
	out, qb, kb, vb, c := dst.(*buf), q.(*buf), k.(*buf), v.(*buf), cache.(*kv)
	kvDim := s.KVHeads * s.HeadDim
	T := qb.rows
	kp := shaders.KVStoreParams{Rows: u(T), HeadDim: u(s.HeadDim), Pos0: u(s.Pos0), QOff: u(qb.off), QStride: u(qb.cols), QCols: u(qb.cols),
		KOff: u(kb.off), KStride: u(kb.cols), VOff: u(vb.off), VStride: u(vb.cols), KVDim: u(kvDim), F16: c.f16}
	distinct := qb.b != kb.b && qb.b != vb.b && kb.b != vb.b && kb.cols == kvDim && vb.cols == kvDim
	ring := c.lens[s.Layer]
	switch {
	case ring < c.seq:
		// A sliding-window layer's ring: position p at slot p mod ring,
		// the batch's rows in at most two runs.
		store := b.copyRows
		if c.f16 {
			store = b.packF16
		}
		start := s.Pos0 % ring
		n1 := min(T, ring-start)
		store(kb.b, c.k[s.Layer], kb.off, start*kvDim, n1*kvDim)
		store(vb.b, c.v[s.Layer], vb.off, start*kvDim, n1*kvDim)
		if n1 < T {
			store(kb.b, c.k[s.Layer], kb.off+n1*kvDim, 0, (T-n1)*kvDim)
			store(vb.b, c.v[s.Layer], vb.off+n1*kvDim, 0, (T-n1)*kvDim)
		}
	case distinct && !c.f16 && T == 1 && b.single(s, 1) && out.b != qb.b && out.b != kb.b && out.b != vb.b &&
		b.fusedRoPE(qb, kb, s.HeadDim, s.Pos0):
		// Both rotations, the store and attention in one dispatch
		// (attn_rope), which leaves k unrotated: the rope of k waits aside
		// for any reader of k (pendOp), right after attn_rope.
		r := b.ropes[1].r
		n := len(b.s.ops)
		ropeK := b.s.ops[n-1]
		b.s.ops = b.s.ops[:n-2]
		b.s.byFile[shaders.RoPE.File] -= 2
		p := shaders.AttnRoPEParams{AttnParams: b.attnParams(out, qb, s, ring), Interleaved: r.Interleaved, AttnFactor: r.AttnFactor,
			KOff: u(kb.off), VOff: u(vb.off)}
		sinks := b.sinks(&p.AttnParams, s)
		b.s.run(shaders.AttnRoPE, shaders.Spec{}, [3]uint32{u(s.Heads), 1, 1}, p.Words(), bufArg(qb.b), bufArg(c.k[s.Layer]), bufArg(c.v[s.Layer]),
			bufArg(kb.b), bufArg(vb.b), bufArg(out.b), bufArg(sinks), hostArg(shaders.Bits(r.InvFreq)))
		if b.s.err == nil {
			b.s.pend = append(b.s.pend, pendOp{out: *kb, at: len(b.s.ops), submits: b.s.submits, d: ropeK, file: shaders.RoPE.File})
		}
		return
	case distinct && !c.f16 && b.fusedRoPE(qb, kb, s.HeadDim, s.Pos0):
		// Redo both rotations inside rope_store: one dispatch for what
		// was rope, rope, copy, copy.
		r := b.ropes[1].r
		n := len(b.s.ops)
		b.s.ops = b.s.ops[:n-2]
		b.s.byFile[shaders.RoPE.File] -= 2
		kp.Interleaved, kp.AttnFactor = r.Interleaved, r.AttnFactor
		jobs := qb.cols/2 + kvDim/2 + kvDim
		b.s.run(shaders.RoPEStore, shaders.Spec{}, [3]uint32{u(ceilDiv(jobs, 64)), u(T), 1}, kp.Words(), hostArg(shaders.Bits(r.InvFreq)),
			bufArg(qb.b), bufArg(kb.b), bufArg(vb.b), bufArg(c.k[s.Layer]), bufArg(c.v[s.Layer]))
	case distinct && !b.oldMatVec:
		b.s.run(shaders.KVStore, shaders.Spec{}, [3]uint32{u(ceilDiv(kvDim, 64)), u(T), 1}, kp.Words(), hostArg(nil),
			bufArg(b.spare), bufArg(kb.b), bufArg(vb.b), bufArg(c.k[s.Layer]), bufArg(c.v[s.Layer]))
	default:
		store := b.copyRows
		if c.f16 {
			store = b.packF16
		}
		store(kb.b, c.k[s.Layer], kb.off, s.Pos0*kvDim, T*kvDim)
		store(vb.b, c.v[s.Layer], vb.off, s.Pos0*kvDim, T*kvDim)
	}
	p := b.attnParams(out, qb, s, ring)
	nsplit := int(p.NSplit)
	sinks := b.sinks(&p, s)
	if b.single(s, T) {
		// Both passes in one dispatch (attn_single): no partials.
		b.s.run(shaders.AttnSingle, shaders.Spec{KVF16: c.f16}, [3]uint32{u(s.Heads), u(T), 1}, p.Words(),
			bufArg(qb.b), bufArg(c.k[s.Layer]), bufArg(c.v[s.Layer]), bufArg(b.spare2), bufArg(out.b), bufArg(sinks))
		return
	}
	part, err := b.scratch(T*s.Heads*nsplit, s.HeadDim+2)
	if err != nil {
		b.s.fail(err)
		return
	}
	defer b.s.pool.put(part.b)
	args := []arg{bufArg(qb.b), bufArg(c.k[s.Layer]), bufArg(c.v[s.Layer]), bufArg(part.b), bufArg(out.b), bufArg(sinks)}
	b.s.run(shaders.AttnPartial, shaders.Spec{KVF16: c.f16}, [3]uint32{u(nsplit), u(s.Heads), u(T)}, p.Words(), args...)
	// attn_reduce only combines the partials, so one pipeline serves both
	// cache formats.
	b.s.run(shaders.AttnReduce, shaders.Spec{}, [3]uint32{u(s.Heads), u(T), 1}, p.Words(), args...)
}

// attnParams are attention's params for q's rows into out.
func (b *Backend) attnParams(out, q *buf, s backend.AttnSpec, ring int) shaders.AttnParams {
	T := q.rows
	return shaders.AttnParams{T: u(T), Heads: u(s.Heads), KVHeads: u(s.KVHeads), HeadDim: u(s.HeadDim), Pos0: u(s.Pos0),
		QOff: u(q.off), QStride: u(q.cols), DstOff: u(out.off), DstStride: u(out.cols), NSplit: u(ceilDiv(s.Pos0+T, shaders.AttnSplit)),
		Scale: s.ScoreDivisor(), Window: u(s.Window), Ring: u(ring)}
}

// sinks returns the buffer to bind for s's sinks, setting p's fields.
func (b *Backend) sinks(p *shaders.AttnParams, s backend.AttnSpec) *buffer {
	if s.Sinks == nil {
		return b.spare
	}
	pg := s.Sinks.(*weight).pages[0]
	p.HasSinks, p.SinksOff = true, pg.base
	return pg.buf
}

// single says whether attention of T rows from s.Pos0 goes to
// attn_single (or attn_rope): both passes in one workgroup per (head,
// token), for contexts of at most AttnSingleSplits splits.
func (b *Backend) single(s backend.AttnSpec, T int) bool {
	return !b.oldMatVec && !b.unfused && s.HeadDim <= shaders.AttnSingleDim && ceilDiv(s.Pos0+T, shaders.AttnSplit) <= shaders.AttnSingleSplits
}

func (b *Backend) Add(dst, x backend.Buf) {
	d, s := dst.(*buf), x.(*buf)
	if b.fuseAdd(d, s) || b.fuseCombineAdd(d, s) {
		return
	}
	n := d.rows * d.cols
	nx, ny := shaders.Grid(ceilDiv(n, 256))
	p := shaders.AddParams{N: u(n), DstOff: u(d.off), XOff: u(s.off), NX: nx}
	b.s.run(shaders.Add, shaders.Spec{}, [3]uint32{nx, ny, 1}, p.Words(), bufArg(d.b), bufArg(s.b))
}

// Scale records x *= s.
func (b *Backend) Scale(x backend.Buf, s float32) {
	d := x.(*buf)
	n := d.rows * d.cols
	nx, ny := shaders.Grid(ceilDiv(n, 256))
	p := shaders.ScaleParams{N: u(n), Off: u(d.off), S: s, NX: nx}
	b.s.run(shaders.Scale, shaders.Spec{}, [3]uint32{nx, ny, 1}, p.Words(), bufArg(d.b))
}

// ffnStep records swiglu or accum over rows×cols.
func (b *Backend) ffnStep(k shaders.Kernel, dst, y *buf, gOff, mode int) {
	p := shaders.FFNParams{Rows: u(dst.rows), Cols: u(dst.cols), DstOff: u(dst.off), DstStride: u(dst.cols),
		YOff: u(y.off), YStride: u(y.cols), GOff: u(gOff), Mode: u(mode)}
	b.s.run(k, shaders.Spec{}, [3]uint32{u(ceilDiv(dst.cols, 64)), u(dst.rows), 1}, p.Words(), bufArg(dst.b), bufArg(y.b))
}
