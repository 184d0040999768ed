package webgpu

import (
	"fmt"
	"maps"
	"strings"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Backend implements runtime/backend.Backend on a WebGPU device. Ops are
// recorded, not run: they go to the device at the next Read, ReadRoutes or
// Sync as one submission, and any error met while recording or running
// them is reported there.
type Backend struct {
	d    *Device
	own  bool // Close closes d
	s    *stream
	zero *buffer // bound where a kernel's optional input is absent
	// spare is bound where a kernel's optional read-write binding is
	// unused (matvec's residual): never bound anywhere else, so it
	// aliases nothing; spare2 and spare3 likewise, for matvec_multi's
	// unused outputs.
	spare, spare2, spare3 *buffer
	bufs                  []*buffer
	experts               expertPool                    // every resident routed expert's matrices
	tables                map[*backend.FFN]*expertTable // per sparse layer
	// weightBytes counts the device bytes of weights with buffers of their
	// own (everything but pooled experts).
	weightBytes int64
	// f16 says f16 weights use f16 arithmetic (Device.F16); benchmarks
	// clear it to time the f32 path on the same device.
	f16 bool
	// gemm says when MatMul uses the tiled gemm kernel (gemmAuto);
	// benchmarks change it to time the kernels against each other.
	gemm int
	// oldMatVec sends decode products to the kernels matvec replaced
	// (matmul, matvec_rows) and turns off every fusion: the dispatches
	// before matvec; benchmarks set it to compare in the same run.
	oldMatVec bool
	// unfused turns off what came after oldMatVec's comparison point: the
	// RMSNorm taken into matvecs (normfuse.go), attn_single, attn_rope,
	// head_argmax and router_route; BenchmarkFusion sets it to compare in
	// the same run.
	unfused bool
	// lanes, when not 0, overrides matVecLanes's choice for rows of more
	// than shortRow columns; benchmarks set it to time one shape against
	// another on the same device.
	lanes int
	// moeWide runs the MoE matrix kernels with shaders.MoELanes lanes per
	// row where moeLanes would choose one; benchmarks set it to compare in
	// the same run.
	moeWide bool
	// noUniformX keeps matvec's x a storage binding where uniformX would
	// bind it as a uniform; benchmarks set it to compare in the same run.
	noUniformX bool
	// matVecTokens overrides matVecBatch, the largest batch MatMul sends
	// to matvec: n > 0 up to n tokens, n < 0 decode steps only, 0 the
	// measured rule. Benchmarks and tests set it to compare the paths.
	matVecTokens int
	// subgroups says matvec's lanes meet through subgroup operations
	// (Device.Subgroups); benchmarks and tests clear it to run the
	// workgroup-memory path on the same device.
	subgroups bool
	// last is the matvec dispatch recorded last, which Add may fuse with.
	last lastMatVec
	// lastNorm is the in-place rmsnorm dispatch recorded last.
	lastNorm lastNorm
	// lastOut is the one-row rmsnorm dispatch recorded last, which the
	// next matvec may take in (normfuse.go).
	lastOut lastOut
	// lastComb is the moe_combine dispatch recorded last.
	lastComb lastCombine
	// ropes are the last two rope dispatches recorded, oldest first.
	ropes [2]lastRoPE
	// packs are the dense layers FuseLayer has copied into one buffer
	// each (the buffers are in bufs); noLayer turns FuseLayer off, for
	// benchmarks and tests comparing the paths in one run.
	packs   map[*backend.DenseLayer]*layerPack
	noLayer bool
}

var (
	_ backend.Backend = (*Backend)(nil)
	_ backend.Counter = (*Backend)(nil)
)

// New returns a backend on d, which the caller keeps and closes.
func New(d *Device) (*Backend, error) {
	s, err := newStream(d)
	if err != nil {
		return nil, err
	}
	z, err := d.newBuffer("zero", 256, wgpu.BufferUsageStorage|wgpu.BufferUsageCopyDst)
	if err != nil {
		s.release()
		return nil, err
	}
	b := &Backend{d: d, s: s, zero: z, tables: map[*backend.FFN]*expertTable{}, f16: d.F16, subgroups: d.Subgroups}
	// No dispatch recorded yet that a later one could take in: op 0 would
	// match the stream's first op.
	b.last, b.lastOut = lastMatVec{op: -1}, lastOut{op: -1}
	b.ropes[0].op, b.ropes[1].op = -1, -1
	for _, sp := range []**buffer{&b.spare, &b.spare2, &b.spare3} {
		if *sp, err = d.newBuffer("spare", 256, wgpu.BufferUsageStorage|wgpu.BufferUsageCopyDst); err != nil {
			b.releaseSpares()
			z.Release()
			s.release()
			return nil, err
		}
	}
	if b.subgroups {
		// Once per device: a device whose subgroups fail the check keeps
		// workgroup memory for every backend made on it.
		ok, err := b.checkSubgroups()
		if !ok {
			b.subgroups, d.Subgroups = false, false
			d.SubgroupsNote = "turned off: a check matvec through subgroups gave wrong sums (its subgroups are not laid out along the local index)"
			if err != nil {
				d.SubgroupsNote = fmt.Sprintf("turned off: the check matvec through subgroups failed: %v", err)
			}
		}
	}
	return b, nil
}

// Open acquires a device with o and returns a backend that owns it.
func Open(o Options) (*Backend, error) {
	d, err := OpenDevice(o)
	if err != nil {
		return nil, err
	}
	b, err := New(d)
	if err != nil {
		d.Close()
		return nil, err
	}
	b.own = true
	return b, nil
}

// Device returns the backend's device.
func (b *Backend) Device() *Device { return b.d }

func (b *Backend) Name() string { return "webgpu" }

// buf is a row-major f32 matrix at float offset off of a device buffer.
type buf struct {
	b          *buffer
	rows, cols int
	off        int
}

func (x *buf) Rows() int { return x.rows }
func (x *buf) Cols() int { return x.cols }

type kv struct {
	seq, dim int
	lens     []int // positions each layer holds: seq, or a sliding window's ring
	k, v     []*buffer
	f16      bool // k and v hold f16 pairs packed in u32 words
}

func (c *kv) Len() int { return c.seq }

// Upload puts t on the device in buffers of its own.
func (b *Backend) Upload(t *tensor.Tensor) (backend.Weight, error) {
	return b.uploadOwn(t)
}

// UploadExpert puts a routed expert's matrix into the expert pool, written
// straight into a free extent (backend.ExpertUploader): the engine says
// which tensors are experts.
func (b *Backend) UploadExpert(t *tensor.Tensor) (backend.Weight, error) {
	if len(t.Shape) != 2 {
		return nil, fmt.Errorf("webgpu: expert matrix %s has shape %v, want 2-D", t.Name, t.Shape)
	}
	return b.uploadExpert(t)
}

func (b *Backend) uploadOwn(t *tensor.Tensor) (backend.Weight, error) {
	w, err := b.d.uploadWeight(t)
	if err != nil {
		return nil, err
	}
	if len(t.Shape) == 1 && strings.Contains(t.Name, ".blocks.") {
		if w.host, err = t.Float32s(); err != nil {
			w.free()
			return nil, fmt.Errorf("webgpu: upload %s: %w", t.Name, err)
		}
	}
	b.weightBytes += w.bytes
	return w, nil
}

// Free releases w's device memory. A pooled expert matrix's extent goes
// back to the pool (no buffer is released, so cached bind groups stay
// valid); a weight's own buffers are released. Ops already recorded keep
// buffers alive until they have run (wgpu reference-counts buffers held by
// bind groups), and an extent is not written again before they are
// submitted (uploadExpert).
func (b *Backend) Free(w backend.Weight) {
	m, ok := w.(*weight)
	if !ok || m.pages == nil {
		return
	}
	if m.pooled != nil {
		b.experts.release(*m.pooled)
		m.pooled, m.pages = nil, nil
		return
	}
	b.s.forgetGroups()
	b.weightBytes -= m.bytes
	m.free()
}

func (b *Backend) newF32(label string, n int) (*buffer, error) {
	// Uniform too: matvec may read an activation as x through a uniform
	// binding (uniformX).
	x, err := b.d.newBuffer(label, uint64(4*n), wgpu.BufferUsageUniform|wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc|wgpu.BufferUsageCopyDst)
	if err != nil {
		return nil, err
	}
	if x.size > b.d.MaxBinding {
		x.Release()
		return nil, fmt.Errorf("webgpu: %s of %d bytes exceeds the %d-byte binding limit", label, x.size, b.d.MaxBinding)
	}
	b.bufs = append(b.bufs, x)
	return x, nil
}

func (b *Backend) NewBuf(rows, cols int) (backend.Buf, error) {
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("webgpu: buffer %dx%d", rows, cols)
	}
	x, err := b.newF32("activation", rows*cols)
	if err != nil {
		return nil, err
	}
	return &buf{b: x, rows: rows, cols: cols}, nil
}

