package webgpu

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

// routes is a routing decision on the device: per token K (expert, weight)
// word pairs, shaders.NoExpert marking empty slots.
type routes struct {
	b    *buffer
	t, k int
}

// Route runs the one-kernel router. With a capacity limit it reads the
// choices back, applies routing.ApplyCapacity on the host and writes them
// back: capacity couples all tokens of a batch and only applies to
// prefill, where one sync per sparse layer is affordable.
func (b *Backend) Route(logits backend.Buf, s backend.RouteSpec) backend.Routes {
	l := logits.(*buf)
	K := s.Rule.TopK
	rb, err := b.s.pool.get("routes", uint64(8*l.rows*K), wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc|wgpu.BufferUsageCopyDst)
	if err != nil {
		b.s.fail(err)
		return &routes{}
	}
	bias := b.zero
	if s.Bias != nil {
		bias = s.Bias.(*weight).pages[0].buf
	}
	p := shaders.RouteParams{T: u(l.rows), LogitsOff: u(l.off), LogitsStride: u(l.cols), Sigmoid: s.Rule.Scoring == model.Sigmoid,
		HasBias: s.Bias != nil, Norm: s.Rule.NormTopK, Scale: s.Rule.Scale(),
		Groups: u(s.Rule.Groups), TopKGroups: u(s.Rule.TopKGroups), Top2: s.Rule.GroupScore == model.GroupTop2Sum}
	if !b.fuseRoute(l, p, K, bias, rb) {
		b.s.run(shaders.Route, shaders.Spec{E: l.cols, K: K}, [3]uint32{u(ceilDiv(l.rows, 64)), 1, 1}, p.Words(),
			bufArg(l.b), bufArg(bias), bufArg(rb))
	}
	r := &routes{b: rb, t: l.rows, k: K}
	if s.Capacity > 0 && l.rows > 1 {
		ch, err := b.ReadRoutes(r)
		if err != nil {
			return r
		}
		routing.ApplyCapacity(ch, s.Capacity, s.Rule.Fallback, l.cols)
		if err := b.d.write(rb, 0, encodeRoutes(ch, K)); err != nil {
			b.s.fail(fmt.Errorf("webgpu: writing routes: %w", err))
		}
	}
	return r
}

func encodeRoutes(ch [][]routing.Choice, K int) []byte {
	out := make([]byte, 8*len(ch)*K)
	for t, cs := range ch {
		for k := range K {
			id, w := uint32(shaders.NoExpert), float32(0)
			if k < len(cs) {
				id, w = uint32(cs[k].Expert), cs[k].Weight
			}
			binary.LittleEndian.PutUint32(out[8*(t*K+k):], id)
			binary.LittleEndian.PutUint32(out[8*(t*K+k)+4:], math.Float32bits(w))
		}
	}
	return out
}

// ReadRoutes is a sync point: it submits everything recorded and reads
// the routes back.
// WriteRoutes uploads choices edited on the host over r's device buffer;
// queue order puts the write before any MoE recorded after it.
func (b *Backend) WriteRoutes(r backend.Routes, choices [][]routing.Choice) error {
	rt := r.(*routes)
	if rt.b == nil {
		return b.s.err
	}
	if len(choices) != rt.t {
		return fmt.Errorf("webgpu: routes for %d tokens, %d given", rt.t, len(choices))
	}
	for t, cs := range choices {
		if len(cs) > rt.k {
			return fmt.Errorf("webgpu: token %d has %d choices, the routes hold %d", t, len(cs), rt.k)
		}
	}
	if err := b.d.write(rt.b, 0, encodeRoutes(choices, rt.k)); err != nil {
		return fmt.Errorf("webgpu: writing routes: %w", err)
	}
	return nil
}

func (b *Backend) ReadRoutes(r backend.Routes) ([][]routing.Choice, error) {
	rt := r.(*routes)
	if rt.b == nil {
		return nil, b.s.err
	}
	data, err := b.s.read(rt.b, 0, uint64(8*rt.t*rt.k))
	if err != nil {
		return nil, err
	}
	out := make([][]routing.Choice, rt.t)
	for t := range out {
		for k := range rt.k {
			o := 8 * (t*rt.k + k)
			id := binary.LittleEndian.Uint32(data[o:])
			if id == shaders.NoExpert {
				continue
			}
			out[t] = append(out[t], routing.Choice{Expert: int(id), Weight: float32frombytes(data[o+4:])})
		}
	}
	return out, nil
}

