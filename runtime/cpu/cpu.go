package cpu

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"slices"
	"unsafe"

	"github.com/moderuntime/mode/internal/wasmsimd"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/runtime/vec"
)

// Backend is the CPU implementation of backend.Backend.
//
// A Backend runs one op at a time (the engine calls it from one goroutine):
// the worker pool and the scratch memory the ops reuse are its own.
type Backend struct {
	threads    int
	naive      bool
	exact      bool
	generalMoE bool // tests: the fast path's MoE one expert at a time, without moeFast

	pool    *pool     // nil with one thread
	scratch []scratch // per worker of the pool
	xq      tensor.Q16Rows
	xq8     tensor.Q8Rows // decode's activations in 8 bits, with act8
	act8    bool          // 8-bit activations for decode (tests only: see NewAct8)
	mul     mulTask
	muls    multiMulTask
	quant   quantTask
	attn    attnTask
	rope    ropeTable
	moe     moeScratch

	routeScratch []float32
	mlaKV        []float32    // MLAAttention's expanded k_nope and v
	freeRoutes   []*cpuRoutes // consumed by MoE, for Route to reuse

	peerState // other instances holding shares of the routed experts (peers.go)
}

// scratch is one worker's memory, kept between ops so that steady-state
// decoding allocates nothing.
type scratch struct {
	row []float32 // one decoded f16 weight row
	att []float32 // attention scores: one head's, or several heads' (attnTask.heads)
	kv  []float32 // f16 cache rows decoded: one row, or a block of the heads' span (attnTask.scores, sums)
	// an expert's gate and up rows of one item of moeTask.gateUp
	h1, h3 []float32
}

// Options configures a Backend.
type Options struct {
	// Threads is the number of goroutines a large op is split across;
	// 0 means GOMAXPROCS.
	Threads int
	// Exact computes every product in run.c's order, with each product
	// and sum rounded to float32 in turn, so that greedy output equals
	// llama2.c's bit for bit. Without it, matrix products of quantised
	// weights quantise the activations to 16 bits and multiply in
	// integers, and f32 dot products are reassociated for SIMD: faster,
	// within the error bounds RATIONALE.md derives ("Exact and fast CPU
	// paths").
	Exact bool
	// Naive computes matrix products with the plain one-row-at-a-time loop
	// on one goroutine: the baseline benchmarks compare against. It
	// implies Exact.
	Naive bool
}

// New returns a CPU backend. Its worker goroutines stop at Close, or when
// the Backend is garbage collected.
func New(o Options) *Backend {
	t := o.Threads
	if t <= 0 {
		t = runtime.GOMAXPROCS(0)
	}
	if o.Naive {
		t = 1
	}
	b := &Backend{threads: t, naive: o.Naive, exact: o.Exact || o.Naive, scratch: make([]scratch, t)}
	b.mul.b, b.attn.b = b, b
	if t > 1 {
		b.pool = newPool(t)
		runtime.AddCleanup(b, (*pool).stop, b.pool)
	}
	return b
}

var _ backend.Backend = (*Backend)(nil)

func (b *Backend) Name() string { return "cpu" }

// weight is a tensor in the form the CPU kernels read. Matrices stored in
// f16 or a block format keep that format (m), and the kernels compute from
// it directly; everything else is decoded to float32 (f): f32 and bf16
// matrices, and vectors of any format, which the elementwise ops (norms,
// biases, routing bias) index directly and which are too small to matter.
type weight struct {
	shape []int
	rows  int
	cols  int
	f     []float32
	m     *tensor.Matrix
	data  []byte // m's stored bytes
	// share is, on a routed expert's gate, the id of its shares on the
	// peers (peers.go): 0 not split yet, -1 kept whole.
	share int32
}

func (w *weight) Shape() []int { return w.shape }

// Bytes is the memory the weight's data occupies in its stored form.
func (w *weight) Bytes() int64 {
	if w.m != nil {
		return int64(w.m.Bytes())
	}
	return int64(4 * len(w.f))
}

// buf is rows×cols float32 values with row stride cols.
type buf struct {
	rows, cols int
	f          []float32
	off        int    // of a view: its first row in the parent
	views      []*buf // views of this buf handed out, reused by View
}

func (x *buf) Rows() int           { return x.rows }
func (x *buf) Cols() int           { return x.cols }
func (x *buf) row(i int) []float32 { return x.f[i*x.cols : (i+1)*x.cols] }

