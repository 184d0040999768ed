package webgpu

import (
	"encoding/binary"
	"fmt"
	"math"

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
// swiglu, accum into dst), then the routed experts with moe_up and
// moe_down over the layer's pooled expert buffer, reading the expert ids
// from the routes buffer on the device: nothing is read back.
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
	ep, err := b.expertPool(f)
	if err != nil {
		b.s.fail(err)
		return
	}
	h, err := b.scratch(T*rt.k, ep.maxW)
	if err != nil {
		b.s.fail(err)
		return
	}
	defer b.s.pool.put(h.b)
	nx, ny := shaders.Grid(ep.maxW)
	p := shaders.MoEParams{T: u(T), K: u(rt.k), D: u(D), XOff: u(s.off), XStride: u(s.cols), MaxW: u(ep.maxW),
		DstOff: u(d.off), DstStride: u(d.cols), NX: nx}
	spec := shaders.Spec{Format: ep.format}
	args := []arg{bufArg(ep.buf), bufArg(rt.b), bufArg(s.b), bufArg(h.b), bufArg(d.b)}
	b.s.run(shaders.MoEUp, spec, [3]uint32{nx, ny, u(T * rt.k)}, p.Words(), args...)
	nx, ny = shaders.Grid(D)
	p.NX = nx
	b.s.run(shaders.MoEDown, spec, [3]uint32{nx, ny, u(T)}, p.Words(), args...)
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

// expertPool is one layer's resident routed experts in one buffer: a
// table of 4 words per expert (gate, up and down base words and width; 0
// width for an expert not loaded) followed by the matrices.
type expertPool struct {
	buf     *buffer
	experts []*backend.Expert // what the pool was built from
	format  tensor.DType
	maxW    int
}

// expertPool returns f's pool, rebuilding it on the device (buffer to
// buffer copies) when the engine has loaded or evicted experts since.
func (b *Backend) expertPool(f *backend.FFN) (*expertPool, error) {
	if ep, ok := b.pools[f]; ok && samePointers(ep.experts, f.Experts) {
		return ep, nil
	}
	if old, ok := b.pools[f]; ok {
		b.s.forgetGroups()
		old.buf.Release()
		delete(b.pools, f)
	}
	ep := &expertPool{experts: append([]*backend.Expert(nil), f.Experts...), format: tensor.Invalid}
	E := len(f.Experts)
	table := make([]uint32, 4*E)
	type cp struct {
		src  *buffer
		dstW uint64
	}
	var copies []cp
	words := uint64(4 * E)
	for i, e := range f.Experts {
		if e == nil {
			continue
		}
		for j, w := range []backend.Weight{e.Gate, e.Up, e.Down} {
			m := w.(*weight)
			if len(m.pages) != 1 {
				return nil, fmt.Errorf("webgpu: expert %d is paged; pooled experts must fit one binding", i)
			}
			if ep.format == tensor.Invalid {
				ep.format = m.format
			}
			if m.format != ep.format {
				return nil, fmt.Errorf("webgpu: expert %d is %v, others %v: one layer's experts must share a format", i, m.format, ep.format)
			}
			table[4*i+j] = uint32(words)
			copies = append(copies, cp{m.pages[0].buf, words})
			words += m.pages[0].buf.size / 4
		}
		table[4*i+3] = u(e.Gate.(*weight).rows)
		ep.maxW = max(ep.maxW, e.Gate.(*weight).rows)
	}
	if ep.format == tensor.Invalid {
		ep.format, ep.maxW = tensor.F32, 1
	}
	if 4*words > b.d.MaxBinding {
		return nil, fmt.Errorf("webgpu: layer's experts take %d bytes, over the %d-byte binding limit", 4*words, b.d.MaxBinding)
	}
	pb, err := b.d.newBuffer("experts", 4*words, wgpu.BufferUsageStorage|wgpu.BufferUsageCopyDst)
	if err != nil {
		return nil, err
	}
	if err := b.d.queue.WriteBuffer(pb.Buffer, 0, wordBytes(table)); err != nil {
		pb.Release()
		return nil, fmt.Errorf("webgpu: writing expert table: %w", err)
	}
	err = b.s.flush(func(enc *wgpu.CommandEncoder) error {
		for _, c := range copies {
			if err := enc.CopyBufferToBuffer(c.src.Buffer, 0, pb.Buffer, 4*c.dstW, c.src.size); err != nil {
				return fmt.Errorf("webgpu: pooling experts: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		pb.Release()
		return nil, err
	}
	ep.buf = pb
	b.pools[f] = ep
	return ep, nil
}

func samePointers(a, b []*backend.Expert) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