// MoE records the shared experts through the ordinary kernels (matmul,
// swiglu, accum into dst), then the routed experts over the matrices where
// they lie (see expertTable), reading the expert ids from the routes buffer
// on the device: nothing is read back. Per key (a buffer and a format)
// holding gate or up matrices of resident experts, moe_gu computes gate·x
// and up·x of the slots whose expert it holds; swiglu combines them; per
// key holding down matrices, moe_down computes each slot's output; and
// moe_combine adds the slots to dst in rank order.
func (b *Backend) MoE(dst, x backend.Buf, r backend.Routes, f *backend.FFN) {
	d, s := dst.(*buf), x.(*buf)
	T, D := s.rows, s.cols
	// With no shared experts moe_combine starts from zero itself, unless
	// there are no routes to combine (or fusion is off).
	initCombine := len(f.Shared) == 0 && r != nil && !b.oldMatVec
	gptOss := f.Act != model.ActSwiGLU || f.GateBias != nil
	if f.Act != model.ActSwiGLU && len(f.Shared) > 0 {
		b.s.fail(fmt.Errorf("webgpu: shared experts with activation %q are not implemented", f.Act))
		return
	}
	if len(f.Shared) == 0 && !initCombine {
		// Zeroing reads no input; bind the spare buffer there, since WebGPU
		// forbids one buffer range in two writable bindings of a dispatch.
		b.ffnStep(shaders.Accum, d, &buf{b: b.zero, rows: 1, cols: 1}, 0, shaders.AccumZero)
	}
	for i, e := range f.Shared {
		if err := b.sharedExpert(d, s, e, f.SharedGate, i == 0); err != nil {
			b.s.fail(err)
			return
		}
	}
	if r == nil {
		return
	}
	rt := r.(*routes)
	defer b.s.pool.put(rt.b)
	tab, err := b.expertTable(f)
	if err != nil {
		b.s.fail(err)
		return
	}
	if tab.maxW == 0 {
		if initCombine {
			b.ffnStep(shaders.Accum, d, &buf{b: b.zero, rows: 1, cols: 1}, 0, shaders.AccumZero)
		}
		return // no routed expert is resident, so the routes name none
	}
	TK := T * rt.k
	maxW := tab.maxW
	for _, bt := range tab.blocks[:tab.live] {
		maxW = max(maxW, bt.maxW)
	}
	// Slots' rows of g start on quads, so the down kernels may read g
	// through a uniform binding (moeIn).
	maxW = (maxW + 3) &^ 3
	var scr [3]*buf
	for i, cols := range []int{maxW, maxW, D} {
		if scr[i], err = b.scratch(TK, cols); err != nil {
			b.s.fail(err)
			return
		}
		defer b.s.pool.put(scr[i].b)
	}
	g, up, y := scr[0], scr[1], scr[2]
	p := shaders.MoEParams{T: u(T), K: u(rt.k), D: u(D), XOff: u(s.off), XStride: u(s.cols), MaxW: u(maxW), Eps: f.NormEps}
	ap := shaders.MoEActParams{TK: u(TK), MaxW: u(maxW), D: u(D), BW: u(tab.maxW), Clamped: f.Act == model.ActSwiGLUClamped, Alpha: f.Alpha, Limit: f.Limit}
	switch {
	case gptOss:
		// gpt-oss's experts are plain (validation refuses deeper experts
		// in a layer with biases or the clamped activation): moe_gu without
		// its own activation, moe_act with the biases and the clamped
		// activation, moe_down per key, then moe_bias and moe_combine below
		// (moe_down_sum has no step for the per-slot down bias).
		b.moeGU(p, tab, rt.b, s.b, g, up, false)
		gb, ub := b.spare, b.spare2 // distinct: both bindings are writable
		if f.GateBias != nil {
			gw, uw := f.GateBias.(*weight), f.UpBias.(*weight)
			gb, ub = gw.pages[0].buf, uw.pages[0].buf
			ap.HasBias, ap.GBOff, ap.UBOff, ap.BW = true, gw.pages[0].base, uw.pages[0].base, u(gw.cols)
		}
		b.s.run(shaders.MoEAct, shaders.Spec{}, [3]uint32{u(ceilDiv(int(ap.BW), 64)), u(TK), 1}, ap.Words(),
			bufArg(rt.b), bufArg(g.b), bufArg(up.b), bufArg(gb), bufArg(ub))
		b.moeDown(p, tab, rt.b, s.b, g, y)
	case tab.live == 0 && len(tab.down) == 1 && !b.oldMatVec:
		// One block and one key for every down matrix: moe_down_sum
		// computes each column's slots and combines them in one dispatch.
		// A layer with deeper experts takes moe_down, whose per-slot
		// output y the later blocks' norms read and add to, and
		// moe_combine instead: moe_down_sum keeps no per-slot output.
		b.moeGateUp(p, tab, rt.b, s.b, g, up)
		nx, ny := shaders.Grid(shaders.MoETiles(D, b.moeLanes()))
		p.NX, p.Key = nx, tab.down[0].key
		p.DstOff, p.DstStride, p.Init = u(d.off), u(d.cols), initCombine
		b.downSum(p, tab.down[0], tab.buf, rt.b, g.b, d, b.spare, [3]uint32{nx, ny, u(T)})
		return
	default:
		b.moeBlock(p, tab, rt.b, s.b, g, up, y)
	}
	if tab.live > 0 {
		// Later blocks of deeper experts: each slot's input is the norm of
		// its token's x plus its expert's blocks so far (y), and moe_down
		// adds the block's output to y.
		hn, err := b.scratch(TK, D)
		if err != nil {
			b.s.fail(err)
			return
		}
		defer b.s.pool.put(hn.b)
		for _, bt := range tab.blocks[:tab.live] {
			b.s.run(shaders.MoENorm, shaders.Spec{}, [3]uint32{1, 1, u(TK)}, p.Words(),
				bufArg(bt.norms), bufArg(bt.buf), bufArg(rt.b), bufArg(s.b), bufArg(y.b), bufArg(hn.b))
			pb := p
			pb.XOff, pb.XStride, pb.XSlot, pb.Accum = 0, u(D), true, true
			b.moeBlock(pb, bt, rt.b, hn.b, g, up, y)
		}
	}
	if f.DownBias != nil {
		dw := f.DownBias.(*weight)
		ap.GBOff = dw.pages[0].base
		b.s.run(shaders.MoEBias, shaders.Spec{}, [3]uint32{u(ceilDiv(D, 64)), u(TK), 1}, ap.Words(),
			bufArg(rt.b), bufArg(b.spare), bufArg(y.b), bufArg(dw.pages[0].buf), bufArg(b.zero))
	}
	c := shaders.MoECombineParams{T: u(T), K: u(rt.k), D: u(D), DstOff: u(d.off), DstStride: u(d.cols), Init: initCombine}
	b.combine(c, tab.buf, rt.b, y.b, d, b.spare)
}