type kv struct {
	seq, dim int
	lens     []int       // positions each layer holds: seq, or a sliding window's ring
	k, v     [][]float32 // per layer, seq*dim; nil in an f16 cache
	k16, v16 [][]uint16  // per layer, seq*dim f16 bits; nil in an f32 cache
	ready    [][2]int    // per layer, of k and of v: the elements whose pages store has had backed (populate)
}

// readyAhead is how far past the row it writes store has a layer's k or v
// cache backed, in bytes: 64 KB, sixteen pages a call, at most 2 MB ahead
// of the rows written for a 16-layer model.
const readyAhead = 64 << 10

// f32 is layer l's k (or v) cache in an f32 cache, f16 in an f16 one.
func (c *kv) f32(l int, v bool) []float32 {
	if v {
		return c.v[l]
	}
	return c.k[l]
}

func (c *kv) f16(l int, v bool) []uint16 {
	if v {
		return c.v16[l]
	}
	return c.k16[l]
}

// row returns the n values of layer l's k (or v) cache from index off, as
// f32: a view of an f32 cache, or an f16 cache's values decoded into tmp.
func (c *kv) row(l int, v bool, off, n int, tmp []float32) []float32 {
	if c.k16 == nil {
		return c.f32(l, v)[off : off+n]
	}
	for i, x := range c.f16(l, v)[off : off+n] {
		tmp[i] = tensor.F16ToF32(x)
	}
	return tmp[:n]
}

// store writes x at index off of layer l's k (or v) cache, rounding to
// f16 in an f16 cache.
func (c *kv) store(l int, v bool, off int, x []float32) {
	r := &c.ready[l][0]
	if v {
		r = &c.ready[l][1]
	}
	if c.k16 == nil {
		s := c.f32(l, v)
		back(s, r, off+len(x))
		copy(s[off:], x)
		return
	}
	h := c.f16(l, v)
	back(h, r, off+len(x))
	for i, f := range x {
		h[off+i] = tensor.F32ToF16(f)
	}
}

// back has the pages of cache s backed up to element end and readyAhead
// bytes past it, unless they already are (up to element *ready, which it
// moves on).
func back[E float32 | uint16](s []E, ready *int, end int) {
	if end <= *ready {
		return
	}
	size := int(unsafe.Sizeof(s[0]))
	hi := min(len(s), end+readyAhead/size)
	populate(unsafe.Pointer(&s[*ready]), uintptr((hi-*ready)*size))
	*ready = hi
}

func (c *kv) Len() int { return c.seq }

// Upload copies t into a weight: f16, q8_0, q4_0 and q4_k matrices keep
// their format, everything else becomes float32 (see weight).
func (b *Backend) Upload(t *tensor.Tensor) (backend.Weight, error) {
	return b.upload(t, false)
}

// Adopt is Upload without the copy (backend.Adopter): matrices in f16 or a
// block format, and f32 data aligned for float32, become weights in place.
// Other formats (bf16, vectors of f16) are converted, as Upload does.
func (b *Backend) Adopt(t *tensor.Tensor) (backend.Weight, error) {
	return b.upload(t, true)
}

func (b *Backend) upload(t *tensor.Tensor, adopt bool) (backend.Weight, error) {
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("cpu: upload: %w", err)
	}
	w := &weight{shape: append([]int(nil), t.Shape...), rows: t.Rows(), cols: t.Cols()}
	switch t.DType {
	case tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K, tensor.MXFP4:
		if w.rows > 1 {
			own := *t
			if !adopt {
				own.Data = bytes.Clone(t.Data) // the caller may reuse t's memory
			}
			m, err := tensor.NewMatrix(&own)
			if err != nil {
				return nil, fmt.Errorf("cpu: upload: %w", err)
			}
			w.m, w.data = m, own.Data
			return w, nil
		}
	}
	if adopt && t.DType == tensor.F32 {
		if f, ok := f32View(t.Data, t.Elems()); ok {
			w.f = f
			return w, nil
		}
	}
	f, err := t.Float32s()
	if err != nil {
		return nil, fmt.Errorf("cpu: upload: %w", err)
	}
	w.f = f
	return w, nil
}

// f32View is n little-endian float32 values of data as a []float32 that
// shares its memory, when data is aligned for float32 and long enough.
// Every platform the runtime builds for (amd64, arm64, wasm) is little-
// endian, as the pack format is.
func f32View(data []byte, n int) ([]float32, bool) {
	if n == 0 || len(data) < 4*n || uintptr(unsafe.Pointer(&data[0]))%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), n), true
}