func (b *Backend) View(x backend.Buf, row0, n int) backend.Buf {
	p := x.(*buf)
	return &buf{b: p.b, rows: n, cols: p.cols, off: p.off + row0*p.cols}
}

func (b *Backend) NewKV(layers, maxSeq, kvDim int) (backend.KV, error) {
	return b.newKV(layers, maxSeq, kvDim, false)
}

// NewKVF16 allocates a cache holding k and v as f16 pairs packed in u32
// words (backend.KVFormatter): half the memory of NewKV's. kvDim must be
// even so that every position starts on a word.
func (b *Backend) NewKVF16(layers, maxSeq, kvDim int) (backend.KV, error) {
	if kvDim%2 != 0 {
		return nil, fmt.Errorf("webgpu: f16 KV cache needs an even kv dim, got %d", kvDim)
	}
	return b.newKV(layers, maxSeq, kvDim, true)
}

func (b *Backend) newKV(layers, maxSeq, kvDim int, f16 bool) (backend.KV, error) {
	seqs := make([]int, layers)
	for l := range seqs {
		seqs[l] = maxSeq
	}
	return b.NewRingKV(seqs, kvDim, f16)
}

// Supports reports the optional features the WebGPU kernels implement:
// gpt-oss's (attention.wgsl's window, ring and sinks, moe_act.wgsl,
// fmt_mxfp4.wgsl).
func (b *Backend) Supports(f backend.Feature) bool {
	switch f {
	case backend.FeatureSinks, backend.FeatureSlidingWindow, backend.FeatureExpertBias, backend.FeatureClampedSwiGLU, backend.FeatureMXFP4,
		backend.FeatureGroupRouting, backend.FeatureMLA:
		return true
	}
	return false
}

