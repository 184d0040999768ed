package backend

import (
	"math"

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

// Expert is one gated expert: down(act(gate·x) * (up·x)), act silu unless
// Act says otherwise. Gate and Up are [width, dim], Down is [dim, width];
// widths may differ between experts. A deeper expert (model.ExpertArch)
// has More blocks after this first one, each applied to
// RMSNorm(x + the blocks' outputs so far) with its own norm; the expert's
// output is the sum of its blocks' outputs in block order.
type Expert struct {
	Gate, Up, Down Weight
	Act            model.Activation // "" is silu; all blocks use it
	More           []Block
}

// Block is a block of an expert after the first: Norm is [dim].
type Block struct {
	Norm, Gate, Up, Down Weight
}

// Weights lists all of e's weights, first block first.
func (e *Expert) Weights() []Weight {
	ws := []Weight{e.Gate, e.Up, e.Down}
	for _, b := range e.More {
		ws = append(ws, b.Norm, b.Gate, b.Up, b.Down)
	}
	return ws
}

// FFN is a layer's feed-forward block as the MoE op sees it. Routed experts
// the engine has not loaded are nil; the engine guarantees that every expert
// named by the Routes it passes is non-nil.
type FFN struct {
	Experts    []*Expert
	Shared     []*Expert
	SharedGate Weight // [1, dim] or nil: the shared output is scaled by sigmoid(SharedGate·x)
	// Act is every expert's activation (model.ActSwiGLU or
	// model.ActSwiGLUClamped with Alpha and Limit).
	Act          model.Activation
	Alpha, Limit float32
	// GateBias and UpBias [experts, width] and DownBias [experts, dim],
	// or nil: row e is added to routed expert e's projections.
	GateBias, UpBias, DownBias Weight
	// NormEps is the epsilon of the RMSNorms inside deeper experts.
	NormEps float32
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
	// Divisor divides the scores q·k; 0 means √HeadDim. Granite sets
	// 1/attention_multiplier (model.Config.AttnDivisor).
	Divisor float32
	// Window > 0 limits each row to the last Window positions, its own
	// included (sliding-window attention); 0 attends to the whole context.
	Window int
	// Sinks [Heads] or nil: a learned logit per head that joins each
	// softmax denominator and then is dropped (gpt-oss).
	Sinks Weight
}

// ScoreDivisor returns Divisor, or √HeadDim when it is 0.
func (s AttnSpec) ScoreDivisor() float32 {
	if s.Divisor != 0 {
		return s.Divisor
	}
	return float32(math.Sqrt(float64(s.HeadDim)))
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
	// Scale computes x *= s (Granite's embedding, residual and logit
	// multipliers).
	Scale(x Buf, s float32)
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

// Adopter is a Backend that can make a weight of a tensor's own memory
// instead of a copy: the caller hands the memory over and must not change
// it afterwards. A backend whose weights live in host memory (the CPU's)
// would otherwise hold every weight twice, once as the loaded tensor and
// once as its copy.
type Adopter interface {
	Adopt(t *tensor.Tensor) (Weight, error)
}

// MultiMatMuler is a Backend that computes several products of one input
// as one op: MatMuls(dsts, x, ws, biases) does MatMul(dsts[i], x, ws[i],
// biases[i]) for every i (biases[i] may be nil), with MatMul's results.
// The engine gives it each layer's q, k and v projections, which the CPU
// backend then hands to its threads once instead of three times.
type MultiMatMuler interface {
	MatMuls(dsts []Buf, x Buf, ws, biases []Weight)
}

// ExpertUploader is a Backend that keeps routed experts' matrices apart
// from other weights — WebGPU packs them into a pool of pages that the
// MoE kernels index and that evictions free for the next upload. The
// engine uploads every routed expert's gate, up and down matrix through
// it (and every other weight through Upload), so the backend learns what
// a tensor is from the call, never from its name. t is 2-D.
type ExpertUploader interface {
	UploadExpert(t *tensor.Tensor) (Weight, error)
}

// KVFormatter is a Backend that can hold its KV cache in f16: k and v are
// rounded to f16 (nearest even) when stored and read back as f32, halving
// the cache's memory. The engine uses it when asked for an f16 cache.
type KVFormatter interface {
	// NewKVF16 is NewKV with an f16 cache; kvDim must be even.
	NewKVF16(layers, maxSeq, kvDim int) (KV, error)
}

// Feature is an optional part of a model's forward pass that not every
// backend implements.
type Feature string

const (
	FeatureSinks         Feature = "attention sinks"
	FeatureSlidingWindow Feature = "sliding-window attention with a ring KV cache"
	FeatureExpertBias    Feature = "expert biases"
	FeatureClampedSwiGLU Feature = "the clamped SwiGLU activation"
	FeatureMXFP4         Feature = "MXFP4 weights"
	FeatureMLA           Feature = "multi-head latent attention"
	FeatureGroupRouting  Feature = "group-limited expert routing"
)

// MLASpec describes one layer's multi-head latent attention (model.MLA).
type MLASpec struct {
	Layer, Heads                 int
	NopeDim, RopeDim, VDim, Rank int
	Pos0                         int // position of the batch's first row
	// Divisor divides the scores q·k; 0 means √(NopeDim+RopeDim).
	Divisor float32
	// KVNorm [Rank] is kv_a_layernorm's weight, with Eps.
	KVNorm Weight
	Eps    float32
	// KVB [Heads·(NopeDim+VDim), Rank] is kv_b_proj: head h's k_nope is
	// rows h·(NopeDim+VDim).. times the latent, its value the next VDim.
	KVB Weight
	// Rope rotates q's and the shared key's RopeDim dimensions.
	Rope *Rope
	// Absorb computes from the cached latent directly, with kv_b's key
	// rows absorbed into the query (q_nope·KB_h) and its value rows into
	// the output (VB_h·Σ p·latent), instead of expanding every cached
	// position's k_nope and v. Both are the same attention; absorbed is
	// cheaper for one row (decode), expanded for many (prefill).
	Absorb bool
}

// MLAer is a Backend that implements multi-head latent attention
// (FeatureMLA) with a cache of the compressed latent and the shared
// rotated key, Rank+RopeDim floats per position.
type MLAer interface {
	NewMLAKV(layers, maxSeq, rank, ropeDim int) (KV, error)
	// MLAAttention takes q [T, Heads·(NopeDim+RopeDim)] (each head
	// [nope | rope]) and ckv [T, Rank+RopeDim] (kv_a_proj_with_mqa's
	// output: latent, then the shared key). It normalises the latent with
	// KVNorm, rotates the shared key and q's rope dimensions (q in place),
	// stores the latent and the key at positions Pos0.. of the layer's
	// cache (ckv's latent is left normalised), and writes causal attention
	// over the cache to dst [T, Heads·VDim].
	MLAAttention(dst, q, ckv Buf, kv KV, s MLASpec)
}

// Featurer is a Backend that implements some Features. The engine refuses
// a model that needs a feature its backend does not report, rather than
// compute it another way.
type Featurer interface {
	Supports(f Feature) bool
}

// RingKVer is a Backend whose KV cache can hold a different number of
// positions per layer (FeatureSlidingWindow). Position p of a layer of n
// positions is stored at slot p mod n: a sliding-window layer needs only
// the window plus a batch, not the whole context.
type RingKVer interface {
	// NewRingKV allocates seqs[l] positions for layer l, in f16 when f16
	// is set (kvDim must then be even).
	NewRingKV(seqs []int, kvDim int, f16 bool) (KV, error)
}

// Argmaxer is a Backend that finds the largest logit on the device, so
// greedy decoding reads back one token id instead of the logits.
type Argmaxer interface {
	// Argmax returns the index of the largest value in x's first row, the
	// lowest index among equals.
	Argmax(x Buf) (int, error)
}

// Counter is a Backend that counts the device work it submits (the
// WebGPU backend): what a page or a benchmark reads to see which kernels
// a model runs on its device and how many dispatches a token costs.
type Counter interface {
	Counts() Counts
}

// Counts are a Counter's totals since it was created.
type Counts struct {
	Submissions int // queue submissions
	Dispatches  int // compute dispatches
	// Kernels is the dispatches by kernel, named by their WGSL file
	// ("layer.wgsl"); a copy the caller may keep.
	Kernels map[string]int
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

// DenseLayer is one decoder layer's weights, for LayerFuser: the RMSNorm
// before attention, the q/k/v/o projections (no biases), optionally
// QK-norm, the RMSNorm before the FFN and its SwiGLU gate, up and down,
// or instead routed experts.
type DenseLayer struct {
	AttnNorm, Wq, Wk, Wv, Wo Weight
	// QNorm and KNorm, or nil: q and k are RMS-normalised before the
	// rotation in groups of the weights' lengths (a head, or the whole
	// projection), with LayerSpec's Eps.
	QNorm, KNorm            Weight
	FFNNorm, Gate, Up, Down Weight
	// Router, when not nil, makes the FFN routed and Gate, Up and Down are
	// nil: Rule chooses among Experts by Router's logits (no selection or
	// logit bias), every expert resident and plain SwiGLU (no More, no
	// biases), no shared expert; the chosen experts' outputs are summed
	// with their weights. The experts must not change while the layer is
	// fused: the engine passes only layers whose experts it loaded up
	// front.
	Router  Weight
	Rule    *model.Router
	Experts []*Expert
}

// LayerSpec is what LayerFuser needs besides the weights: the attention's
// shape at position Pos0 (full causal attention, no sinks),
// the norms' Eps and the rotation.
type LayerSpec struct {
	Layer                   int
	Heads, KVHeads, HeadDim int
	Pos0                    int
	Divisor                 float32 // 0 means √HeadDim, as AttnSpec's
	Eps                     float32
	Rope                    *Rope
}

// LayerFuser is a Backend that can run a whole dense layer on one decoded
// token, x [1, dim] += attention and then x += FFN, with the same result
// as the engine's ops one by one (RMSNorm, MatMul ×3, RMSNorm ×2 for
// QK-norm, RoPE ×2, Attention, MatMul, Add, RMSNorm, MatMul and Route for
// a routed FFN, MoE, Add) but fewer dispatches. It reports false,
// having recorded nothing, when it cannot (the engine then runs the ops).
type LayerFuser interface {
	FuseLayer(x Buf, kv KV, w *DenseLayer, s LayerSpec) bool
}