func (b *Backend) Free(w backend.Weight) {
	if w, ok := w.(*weight); ok {
		if w.share > 0 {
			b.dropShare(w.share)
		}
		w.f, w.m, w.data = nil, nil, nil
	}
}

func (b *Backend) NewBuf(rows, cols int) (backend.Buf, error) {
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("cpu: buffer %dx%d", rows, cols)
	}
	return &buf{rows: rows, cols: cols, f: make([]float32, rows*cols)}, nil
}

// View returns the same view for the same rows of a buf, so that the
// engine's views in every step allocate nothing once made.
func (b *Backend) View(x backend.Buf, row0, n int) backend.Buf {
	p := x.(*buf)
	for _, v := range p.views {
		if v.off == row0 && v.rows == n {
			return v
		}
	}
	v := &buf{rows: n, cols: p.cols, f: p.f[row0*p.cols : (row0+n)*p.cols], off: row0}
	if len(p.views) < 8 { // the engine uses a few views per buf; don't grow without end
		p.views = append(p.views, v)
	}
	return v
}

func (b *Backend) NewKV(layers, maxSeq, kvDim int) (backend.KV, error) {
	return b.NewRingKV(slices.Repeat([]int{maxSeq}, layers), kvDim, false)
}

// NewKVF16 allocates a cache that holds k and v as f16 (backend.KVFormatter).
func (b *Backend) NewKVF16(layers, maxSeq, kvDim int) (backend.KV, error) {
	return b.NewRingKV(slices.Repeat([]int{maxSeq}, layers), kvDim, true)
}

// NewRingKV allocates seqs[l] positions for layer l (backend.RingKVer):
// Attention stores position p at slot p mod seqs[l].
func (b *Backend) NewRingKV(seqs []int, kvDim int, f16 bool) (backend.KV, error) {
	c := &kv{dim: kvDim, lens: slices.Clone(seqs), ready: make([][2]int, len(seqs))}
	for _, n := range seqs {
		if n <= 0 {
			return nil, fmt.Errorf("cpu: KV cache of %d positions", n)
		}
		c.seq = max(c.seq, n)
		if f16 {
			c.k16 = append(c.k16, make([]uint16, n*kvDim))
			c.v16 = append(c.v16, make([]uint16, n*kvDim))
		} else {
			c.k = append(c.k, make([]float32, n*kvDim))
			c.v = append(c.v, make([]float32, n*kvDim))
		}
	}
	return c, nil
}

// Supports reports the optional features the CPU implements.
func (b *Backend) Supports(f backend.Feature) bool {
	switch f {
	case backend.FeatureSinks, backend.FeatureSlidingWindow, backend.FeatureExpertBias, backend.FeatureClampedSwiGLU, backend.FeatureMXFP4,
		backend.FeatureMLA, backend.FeatureGroupRouting:
		return true
	}
	return false
}

func (b *Backend) Embed(dst backend.Buf, table backend.Weight, ids []int) {
	d, w := dst.(*buf), table.(*weight)
	for i, id := range ids {
		if w.m != nil {
			w.m.DequantizeRow(id, d.row(i))
			continue
		}
		copy(d.row(i), w.f[id*w.cols:(id+1)*w.cols])
	}
}

func (b *Backend) RMSNorm(dst, x backend.Buf, w backend.Weight, eps float32) {
	d, s, g := dst.(*buf), x.(*buf), w.(*weight)
	n := len(g.f)
	for r := 0; r < s.rows; r++ {
		in, out := s.row(r), d.row(r)
		for o := 0; o < len(in); o += n {
			if b.exact {
				rmsnorm(out[o:o+n], in[o:o+n], g.f, eps)
			} else {
				rmsnormLanes(out[o:o+n], in[o:o+n], g.f, eps)
			}
		}
	}
}

// rmsnorm computes o = w * (x / sqrt(mean(x²) + eps)) in run.c's order.
func rmsnorm(o, x, w []float32, eps float32) {
	if simd() {
		wasmsimd.RMSNorm(o, x, w, eps) // the same bits, in one call
		return
	}
	vec.RMSNorm(o, x, w, eps)
}

// rmsnormLanes is rmsnorm on the fast path: Σx² in eight lanes
// (vec.RMSNormLanes), in one call of the SIMD128 module in a wasm build
// that loaded it (the same bits).
func rmsnormLanes(o, x, w []float32, eps float32) {
	if simd() {
		wasmsimd.RMSNormLanes(o, x, w, eps)
		return
	}
	vec.RMSNormLanes(o, x, w, eps)
}