// NewRingKV allocates seqs[l] positions for layer l (backend.RingKVer):
// Attention stores position p at slot p mod seqs[l].
func (b *Backend) NewRingKV(seqs []int, kvDim int, f16 bool) (backend.KV, error) {
	if f16 && kvDim%2 != 0 {
		return nil, fmt.Errorf("webgpu: f16 KV cache needs an even kv dim, got %d", kvDim)
	}
	c := &kv{dim: kvDim, f16: f16, lens: append([]int(nil), seqs...)}
	for _, n := range seqs {
		c.seq = max(c.seq, n)
	}
	for _, n := range seqs {
		if n <= 0 {
			return nil, fmt.Errorf("webgpu: KV cache of %d positions", n)
		}
		words := n * kvDim
		if f16 {
			words /= 2
		}
		k, err := b.newF32("kv", words)
		if err != nil {
			return nil, err
		}
		v, err := b.newF32("kv", words)
		if err != nil {
			return nil, err
		}
		c.k, c.v = append(c.k, k), append(c.v, v)
	}
	return c, nil
}

// scratch takes a pooled f32 buffer of rows×cols; give it back with
// b.s.pool.put once the ops using it are recorded.
func (b *Backend) scratch(rows, cols int) (*buf, error) {
	x, err := b.s.pool.get("scratch", uint64(4*rows*cols), wgpu.BufferUsageUniform|wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc|wgpu.BufferUsageCopyDst)
	if err != nil {
		return nil, err
	}
	return &buf{b: x, rows: rows, cols: cols}, nil
}

