package cpu

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Backend is the CPU implementation of backend.Backend.
type Backend struct {
	threads int
	naive   bool
}

// Options configures a Backend.
type Options struct {
	// Threads is the number of goroutines a large op is split across;
	// 0 means GOMAXPROCS.
	Threads int
	// Naive computes matrix products with the plain one-row-at-a-time loop
	// on one goroutine: the baseline benchmarks compare against.
	Naive bool
}

// New returns a CPU backend.
func New(o Options) *Backend {
	t := o.Threads
	if t <= 0 {
		t = runtime.GOMAXPROCS(0)
	}
	if o.Naive {
		t = 1
	}
	return &Backend{threads: t, naive: o.Naive}
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
}

func (x *buf) Rows() int           { return x.rows }
func (x *buf) Cols() int           { return x.cols }
func (x *buf) row(i int) []float32 { return x.f[i*x.cols : (i+1)*x.cols] }

type kv struct {
	seq, dim int
	k, v     [][]float32 // per layer, seq*dim; nil in an f16 cache
	k16, v16 [][]uint16  // per layer, seq*dim f16 bits; nil in an f32 cache
}

// row returns the n values of layer l's k (or v) cache from index off, as
// f32: a view of an f32 cache, or an f16 cache's values decoded into tmp.
func (c *kv) row(l int, v bool, off, n int, tmp []float32) []float32 {
	if c.k16 == nil {
		if v {
			return c.v[l][off : off+n]
		}
		return c.k[l][off : off+n]
	}
	h := c.k16[l]
	if v {
		h = c.v16[l]
	}
	for i, x := range h[off : off+n] {
		tmp[i] = tensor.F16ToF32(x)
	}
	return tmp[:n]
}

// store writes x at index off of layer l's k (or v) cache, rounding to
// f16 in an f16 cache.
func (c *kv) store(l int, v bool, off int, x []float32) {
	if c.k16 == nil {
		if v {
			copy(c.v[l][off:], x)
		} else {
			copy(c.k[l][off:], x)
		}
		return
	}
	h := c.k16[l]
	if v {
		h = c.v16[l]
	}
	for i, f := range x {
		h[off+i] = tensor.F32ToF16(f)
	}
}

func (c *kv) Len() int { return c.seq }

// Upload copies t into a weight: f16, q8_0, q4_0 and q4_k matrices keep
// their format, everything else becomes float32 (see weight).
func (b *Backend) Upload(t *tensor.Tensor) (backend.Weight, error) {
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("cpu: upload: %w", err)
	}
	w := &weight{shape: append([]int(nil), t.Shape...), rows: t.Rows(), cols: t.Cols()}
	switch t.DType {
	case tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K:
		if w.rows > 1 {
			own := *t
			own.Data = bytes.Clone(t.Data) // the caller may reuse t's memory
			m, err := tensor.NewMatrix(&own)
			if err != nil {
				return nil, fmt.Errorf("cpu: upload: %w", err)
			}
			w.m = m
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

func (b *Backend) Free(w backend.Weight) {
	if w, ok := w.(*weight); ok {
		w.f, w.m = nil, nil
	}
}

func (b *Backend) NewBuf(rows, cols int) (backend.Buf, error) {
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("cpu: buffer %dx%d", rows, cols)
	}
	return &buf{rows: rows, cols: cols, f: make([]float32, rows*cols)}, nil
}

func (b *Backend) View(x backend.Buf, row0, n int) backend.Buf {
	p := x.(*buf)
	return &buf{rows: n, cols: p.cols, f: p.f[row0*p.cols : (row0+n)*p.cols]}
}

func (b *Backend) NewKV(layers, maxSeq, kvDim int) (backend.KV, error) {
	c := &kv{seq: maxSeq, dim: kvDim}
	for range layers {
		c.k = append(c.k, make([]float32, maxSeq*kvDim))
		c.v = append(c.v, make([]float32, maxSeq*kvDim))
	}
	return c, nil
}

// NewKVF16 allocates a cache that holds k and v as f16 (backend.KVFormatter).
func (b *Backend) NewKVF16(layers, maxSeq, kvDim int) (backend.KV, error) {
	c := &kv{seq: maxSeq, dim: kvDim}
	for range layers {
		c.k16 = append(c.k16, make([]uint16, maxSeq*kvDim))
		c.v16 = append(c.v16, make([]uint16, maxSeq*kvDim))
	}
	return c, nil
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
			rmsnorm(out[o:o+n], in[o:o+n], g.f, eps)
		}
	}
}

// rmsnorm computes o = w * (x / sqrt(mean(x²) + eps)) in run.c's order.
func rmsnorm(o, x, w []float32, eps float32) {
	var ss float32
	for _, v := range x {
		ss += float32(v * v)
	}
	ss /= float32(len(x))
	ss += eps
	ss = 1 / float32(math.Sqrt(float64(ss)))
	for j := range x {
		o[j] = w[j] * float32(ss*x[j])
	}
}