func (b *Backend) MatMul(dst, x backend.Buf, w, bias backend.Weight) {
	d, s, m := dst.(*buf), x.(*buf), w.(*weight)
	b.matmul(d.f, d.cols, s.f, s.rows, s.cols, m)
	addBias(d, bias)
}

// addBias adds bias, when there is one, to every row of d: MatMul's and
// MatMuls' last step.
func addBias(d *buf, bias backend.Weight) {
	if bias == nil {
		return
	}
	bf := bias.(*weight).f
	for r := 0; r < d.rows; r++ {
		row := d.row(r)
		for i := range row {
			row[i] += bf[i]
		}
	}
}

func (b *Backend) RoPE(x backend.Buf, headDim, pos0 int, r *backend.Rope) {
	s := x.(*buf)
	b.rope.fill(pos0, s.rows, r)
	for t := 0; t < s.rows; t++ {
		cos, sin := b.rope.at(pos0 + t)
		row := s.row(t)
		for h := 0; h+headDim <= len(row); h += headDim {
			rope(row[h:h+headDim], cos, sin, r.Interleaved)
		}
	}
}

// ropeTable holds RoPE's cos and sin for a run of positions, so that the
// q and k of every layer at those positions share one computation: a
// decode step called math.Cos and math.Sin for every layer twice over, 2%
// of a Mixtral-shaped q4_0 decode's CPU time, all of it serial.
type ropeTable struct {
	f       []float32 // per position: cos, then sin (half values each)
	pos0, n int       // the positions held: pos0..pos0+n−1 (none at first)
	invFreq []float32 // a copy of the frequencies they were computed from
	factor  float32
}

// fill makes sure the table holds positions pos0..pos0+n−1 for r. An
// empty table holds no position, so its first fill computes.
func (t *ropeTable) fill(pos0, n int, r *backend.Rope) {
	if pos0 >= t.pos0 && pos0+n <= t.pos0+t.n && t.factor == r.AttnFactor && slices.Equal(t.invFreq, r.InvFreq) {
		return
	}
	half := len(r.InvFreq)
	t.f = grow(t.f, 2*half*n)
	for i := range n {
		row := t.f[2*half*i : 2*half*(i+1)]
		ropeAngles(row[:half], row[half:], pos0+i, r)
	}
	t.pos0, t.n, t.factor = pos0, n, r.AttnFactor
	t.invFreq = append(t.invFreq[:0], r.InvFreq...)
}

// at returns the cos and sin of position pos, which fill has put in.
func (t *ropeTable) at(pos int) (cos, sin []float32) {
	half := len(t.invFreq)
	row := t.f[2*half*(pos-t.pos0) : 2*half*(pos-t.pos0+1)]
	return row[:half], row[half:]
}

// ropeAngles fills cos and sin for position pos, scaled by the attention
// factor.
func ropeAngles(cos, sin []float32, pos int, r *backend.Rope) {
	p := float32(pos)
	for i, f := range r.InvFreq {
		a := float64(p * f)
		cos[i] = float32(math.Cos(a)) * r.AttnFactor
		sin[i] = float32(math.Sin(a)) * r.AttnFactor
	}
}

func rope(v, cos, sin []float32, interleaved bool) {
	half := len(cos)
	for i := 0; i < half; i++ {
		a, b := 2*i, 2*i+1
		if !interleaved {
			a, b = i, i+half
		}
		v0, v1 := v[a], v[b]
		v[a] = float32(v0*cos[i]) - float32(v1*sin[i])
		v[b] = float32(v0*sin[i]) + float32(v1*cos[i])
	}
}