func (b *Backend) Read(x backend.Buf, dst []float32) error {
	p := x.(*buf)
	n := min(len(dst), p.rows*p.cols)
	out, err := b.s.read(p.b, uint64(4*p.off), uint64(4*n))
	if err != nil {
		return err
	}
	for i := range n {
		dst[i] = float32frombytes(out[4*i:])
	}
	return nil
}

func (b *Backend) Sync() error { return b.s.sync() }

// Stats counts the device work submitted since the backend was made and
// the device memory its weights hold now.
type Stats struct {
	BindGroups  int   // bind groups created (the rest were reused)
	Submissions int   // queue submissions
	Dispatches  int   // compute dispatches
	ReadBytes   int64 // bytes read back to the host
	// WeightBytes is the device memory of weights in buffers of their own:
	// every weight but the pooled routed experts.
	WeightBytes int64
	// ExpertBytes is the device memory of the resident routed experts'
	// matrices: one copy of each, in the expert pool. ExpertPoolBytes is
	// the size of the pool's pages, ExpertBytes plus free extents.
	ExpertBytes, ExpertPoolBytes int64
	// ExpertPages is the number of the pool's pages (bindings).
	ExpertPages int
	// F16Arith says f16 weights are multiplied in f16 (shader-f16).
	F16Arith bool
	// Subgroups says matvec's lanes meet through subgroup operations.
	Subgroups bool
}

// Stats returns the counters.
func (b *Backend) Stats() Stats {
	return Stats{BindGroups: b.s.created, Submissions: b.s.submits, Dispatches: b.s.dispatches, ReadBytes: b.s.readBytes,
		WeightBytes: b.weightBytes, ExpertBytes: int64(b.experts.used), ExpertPoolBytes: int64(b.experts.capacity),
		ExpertPages: len(b.experts.pages), F16Arith: b.f16, Subgroups: b.subgroups}
}

// Counts returns the dispatch counters as backend.Counts (the backend is a
// backend.Counter): the wasm session reports them to the page.
func (b *Backend) Counts() backend.Counts {
	return backend.Counts{Submissions: b.s.submits, Dispatches: b.s.dispatches, Kernels: maps.Clone(b.s.byFile)}
}

// String describes the backend's device and arithmetic.
func (b *Backend) String() string {
	arith := "f16 weights widened to f32"
	if b.f16 {
		arith = "f16 arithmetic for f16 weights"
	} else if b.d.F16Note != "" {
		arith += ": " + b.d.F16Note
	}
	sg := "matvec lanes meet in workgroup memory"
	if b.subgroups {
		sg = fmt.Sprintf("matvec lanes meet through subgroups (smallest %d)", b.d.SubgroupMin)
	} else if b.d.SubgroupsNote != "" {
		sg += ": " + b.d.SubgroupsNote
	}
	return fmt.Sprintf("webgpu (%s; %s; %d-byte bindings)", arith, sg, b.d.MaxBinding)
}

func (b *Backend) releaseSpares() {
	for _, sp := range []*buffer{b.spare, b.spare2, b.spare3} {
		if sp != nil {
			sp.Release()
		}
	}
}

func (b *Backend) Close() error {
	err := b.s.sync()
	for _, t := range b.tables {
		t.release()
	}
	b.experts.releaseAll()
	for _, x := range b.bufs {
		x.Release()
	}
	b.zero.Release()
	b.releaseSpares()
	b.s.release()
	b.bufs, b.tables, b.packs = nil, nil, nil
	if b.own {
		b.d.Close()
	}
	return err
}