// moeLanes is the MoE matrix kernels' lanes per row (Spec.L): one on a
// CPU adapter whose lanes do not meet through subgroups, as matVecLanes
// chooses for matvec (lavapipe: an invocation is a SIMD lane, so
// neighbouring rows share the input's loads and no barrier meets the
// lanes; RATIONALE.md, "WebGPU: one lane per row for the routed
// experts"), else shaders.MoELanes. b.moeWide forces MoELanes, for
// benchmarks.
func (b *Backend) moeLanes() int {
	if b.d.Adapter.Software && !b.subgroups && !b.moeWide {
		return 1
	}
	return shaders.MoELanes
}

// moeInput is an MoE matrix kernel's input binding: a as bound, rel the
// input's first word within it.
type moeInput struct {
	a   arg
	rel uint32
}

// moeIn binds the input of an MoE matrix kernel with l lanes per row
// (rows rows of cols values, the first at word off of x, stride words
// apart) as a uniform (Spec.XU, returned as xu) where one lane per row
// runs a decode step (t = 1 token: a prefill's sizes would each compile
// pipelines of their own) and uniformX allows it, else as the storage
// binding (xu 0). writes are the dispatch's writable bindings.
func (b *Backend) moeIn(l int, x *buffer, off, stride uint32, rows, cols, t int, writes ...*buffer) (moeInput, int) {
	if l == 1 && t == 1 {
		if a, xu, rel, ok := b.uniformX(x, off, stride, rows, cols, writes...); ok {
			return moeInput{a, rel}, xu
		}
	}
	return moeInput{bufArg(x), off}, 0
}

// moeBlock records one block of the routed experts over table tab:
// moeGateUp, then moeDown into y.
func (b *Backend) moeBlock(p shaders.MoEParams, tab *expertTable, routes, x *buffer, g, up, y *buf) {
	b.moeGateUp(p, tab, routes, x, g, up)
	b.moeDown(p, tab, routes, x, g, y)
}