func (b *Backend) MatMul(dst, x backend.Buf, w, bias backend.Weight) {
	d, s, m := dst.(*buf), x.(*buf), w.(*weight)
	var bf []float32
	if bias != nil {
		bf = bias.(*weight).f
	}
	b.matmul(d.f, d.cols, s.f, s.rows, s.cols, m)
	if bf != nil {
		for r := 0; r < d.rows; r++ {
			row := d.row(r)
			for i := range row {
				row[i] += bf[i]
			}
		}
	}
}

func (b *Backend) RoPE(x backend.Buf, headDim, pos0 int, r *backend.Rope) {
	s := x.(*buf)
	half := headDim / 2
	cos := make([]float32, half)
	sin := make([]float32, half)
	for t := 0; t < s.rows; t++ {
		pos := float32(pos0 + t)
		for i, f := range r.InvFreq {
			a := float64(pos * f)
			cos[i] = float32(math.Cos(a)) * r.AttnFactor
			sin[i] = float32(math.Sin(a)) * r.AttnFactor
		}
		row := s.row(t)
		for h := 0; h+headDim <= len(row); h += headDim {
			rope(row[h:h+headDim], cos, sin, r.Interleaved)
		}
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
	for t := 0; t < kb.rows; t++ {
		p := s.Pos0 + t
		c.store(s.Layer, false, p*kvDim, kb.row(t)[:kvDim])
		c.store(s.Layer, true, p*kvDim, vb.row(t)[:kvDim])
	}
	group := s.Heads / s.KVHeads
	scale := float32(math.Sqrt(float64(s.HeadDim)))
	n := qb.rows * s.Heads
	work := n * (s.Pos0 + qb.rows) * s.HeadDim
	b.parallel(n, work, func(lo, hi int) {
		att := make([]float32, s.Pos0+qb.rows)
		tmp := make([]float32, s.HeadDim) // an f16 cache row decoded
		for j := lo; j < hi; j++ {
			t, h := j/s.Heads, j%s.Heads
			p := s.Pos0 + t
			qh := qb.row(t)[h*s.HeadDim : (h+1)*s.HeadDim]
			koff := (h / group) * s.HeadDim
			sc := att[:p+1]
			for i := range sc {
				kt := c.row(s.Layer, false, i*kvDim+koff, s.HeadDim, tmp)
				var d float32
				for x := range qh {
					d += float32(qh[x] * kt[x])
				}
				sc[i] = d / scale
			}
			routing.Softmax(sc, sc)
			o := out.row(t)[h*s.HeadDim : (h+1)*s.HeadDim]
			clear(o)
			for i, a := range sc {
				vt := c.row(s.Layer, true, i*kvDim+koff, s.HeadDim, tmp)
				for x := range o {
					o[x] += float32(a * vt[x])
				}
			}
		}
	})
}

func (b *Backend) Add(dst, x backend.Buf) {
	d, s := dst.(*buf), x.(*buf)
	for i, v := range s.f[:len(d.f)] {
		d.f[i] += v
	}
}

// cpuRoutes is the host-side routing of a batch.
type cpuRoutes [][]routing.Choice

func (b *Backend) Route(logits backend.Buf, s backend.RouteSpec) backend.Routes {
	l := logits.(*buf)
	var bias []float32
	if s.Bias != nil {
		bias = s.Bias.(*weight).f
	}
	scratch := make([]float32, 2*l.cols)
	out := make(cpuRoutes, l.rows)
	for t := range out {
		out[t] = routing.Select(nil, l.row(t), bias, s.Rule, scratch)
	}
	if s.Capacity > 0 {
		routing.ApplyCapacity(out, s.Capacity, s.Rule.Fallback, l.cols)
	}
	return out
}

func (b *Backend) ReadRoutes(r backend.Routes) ([][]routing.Choice, error) {
	return r.(cpuRoutes), nil
}

func (b *Backend) WriteRoutes(r backend.Routes, choices [][]routing.Choice) error {
	rt := r.(cpuRoutes)
	if len(choices) != len(rt) {
		return fmt.Errorf("cpu: routes for %d tokens, %d given", len(rt), len(choices))
	}
	for t := range rt {
		rt[t] = append(rt[t][:0], choices[t]...)
	}
	return nil
}

func (b *Backend) Read(x backend.Buf, dst []float32) error {
	copy(dst, x.(*buf).f)
	return nil
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
	return best, nil
}

func (b *Backend) Sync() error  { return nil }
func (b *Backend) Close() error { return nil }

// parallel splits [0, n) across the backend's goroutines when the op is
// large enough to repay starting them: work counts multiply-adds, and
// 2^17 of them (tens of microseconds) is where two goroutines began to win
// over one on `mode bench` for stories260K and the Mixtral-shaped model.
func (b *Backend) parallel(n, work int, fn func(lo, hi int)) {
	const minWork = 1 << 17
	t := b.threads
	if t > n {
		t = n
	}
	if t <= 1 || work < minWork {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + t - 1) / t
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