func (b *Backend) Attention(dst, q, k, v backend.Buf, cache backend.KV, s backend.AttnSpec) {
	out, qb, kb, vb, c := dst.(*buf), q.(*buf), k.(*buf), v.(*buf), cache.(*kv)
	kvDim := s.KVHeads * s.HeadDim
	ring := c.lens[s.Layer]
	for t := 0; t < kb.rows; t++ {
		p := (s.Pos0 + t) % ring
		c.store(s.Layer, false, p*kvDim, kb.row(t)[:kvDim])
		c.store(s.Layer, true, p*kvDim, vb.row(t)[:kvDim])
	}
	var sinks []float32
	if s.Sinks != nil {
		sinks = s.Sinks.(*weight).f
	}
	group := s.Heads / s.KVHeads
	scale := s.ScoreDivisor()
	n := qb.rows * s.Heads
	work := n * (s.Pos0 + qb.rows) * s.HeadDim
	if s.Window > 0 {
		work = n * min(s.Window, s.Pos0+qb.rows) * s.HeadDim
	}
	if !b.exact {
		j := &b.attn
		j.out, j.q, j.c, j.s, j.kvDim, j.group, j.scale, j.sinks = out, qb, c, s, kvDim, group, scale, sinks
		b.split(n, attnCost*work, attnChunk(c, kvDim, s.Heads, group, b.threads), j)
		j.out, j.q, j.c, j.sinks = nil, nil, nil, nil
		return
	}
	b.parallel(n, work, func(lo, hi int) {
		att := make([]float32, s.Pos0+qb.rows)
		tmp := make([]float32, s.HeadDim) // an f16 cache row decoded
		for j := lo; j < hi; j++ {
			t, h := j/s.Heads, j%s.Heads
			p := s.Pos0 + t
			first := window(p, s.Window)
			qh := qb.row(t)[h*s.HeadDim : (h+1)*s.HeadDim]
			koff := (h / group) * s.HeadDim
			sc := att[:p-first+1]
			for i := range sc {
				kt := c.row(s.Layer, false, ((first+i)%ring)*kvDim+koff, s.HeadDim, tmp)
				var d float32
				for x := range qh {
					d += float32(qh[x] * kt[x])
				}
				sc[i] = d / scale
			}
			softmaxSink(sc, sinks, h)
			o := out.row(t)[h*s.HeadDim : (h+1)*s.HeadDim]
			clear(o)
			for i, a := range sc {
				vt := c.row(s.Layer, true, ((first+i)%ring)*kvDim+koff, s.HeadDim, tmp)
				for x := range o {
					o[x] += float32(a * vt[x])
				}
			}
		}
	})
}

// Scale multiplies every value of x by s.
func (b *Backend) Scale(x backend.Buf, s float32) {
	d := x.(*buf)
	for i := range d.f[:d.rows*d.cols] {
		d.f[i] *= s
	}
}

// window is the first position a row at position p attends to: 0, or the
// start of its sliding window of w positions.
func window(p, w int) int {
	if w > 0 {
		return max(0, p-w+1)
	}
	return 0
}

// softmaxSink is routing.Softmax over x in place, or with sinks, the
// softmax over x and head h's sink logit with the sink's share dropped
// (eager_attention_forward in HF's modeling_gpt_oss.py): the maximum
// includes the sink, and its exponential is added to the sum last.
func softmaxSink(x, sinks []float32, h int) {
	if sinks == nil {
		routing.Softmax(x, x)
		return
	}
	sink := sinks[h]
	m := sink
	for _, v := range x {
		m = max(m, v)
	}
	var sum float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - m)))
		x[i] = e
		sum += e
	}
	sum += float32(math.Exp(float64(sink - m)))
	for i := range x {
		x[i] /= sum
	}
}

func (b *Backend) Add(dst, x backend.Buf) {
	d, s := dst.(*buf), x.(*buf)
	for i, v := range s.f[:len(d.f)] {
		d.f[i] += v
	}
}

// cpuRoutes is the host-side routing of a batch (a pointer, so that it
// goes into a backend.Routes without an allocation).
type cpuRoutes struct {
	c    [][]routing.Choice
	read bool // handed to the host by ReadRoutes, which may keep it
}

// recycleRoutes keeps the memory of Routes that MoE has consumed for the
// next Route, unless ReadRoutes has given it to the host, which may keep
// it (a Trace callback, say). The engine reads routes only when it must
// (lazy experts, tracing, capacity), so plain decoding recycles them all.
func (b *Backend) recycleRoutes(r *cpuRoutes) {
	if r.read || len(b.freeRoutes) >= 4 || slices.Contains(b.freeRoutes, r) {
		return
	}
	b.freeRoutes = append(b.freeRoutes, r)
}