// moeDown records moe_down per key of tab holding down matrices, from the
// activated rows in g into y. x fills its binding (moe_down does not read
// it).
func (b *Backend) moeDown(p shaders.MoEParams, tab *expertTable, routes, x *buffer, g, y *buf) {
	l := b.moeLanes()
	nx, ny := shaders.Grid(shaders.MoETiles(int(p.D), l))
	p.NX = nx
	ga, xu := b.moeIn(l, g.b, 0, p.MaxW, int(p.T*p.K), int(p.MaxW), int(p.T), y.b, b.spare, routes)
	for _, m := range tab.down {
		p.Key = m.key
		b.s.run(shaders.MoEDown, shaders.Spec{Format: m.format, L: l, XU: xu}, [3]uint32{nx, ny, p.T * p.K}, p.Words(),
			bufArg(m.buf), bufArg(tab.buf), bufArg(routes), bufArg(x), ga.a, bufArg(y.b), bufArg(b.spare))
	}
}

// moeGateUp records the first half of one block over table tab: moeGU
// (applying the activation itself when there is one key), the activation
// otherwise (ffn.wgsl's swiglu when every expert is silu, else moe_act),
// leaving the activated rows in g.
func (b *Backend) moeGateUp(p shaders.MoEParams, tab *expertTable, routes, x *buffer, g, up *buf) {
	fused := len(tab.gu) == 1 && !b.oldMatVec
	b.moeGU(p, tab, routes, x, g, up, fused)
	if fused {
		return
	}
	TK := int(p.T * p.K)
	if tab.mixedAct {
		// w and x are not read; the spare buffers fill their bindings.
		b.s.run(shaders.MoEBlockAct, shaders.Spec{}, [3]uint32{u(ceilDiv(int(p.MaxW), 64)), u(TK), 1}, p.Words(),
			bufArg(b.zero), bufArg(tab.buf), bufArg(routes), bufArg(b.spare), bufArg(g.b), bufArg(up.b))
	} else {
		b.ffnStep(shaders.SwiGLU, g, up, 0, 0)
	}
}

// moeGU records moe_gu per key of tab holding gate or up matrices: gate·x
// into g and up·x into up, or with act the activated rows into g.
func (b *Backend) moeGU(p shaders.MoEParams, tab *expertTable, routes, x *buffer, g, up *buf, act bool) {
	l := b.moeLanes()
	nx, ny := shaders.Grid(shaders.MoETiles(tab.maxW, l))
	p.NX, p.SwiGLU = nx, act
	rows := int(p.T)
	if p.XSlot {
		rows = int(p.T * p.K)
	}
	xa, xu := b.moeIn(l, x, p.XOff, p.XStride, rows, int(p.D), int(p.T), g.b, up.b, b.spare, routes)
	if xu != 0 {
		p.XOff = xa.rel
	}
	for _, m := range tab.gu {
		p.Key = m.key
		b.s.run(shaders.MoEGateUp, shaders.Spec{Format: m.format, L: l, XU: xu}, [3]uint32{nx, ny, p.T * p.K}, p.Words(),
			bufArg(m.buf), bufArg(tab.buf), bufArg(routes), xa.a, bufArg(g.b), bufArg(up.b), bufArg(b.spare))
	}
}

// downSum records moe_down_sum with p over the down matrices of m into d,
// adding into res when p.AddRes.
func (b *Backend) downSum(p shaders.MoEParams, m matGroup, table, routes, g *buffer, d *buf, res *buffer, grid [3]uint32) {
	l := b.moeLanes()
	ga, xu := b.moeIn(l, g, 0, p.MaxW, int(p.T*p.K), int(p.MaxW), int(p.T), d.b, res, routes)
	b.s.run(shaders.MoEDownSum, shaders.Spec{Format: m.format, L: l, XU: xu}, grid, p.Words(),
		bufArg(m.buf), bufArg(table), bufArg(routes), bufArg(b.spare2), ga.a, bufArg(d.b), bufArg(res))
	b.lastComb = lastCombine{op: len(b.s.ops) - 1, submits: b.s.submits, sum: true, mp: p, m: m, grid: grid,
		table: table, routes: routes, y: g, dst: d.b, out: *d}
}

