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
		HasBias: s.Bias != nil, Norm: s.Rule.NormTopK, Scale: s.Rule.Scale()}
	b.s.run(shaders.Route, shaders.Spec{E: l.cols, K: K}, [3]uint32{u(ceilDiv(l.rows, 64)), 1, 1}, p.Words(),
		bufArg(l.b), bufArg(bias), bufArg(rb))
	r := &routes{b: rb, t: l.rows, k: K}
	if s.Capacity > 0 && l.rows > 1 {
		ch, err := b.ReadRoutes(r)
		if err != nil {
			return r
		}
		routing.ApplyCapacity(ch, s.Capacity, s.Rule.Fallback, l.cols)
		if err := b.d.queue.WriteBuffer(rb.Buffer, 0, encodeRoutes(ch, K)); err != nil {
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
	if err := b.d.queue.WriteBuffer(rt.b.Buffer, 0, encodeRoutes(choices, rt.k)); err != nil {
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
	if len(f.Shared) == 0 {
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
		return // no routed expert is resident, so the routes name none
	}
	TK := T * rt.k
	var scr [3]*buf
	for i, cols := range []int{tab.maxW, tab.maxW, D} {
		if scr[i], err = b.scratch(TK, cols); err != nil {
			b.s.fail(err)
			return
		}
		defer b.s.pool.put(scr[i].b)
	}
	g, up, y := scr[0], scr[1], scr[2]
	nx, ny := shaders.Grid(tab.maxW)
	p := shaders.MoEParams{T: u(T), K: u(rt.k), D: u(D), XOff: u(s.off), XStride: u(s.cols), MaxW: u(tab.maxW), NX: nx}
	for _, m := range tab.gu {
		p.Key = m.key
		b.s.run(shaders.MoEGateUp, shaders.Spec{Format: m.format}, [3]uint32{nx, ny, u(TK)}, p.Words(),
			bufArg(m.buf), bufArg(tab.buf), bufArg(rt.b), bufArg(s.b), bufArg(g.b), bufArg(up.b))
	}
	b.ffnStep(shaders.SwiGLU, g, up, 0, 0)
	nx, ny = shaders.Grid(D)
	p.NX = nx
	for _, m := range tab.down {
		p.Key = m.key
		b.s.run(shaders.MoEDown, shaders.Spec{Format: m.format}, [3]uint32{nx, ny, u(TK)}, p.Words(),
			bufArg(m.buf), bufArg(tab.buf), bufArg(rt.b), bufArg(s.b), bufArg(g.b), bufArg(y.b))
	}
	c := shaders.MoECombineParams{T: u(T), K: u(rt.k), D: u(D), DstOff: u(d.off), DstStride: u(d.cols)}
	b.s.run(shaders.MoECombine, shaders.Spec{}, [3]uint32{u(ceilDiv(D, 64)), u(T), 1}, c.Words(),
		bufArg(tab.buf), bufArg(rt.b), bufArg(y.b), bufArg(d.b))
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
	b.MatMul(h1, x, e.Gate, nil)
	b.MatMul(h3, x, e.Up, nil)
	b.ffnStep(shaders.SwiGLU, h1, h3, 0, 0)
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
// the device, as last written, and what MoE dispatches over it.
type expertTable struct {
	buf      *buffer
	words    []uint32
	maxW     int
	gu, down []matGroup // keys holding gate or up, and down, matrices
}

// matGroup is one key of the table: the matrices of one format in one buffer.
type matGroup struct {
	key    uint32
	buf    *buffer
	format tensor.DType
}

// expertTable returns f's table, rewriting the changed table on the device
// in place when the engine has loaded or evicted experts since the last
// MoE of the layer. It is built from f.Experts on every call (a few words
// per expert) so that it can never disagree with the engine.
func (b *Backend) expertTable(f *backend.FFN) (*expertTable, error) {
	E := len(f.Experts)
	tab := b.tables[f]
	if tab == nil || len(tab.words) != 8*E {
		if tab != nil {
			b.s.forgetGroups()
			tab.buf.Release()
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
	entries := make([]shaders.MoEEntry, E)
	gu, down := map[uint32]matGroup{}, map[uint32]matGroup{}
	maxW := 0
	for i, e := range f.Experts {
		if e == nil {
			continue
		}
		var key, base [3]uint32
		for j, w := range []backend.Weight{e.Gate, e.Up, e.Down} {
			m := w.(*weight)
			if len(m.pages) != 1 {
				return nil, fmt.Errorf("webgpu: a matrix of routed expert %d is in %d pages; the MoE kernels need each in one binding", i, len(m.pages))
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
		width := e.Gate.(*weight).rows
		entries[i] = shaders.MoEEntry{GateKey: key[0], GateBase: base[0], UpKey: key[1], UpBase: base[1],
			DownKey: key[2], DownBase: base[2], Width: u(width)}
		maxW = max(maxW, width)
	}
	if words := shaders.MoETableWords(entries); !slices.Equal(words, tab.words) {
		// Recorded dispatches of this layer may read the old table: submit
		// them first, and the queue runs them before the write.
		if len(b.s.ops) > 0 {
			if err := b.s.flush(nil); err != nil {
				return nil, err
			}
		}
		if err := b.d.queue.WriteBuffer(tab.buf.Buffer, 0, wordBytes(words)); err != nil {
			return nil, fmt.Errorf("webgpu: writing expert table: %w", err)
		}
		tab.words = words
	}
	tab.maxW = maxW
	tab.gu, tab.down = sortedGroups(gu), sortedGroups(down)
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