// Route reuses the memory of Routes that MoE has consumed (see
// recycleRoutes), so decoding allocates nothing per sparse layer.
func (b *Backend) Route(logits backend.Buf, s backend.RouteSpec) backend.Routes {
	l := logits.(*buf)
	var bias []float32
	if s.Bias != nil {
		bias = s.Bias.(*weight).f
	}
	b.routeScratch = grow(b.routeScratch, 3*l.cols)
	var out *cpuRoutes
	if n := len(b.freeRoutes); n > 0 {
		out, b.freeRoutes = b.freeRoutes[n-1], b.freeRoutes[:n-1]
	} else {
		out = new(cpuRoutes)
	}
	if cap(out.c) < l.rows {
		out.c = append(out.c[:cap(out.c)], make([][]routing.Choice, l.rows-cap(out.c))...)
	}
	out.c = out.c[:l.rows]
	for t := range out.c {
		out.c[t] = routing.Select(out.c[t][:0], l.row(t), bias, s.Rule, b.routeScratch)
	}
	if s.Capacity > 0 {
		routing.ApplyCapacity(out.c, s.Capacity, s.Rule.Fallback, l.cols)
	}
	return out
}

func (b *Backend) ReadRoutes(r backend.Routes) ([][]routing.Choice, error) {
	rt := r.(*cpuRoutes)
	rt.read = true
	return rt.c, nil
}

func (b *Backend) WriteRoutes(r backend.Routes, choices [][]routing.Choice) error {
	rt := r.(*cpuRoutes).c
	if len(choices) != len(rt) {
		return fmt.Errorf("cpu: routes for %d tokens, %d given", len(rt), len(choices))
	}
	for t := range rt {
		rt[t] = append(rt[t][:0], choices[t]...)
	}
	return nil
}

// Read, Argmax and Sync report a peer's failure (PeerErr): MoE, which
// has no error to return, goes on without the peers' shares after one.
func (b *Backend) Read(x backend.Buf, dst []float32) error {
	copy(dst, x.(*buf).f)
	return b.peerErr
}

// Argmax implements backend.Argmaxer.
func (b *Backend) Argmax(x backend.Buf) (int, error) {
	p := x.(*buf)
	row := p.f[:p.cols]
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return best, b.peerErr
}

func (b *Backend) Sync() error { return b.peerErr }

// Close stops the worker goroutines. The Backend must not be used after.
func (b *Backend) Close() error {
	if b.pool != nil {
		b.pool.stop()
	}
	return nil
}

// attnCost is what one unit of attention's work (a score's
// multiply-add: heads × positions × head size) costs in minWork's
// multiply-adds of a matrix product: the weighted sum's multiply-add, a
// share of the score's exp and division, and a kernel call per head and
// run of rows. Counted as one, a decode's attention stayed on the calling
// goroutine up to 128 positions on the Mixtral shape (8 heads of 64),
// while the helper waited: handed to the pool from a quarter of that, the
// q4_0 pack's decode of 256 tokens after 32 ran 1.03× faster (medians of
// six alternating runs; with MatMuls joining k and v to q, 1.10×, and
// OLMoE's 1.05×). Lowering minWork itself as much instead made
// stories260K's decode 0.9× as fast (its output product went to the
// pool).
const attnCost = 4

// minWork is the op size, in multiply-adds, below which an op runs on the
// calling goroutine alone: 2^17 of them (tens of microseconds) is where two
// goroutines began to win over one on `mode bench` for stories260K and the
// Mixtral-shaped model.
const minWork = 1 << 17

// parallel splits [0, n) across the pool in one chunk per goroutine when
// the op is large enough to repay the hand-off; work counts multiply-adds.
// The exact path's kernels give the same results however they are split.
func (b *Backend) parallel(n, work int, fn func(lo, hi int)) {
	b.split(n, work, (n+b.threads-1)/b.threads, funcTask(fn))
}

// soloWork is the op size, in multiply-adds, under which the pool may run
// an op on the calling goroutine alone when its helpers' cores are taken
// (pool.run): every decode op of the Mixtral- and OLMoE-shaped models
// (OLMoE's largest, its experts, 12.6M), where a helper that spins between
// ops of tens of microseconds costs more than it adds. Longer ops keep the
// helpers, late or not: a prefill took 1.2× the time without them.
const soloWork = 1 << 24

// split runs t over [0, n) in chunks of chunk items across the pool, or on
// the calling goroutine alone when the op is small or there is no pool.
func (b *Backend) split(n, work, chunk int, t task) {
	if b.pool == nil || work < minWork || n <= 1 {
		t.run(0, 0, n)
		return
	}
	b.pool.run(n, max(chunk, 1), t, work < soloWork)
}

// grow returns s resized to n, reallocated when too small with room to
// double, so that memory growing by a row per step (attention scores)
// reallocates only now and then. The contents are not kept.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, max(n, 2*cap(s)))
	}
	return s[:n]
}