// lastCombine is a recorded moe_combine dispatch Add may redo with the
// residual add fused in (see lastMatVec for op and submits).
type lastCombine struct {
	op, submits           int
	p                     shaders.MoECombineParams
	table, routes, y, dst *buffer // y: the swiglu rows when sum
	out                   buf
	// sum: the dispatch is moe_down_sum with mp over m's matrices.
	sum  bool
	mp   shaders.MoEParams
	m    matGroup
	grid [3]uint32
}

// combine records moe_combine with p into d, adding into res when
// p.AddRes.
func (b *Backend) combine(p shaders.MoECombineParams, table, routes, y *buffer, d *buf, res *buffer) {
	b.s.run(shaders.MoECombine, shaders.Spec{}, [3]uint32{u(ceilDiv(int(p.D), 64)), p.T, 1}, p.Words(),
		bufArg(table), bufArg(routes), bufArg(y), bufArg(d.b), bufArg(res))
	b.lastComb = lastCombine{op: len(b.s.ops) - 1, submits: b.s.submits, p: p, table: table, routes: routes, y: y, dst: d.b, out: *d}
}

// fuseCombineAdd records dst += x by redoing the last dispatch, when it
// is a moe_combine that wrote exactly x and nothing was recorded since,
// with the add fused in (the same additions as Add's). It reports whether
// it did.
func (b *Backend) fuseCombineAdd(dst, x *buf) bool {
	l := b.lastComb
	n := len(b.s.ops)
	if b.oldMatVec || b.s.err != nil || n == 0 || l.op != n-1 || l.submits != b.s.submits || l.p.AddRes || l.mp.AddRes ||
		l.out != *x || dst.rows != x.rows || dst.cols != x.cols {
		return false
	}
	if l.sum && int(l.mp.D) != x.cols || !l.sum && int(l.p.D) != x.cols {
		return false
	}
	if dst.b == x.b || dst.b == l.routes || dst.b == l.y || dst.b == l.table || l.sum && (dst.b == l.m.buf || dst.b == b.spare2) {
		return false
	}
	b.s.ops = b.s.ops[:n-1]
	if l.sum {
		b.s.byFile[shaders.MoEDownSum.File]--
		p := l.mp
		p.AddRes, p.ResOff, p.ResStride = true, u(dst.off), u(dst.cols)
		b.downSum(p, l.m, l.table, l.routes, l.y, x, dst.b, l.grid)
		return true
	}
	b.s.byFile[shaders.MoECombine.File]--
	p := l.p
	p.AddRes, p.ResOff, p.ResStride = true, u(dst.off), u(dst.cols)
	b.combine(p, l.table, l.routes, l.y, x, dst.b)
	return true
}

// sharedExpert adds down(silu(gate·x)⊙up·x), scaled by sigmoid(g·x) when
// there is a gate g, to d (or sets d when first).
func (b *Backend) sharedExpert(d, x *buf, e *backend.Expert, gate backend.Weight, first bool) error {
	T, D := x.rows, x.cols
	width := e.Gate.(*weight).rows
	h1, err := b.scratch(T, width)
	if err != nil {
		return err
	}
	defer b.s.pool.put(h1.b)
	h3, err := b.scratch(T, width)
	if err != nil {
		return err
	}
	defer b.s.pool.put(h3.b)
	// y and the gate logits share one buffer: accum reads both from it.
	y, err := b.scratch(T, D+1)
	if err != nil {
		return err
	}
	defer b.s.pool.put(y.b)
	y.cols = D
	gw, uw := e.Gate.(*weight), e.Up.(*weight)
	if spec := (shaders.Spec{Format: gw.format}); b.useMatVec(x, gw, spec) && uw.format == gw.format &&
		uw.cols == gw.cols && len(gw.pages) == 1 && len(uw.pages) == 1 {
		// One dispatch for gate, up and swiglu.
		// With the norm before it when that wrote x just now.
		b.matVecRes(shaders.MatVecGU, h1, x, gw, gw.pages[0], b.zero, false, uw.pages[0].buf, uw.pages[0].base, nil, b.normFor(x, ceilDiv(gw.rows, shaders.MatVecGroupRows(shaders.MatVecGU, b.matVecLanes(gw.cols))), h1.b))
	} else {
		b.MatMul(h1, x, e.Gate, nil)
		b.MatMul(h3, x, e.Up, nil)
		b.ffnStep(shaders.SwiGLU, h1, h3, 0, 0)
	}
	if first && gate == nil && !b.oldMatVec {
		// accum would only copy y to d: write d directly.
		b.MatMul(d, h1, e.Down, nil)
		return nil
	}
	b.MatMul(y, h1, e.Down, nil)
	mode := 0
	if first {
		mode |= shaders.AccumInit
	}
	if gate != nil {
		g := &buf{b: y.b, rows: T, cols: 1, off: T * D}
		b.MatMul(g, x, gate, nil)
		mode |= shaders.AccumGated
	}
	b.ffnStep(shaders.Accum, d, y, T*D, mode)
	return nil
}

