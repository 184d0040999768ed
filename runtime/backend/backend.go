package backend

import (
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/sample"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Weight is a tensor resident on the device. Only the backend that made it
// may use it.
type Weight interface {
	Shape() []int
	// Bytes is the device memory it occupies.
	Bytes() int64
}

// Buf is a row-major float32 activation matrix on the device: Rows tokens of
// Cols values.
type Buf interface {
	Rows() int
	Cols() int
}

// KV is a key/value cache for all layers of one sequence.
type KV interface {
	// Len is the number of positions it holds (the model's max_seq_len).
	Len() int
}

// Routes is the routing decision of one sparse layer for a batch: per token
// the chosen experts and their weights. It may live on the device.
type Routes interface{}

// Expert is one SwiGLU expert: down(silu(gate·x) * (up·x)). Gate and Up are
// [width, dim], Down is [dim, width]; widths may differ between experts.
type Expert struct {
	Gate, Up, Down Weight
}

// FFN is a layer's feed-forward block as the MoE op sees it. Routed experts
// the engine has not loaded are nil; the engine guarantees that every expert
// named by the Routes it passes is non-nil.
type FFN struct {
	Experts    []*Expert
	Shared     []*Expert
	SharedGate Weight // [1, dim] or nil: the shared output is scaled by sigmoid(SharedGate·x)
}

// RouteSpec is what Route needs besides the logits.
type RouteSpec struct {
	Rule *model.Router
	Bias Weight // selection bias [experts], nil unless Rule.SelectionBias
	// Capacity is the per-expert token limit for this batch (0 = none),
	// from Rule.Capacity.
	Capacity int
}

// AttnSpec describes the attention of one layer.
type AttnSpec struct {
	Layer, Heads, KVHeads, HeadDim int
	Pos0                           int // position of the batch's first row
}

// Rope describes RoPE for one model: per-pair inverse frequencies and the
// factor cos and sin are scaled by (YaRN's attention factor, else 1).
type Rope struct {
	InvFreq     []float32 // HeadDim/2 values
	AttnFactor  float32
	Interleaved bool // rotate (2i, 2i+1) instead of (i, i+HeadDim/2)
}

// Backend runs the ops of a transformer forward pass.
type Backend interface {
	Name() string

	// Upload copies a tensor to the device, keeping or converting its format
	// as the backend prefers.
	Upload(t *tensor.Tensor) (Weight, error)
	// Free releases a weight's device memory.
	Free(w Weight)
	// NewBuf allocates an activation matrix.
	NewBuf(rows, cols int) (Buf, error)
	// View returns rows [row0, row0+n) of b, sharing its memory.
	View(b Buf, row0, n int) Buf
	// NewKV allocates a cache of maxSeq positions for layers of kvDim keys
	// and values.
	NewKV(layers, maxSeq, kvDim int) (KV, error)

	// Embed writes the rows of table selected by ids to dst.
	Embed(dst Buf, table Weight, ids []int)
	// RMSNorm normalises each group of w's length in each row of x and
	// scales by w; dst may be x.
	RMSNorm(dst, x Buf, w Weight, eps float32)
	// MatMul computes dst = x·Wᵀ (+ bias when non-nil) for W [out, in].
	MatMul(dst, x Buf, w, bias Weight)
	// RoPE rotates each head of x (heads of headDim) for positions pos0+row.
	RoPE(x Buf, headDim, pos0 int, r *Rope)
	// Attention stores k and v at positions Pos0.. in layer's cache, then
	// writes causal grouped-query attention of q over the cache to dst.
	Attention(dst, q, k, v Buf, kv KV, s AttnSpec)
	// Add computes dst += x.
	Add(dst, x Buf)
	// Route selects experts for each row of the router logits.
	Route(logits Buf, s RouteSpec) Routes
	// ReadRoutes returns the choices of Routes on the host (a sync point on
	// devices that route on the device).
	ReadRoutes(r Routes) ([][]routing.Choice, error)
	// WriteRoutes replaces the choices in r with choices edited on the host
	// (the engine substitutes experts that are not loaded yet).
	WriteRoutes(r Routes, choices [][]routing.Choice) error
	// MoE writes the layer's FFN output for each row of x to dst.
	MoE(dst, x Buf, r Routes, f *FFN)

	// Read copies b to the host.
	Read(b Buf, dst []float32) error
	// Sync waits for queued work and reports any device error.
	Sync() error
	// Close releases everything.
	Close() error
}

// KVFormatter is a Backend that can hold its KV cache in f16: k and v are
// rounded to f16 (nearest even) when stored and read back as f32, halving
// the cache's memory. The engine uses it when asked for an f16 cache.
type KVFormatter interface {
	// NewKVF16 is NewKV with an f16 cache; kvDim must be even.
	NewKVF16(layers, maxSeq, kvDim int) (KV, error)
}

// Argmaxer is a Backend that finds the largest logit on the device, so
// greedy decoding reads back one token id instead of the logits.
type Argmaxer interface {
	// Argmax returns the index of the largest value in x's first row, the
	// lowest index among equals.
	Argmax(x Buf) (int, error)
}

// DeviceSampler is a Backend that draws the next token on the device, so a
// sampled decode step reads back one token id instead of the logits.
type DeviceSampler interface {
	// CanSample reports whether SampleDevice handles p exactly as
	// sample.Sampler does.
	CanSample(p sample.Params) bool
	// SampleDevice draws number draw of p's random stream from x's first
	// row, as sample.Sampler's draw-th Sample would.
	SampleDevice(x Buf, p sample.Params, draw uint32) (int, error)
}