// expertTable is the MoE kernels' table for one layer (see moe.wgsl) on
// the device, as last written, and what MoE dispatches over it. blocks
// are the tables of the later blocks of the layer's deeper experts (one
// per block index, as deep as the deepest resident expert), each with
// the block's norm weights of every expert in norms.
type expertTable struct {
	buf      *buffer
	words    []uint32
	maxW     int
	gu, down []matGroup // keys holding gate or up, and down, matrices
	mixedAct bool       // some resident expert's activation is not silu
	blocks   []*expertTable
	live     int // blocks in use: the deepest resident expert's depth − 1
	norms    *buffer
	normBits []uint32
}

// release frees the table's buffers and its blocks'.
func (t *expertTable) release() {
	t.buf.Release()
	if t.norms != nil {
		t.norms.Release()
	}
	for _, bt := range t.blocks {
		bt.release()
	}
}

// matGroup is one key of the table: the matrices of one format in one buffer.
type matGroup struct {
	key    uint32
	buf    *buffer
	format tensor.DType
}

// actCode is an activation's code in the table (moe.wgsl's act).
func actCode(a model.Activation) uint32 {
	switch a {
	case model.ActGELUTanh:
		return 1
	case model.ActReLU2:
		return 2
	}
	return 0
}

// expertTable returns f's table, rewriting the changed tables on the
// device in place when the engine has loaded or evicted experts since the
// last MoE of the layer. They are built from f.Experts on every call (a
// few words per expert and block) so that they can never disagree with
// the engine.
func (b *Backend) expertTable(f *backend.FFN) (*expertTable, error) {
	E := len(f.Experts)
	tab := b.tables[f]
	if tab == nil || len(tab.words) != 8*E {
		if tab != nil {
			b.s.forgetGroups()
			tab.release()
			delete(b.tables, f)
		}
		tb, err := b.d.newBuffer("expert table", uint64(32*max(E, 1)), wgpu.BufferUsageStorage|wgpu.BufferUsageCopyDst)
		if err != nil {
			return nil, err
		}
		// WebGPU zero-fills new buffers: every width is 0, nothing resident.
		tab = &expertTable{buf: tb, words: make([]uint32, 8*E)}
		b.tables[f] = tab
	}
	if err := b.gatherExperts(f); err != nil {
		return nil, err
	}
	depth, dim := 1, 0
	for _, e := range f.Experts {
		if e != nil && len(e.More) > 0 {
			depth = max(depth, 1+len(e.More))
			dim = e.More[0].Norm.(*weight).cols
		}
	}
	for len(tab.blocks) < depth-1 {
		tb, err := b.d.newBuffer("expert block table", uint64(32*max(E, 1)), wgpu.BufferUsageStorage|wgpu.BufferUsageCopyDst)
		if err != nil {
			return nil, err
		}
		nb, err := b.d.newBuffer("expert block norms", uint64(4*max(E*dim, 1)), wgpu.BufferUsageStorage|wgpu.BufferUsageCopyDst)
		if err != nil {
			tb.Release()
			return nil, err
		}
		b.s.forgetGroups()
		tab.blocks = append(tab.blocks, &expertTable{buf: tb, words: make([]uint32, 8*E), norms: nb, normBits: make([]uint32, E*dim)})
	}
	type write struct {
		buf   *buffer
		words []uint32
	}
	var writes []write
	fill := func(t *expertTable, block int) error {
		entries := make([]shaders.MoEEntry, E)
		gu, down := map[uint32]matGroup{}, map[uint32]matGroup{}
		t.maxW, t.mixedAct = 0, false
		var norms []uint32
		if block > 0 {
			norms = make([]uint32, len(t.normBits))
		}
		for i, e := range f.Experts {
			if e == nil || block > len(e.More) {
				continue
			}
			mats := []backend.Weight{e.Gate, e.Up, e.Down}
			if block > 0 {
				bl := e.More[block-1]
				mats = []backend.Weight{bl.Gate, bl.Up, bl.Down}
				nw := bl.Norm.(*weight)
				if len(nw.host) != dim {
					return fmt.Errorf("webgpu: routed expert %d's block %d norm has %d values on the host, want %d", i, block+1, len(nw.host), dim)
				}
				for j, v := range nw.host {
					norms[i*dim+j] = math.Float32bits(v)
				}
			}
			var key, base [3]uint32
			for j, w := range mats {
				m := w.(*weight)
				if len(m.pages) != 1 {
					return fmt.Errorf("webgpu: a matrix of routed expert %d is in %d pages; the MoE kernels need each in one binding", i, len(m.pages))
				}
				pg := m.pages[0]
				key[j], base[j] = shaders.MoEKey(pg.buf.id, m.format), pg.base
				g := matGroup{key[j], pg.buf, m.format}
				if j < 2 {
					gu[key[j]] = g
				} else {
					down[key[j]] = g
				}
			}
			width := mats[0].(*weight).rows
			entries[i] = shaders.MoEEntry{GateKey: key[0], GateBase: base[0], UpKey: key[1], UpBase: base[1],
				DownKey: key[2], DownBase: base[2], Width: u(width), Act: actCode(e.Act)}
			t.maxW = max(t.maxW, width)
			t.mixedAct = t.mixedAct || entries[i].Act != 0
		}
		if words := shaders.MoETableWords(entries); !slices.Equal(words, t.words) {
			writes = append(writes, write{t.buf, words})
			t.words = words
		}
		if block > 0 && !slices.Equal(norms, t.normBits) {
			writes = append(writes, write{t.norms, norms})
			t.normBits = norms
		}
		t.gu, t.down = sortedGroups(gu), sortedGroups(down)
		return nil
	}
	tab.live = depth - 1
	if err := fill(tab, 0); err != nil {
		return nil, err
	}
	for j := range depth - 1 {
		if err := fill(tab.blocks[j], j+1); err != nil {
			return nil, err
		}
	}
	if len(writes) > 0 {
		// Recorded dispatches of this layer may read the old tables:
		// submit them first, and the queue runs them before the writes.
		if len(b.s.ops) > 0 {
			if err := b.s.flush(nil); err != nil {
				return nil, err
			}
		}
		for _, w := range writes {
			if err := b.d.write(w.buf, 0, wordBytes(w.words)); err != nil {
				return nil, fmt.Errorf("webgpu: writing expert table: %w", err)
			}
		}
	}
	return tab, nil
}

// sortedGroups orders a table's keys so that dispatches (and the bind
// groups they use) are the same from one step to the next.
func sortedGroups(m map[uint32]matGroup) []matGroup {
	out := make([]matGroup, 0, len(m))
	for _, g := range m {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b matGroup) int { return cmp.Compare(a.key, b.key) })
	return out
}

// gatherExperts moves the pooled matrices of f's resident routed experts
// into one page of the expert pool when they lie in several and fit in
// one binding, so that the MoE kernels need one dispatch per format
// instead of one per page (pages are shared by all layers and filled in
// upload order, so a layer's experts straddle them). The moves are
// device-side copies, done when the engine has loaded experts since the
// last MoE of the layer, not per token; the matrices keep their weights,
// which point at the new place. The target is the page holding most of
// the layer that has room for the rest, or a new page.
func (b *Backend) gatherExperts(f *backend.FFN) error {
	var mats []*weight
	per := map[*poolPage]uint64{}
	var total uint64
	for _, e := range f.Experts {
		if e == nil {
			continue
		}
		ws := []backend.Weight{e.Gate, e.Up, e.Down}
		for _, bl := range e.More {
			ws = append(ws, bl.Gate, bl.Up, bl.Down)
		}
		for _, w := range ws {
			m := w.(*weight)
			if m.pooled == nil {
				return nil // an expert with buffers of its own: nothing to gain
			}
			mats = append(mats, m)
			per[m.pooled.pg] += m.pooled.n
			total += m.pooled.n
		}
	}
	if len(per) < 2 || 4*total > min(b.d.MaxBinding, b.d.MaxBuffer)&^3 {
		return nil
	}
	cands := make([]*poolPage, 0, len(per))
	for pg := range per {
		cands = append(cands, pg)
	}
	slices.SortFunc(cands, func(x, y *poolPage) int { return cmp.Compare(per[y], per[x]) })
	var moved []extent // new extents, in mats order for the matrices that move
	var target *poolPage
	for _, pg := range cands {
		if ex, ok := b.placeIn(pg, mats); ok {
			target, moved = pg, ex
			break
		}
	}
	if target == nil {
		pg, err := b.experts.newPage(b.d, 4*total)
		if err != nil {
			return fmt.Errorf("webgpu: gathering a layer's experts: %w", err)
		}
		ex, ok := b.placeIn(pg, mats)
		if !ok {
			return fmt.Errorf("webgpu: gathering a layer's experts: %d words do not fit a new page of %d bytes", total, pg.buf.size)
		}
		target, moved = pg, ex
	}
	// Recorded dispatches read the old places: submit them with the
	// copies after them.
	err := b.s.flush(func(enc *wgpu.CommandEncoder) error {
		i := 0
		for _, m := range mats {
			if m.pooled.pg == target {
				continue
			}
			old, to := m.pooled, moved[i]
			i++
			if err := enc.CopyBufferToBuffer(old.pg.buf.Buffer, 4*old.off, to.pg.buf.Buffer, 4*to.off, 4*old.n); err != nil {
				return fmt.Errorf("webgpu: moving an expert matrix: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		for _, e := range moved {
			b.experts.release(e)
		}
		return err
	}
	i := 0
	for _, m := range mats {
		if m.pooled.pg == target {
			continue
		}
		b.experts.release(*m.pooled)
		e := moved[i]
		i++
		m.pooled = &e
		m.pages = []page{{buf: target.buf, rows: m.rows, base: uint32(e.off)}}
	}
	return nil
}

// placeIn allocates in pg an extent for each of mats not already there,
// in order, or none (and false) when they do not all fit.
func (b *Backend) placeIn(pg *poolPage, mats []*weight) ([]extent, bool) {
	var out []extent
	for _, m := range mats {
		if m.pooled.pg == pg {
			continue
		}
		e, ok := b.experts.allocIn(pg, m.pooled.n)
		if !ok {
			for _, x := range out {
				b.experts.release(x)
			}
			return nil, false
		}
		out = append(out, e)
	}
	return out, true
}

// fuseRoute records router_route by redoing the last dispatch, when it is
// a one-page, one-token matvec main (with or without the RMSNorm taken
// in) that wrote exactly the logits l, with no bias and no residual add,
// in one workgroup: the router product and route.wgsl's selection p over
// its logits in one dispatch, the logits still stored
// (shaders.TestRouterRoute). A router of several workgroups keeps both
// dispatches, its workgroups being parallel work. It reports whether it
// did.
func (b *Backend) fuseRoute(lg *buf, rp shaders.RouteParams, K int, bias, routes *buffer) bool {
	l := b.last
	n := len(b.s.ops)
	if b.oldMatVec || b.unfused || b.s.err != nil || n == 0 || l.op != n-1 || l.submits != b.s.submits ||
		l.k.File != shaders.MatVec.File || l.k.Entry != shaders.MatVec.Entry || l.hasBias || l.res || l.dst == nil ||
		*l.dst != *lg || lg.rows != 1 || l.x.rows != 1 || l.pg.row0 != 0 || l.pg.rows != l.w.rows || l.w.rows != lg.cols {
		return false
	}
	lanes := b.matVecLanes(l.w.cols)
	if ceilDiv(l.w.rows, shaders.MatVecGroupRows(shaders.MatVec, lanes)) > 1 {
		return false
	}
	b.s.ops = b.s.ops[:n-1]
	b.s.byFile[l.k.File]--
	pg := l.pg
	p := shaders.RouterParams{Rows: u(pg.rows), Cols: u(l.w.cols), XOff: u(l.x.off), WBase: pg.base, Route: rp}
	k, spec, xb := shaders.RouterRoute, b.matVecSpec(l.w.format, lanes), l.x.b
	spec.E, spec.K = lg.cols, K
	var extra []arg
	if nm := l.norm; nm != nil {
		k, spec.Norm, xb = shaders.RouterRouteNorm, true, nm.x.b
		p.XOff, p.NOff, p.Eps, p.HOff = u(nm.x.off), nm.base, nm.eps, u(nm.h.off)
		extra = []arg{bufArg(nm.w), bufArg(nm.h.b)}
	}
	b.s.run(k, spec, [3]uint32{1, 1, 1}, p.Words(),
		append([]arg{bufArg(pg.buf), bufArg(xb), bufArg(lg.b), bufArg(bias), bufArg(routes)}, extra...)...)
	b.last = lastMatVec{op: -1}
	return true
}
