package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Options configures an Engine.
type Options struct {
	// MaxBatch is the most prompt tokens one forward step processes; longer
	// prompts run in several steps. 0 means 128.
	MaxBatch int
	// MaxSeq caps the context (and the KV cache) below the model's
	// max_seq_len; 0 means min(max_seq_len, 4096).
	MaxSeq int
	// LazyExperts uploads a routed expert to the backend the first time a
	// token is routed to it instead of at New.
	LazyExperts bool
	// Trace, when set, receives every sparse layer's routing decision.
	Trace func(layer, pos0 int, routes [][]routing.Choice)
	// Experts supplies routed experts that are not in the model's Weights
	// (lazy loading from a pack); nil means the Weights.
	Experts ExpertSource
	// Prefetch applies each next layer's router to the current hidden state
	// (pre-gating) and asks the ExpertSource, when it is a Prefetcher, to
	// start fetching the experts it predicts that are not resident, so
	// their download overlaps this layer's compute.
	Prefetch bool
	// Missing is what happens when a token is routed to an expert that is
	// not loaded: MissingExact (the default) waits for it; MissingFast uses
	// the best-scoring expert that is ready instead, counts the
	// substitution, and fetches the missing one in the background.
	Missing MissingPolicy
	// ExpertBudget caps the bytes of routed experts kept on the backend,
	// evicting the least recently used; 0 means no limit. Experts one layer
	// needs at once are kept even beyond the budget.
	ExpertBudget int64
	// KVF16 keeps the KV cache in f16 instead of f32, halving its memory at
	// the cost of rounding k and v; the backend must be a
	// backend.KVFormatter.
	KVF16 bool
	// ShareWeights lets a backend that keeps weights in host memory (a
	// backend.Adopter: the CPU) use the model's weight memory instead of a
	// copy, halving what a loaded model costs; the caller must not change
	// the model's weights afterwards. Routed experts loaded from an
	// ExpertSource are always adopted: they belong to the engine.
	ShareWeights bool
	// MLA chooses how multi-head latent attention is computed (model.MLA):
	// MLAAuto absorbs kv_b into the query and output for a single row
	// (decode) and expands the cached latent to keys and values for a
	// batch (prefill); the others force one way, for tests.
	MLA MLAMode
}

// MLAMode says how multi-head latent attention is computed.
type MLAMode int

const (
	MLAAuto MLAMode = iota
	MLAExpanded
	MLAAbsorbed
)

// uploadTo uploads t to b, handing its memory over when adopt is set and
// b can take it (backend.Adopter).
func uploadTo(b backend.Backend, t *tensor.Tensor, adopt bool) (backend.Weight, error) {
	if a, ok := b.(backend.Adopter); ok && adopt {
		return a.Adopt(t)
	}
	return b.Upload(t)
}

// uploadExpertTo uploads a routed expert's matrix t to b: adopted like
// uploadTo, else through the backend's expert upload when it has one
// (backend.ExpertUploader), else as any weight.
func uploadExpertTo(b backend.Backend, t *tensor.Tensor, adopt bool) (backend.Weight, error) {
	if a, ok := b.(backend.Adopter); ok && adopt {
		return a.Adopt(t)
	}
	if u, ok := b.(backend.ExpertUploader); ok {
		return u.UploadExpert(t)
	}
	return b.Upload(t)
}

// MissingPolicy says how a routed expert that is not loaded is handled.
type MissingPolicy int

const (
	MissingExact MissingPolicy = iota // wait for the expert: output as if every expert were loaded
	MissingFast                       // substitute a ready expert now, load the missing one meanwhile
)

// ErrContextFull is returned when a forward step would pass MaxSeq.
var ErrContextFull = errors.New("context is full")

// Engine runs one sequence of a model on a backend.
type Engine struct {
	cfg  model.Config
	m    *model.Model
	b    backend.Backend
	opt  Options
	rope backend.Rope
	// ropeSeq is the sequence length rope's frequencies were computed for
	// under dynamic NTK scaling (0: the unscaled ones).
	ropeSeq int

	embed, finalNorm, output backend.Weight
	layers                   []layer
	kv                       backend.KV
	pos                      int

	// scratch activations for up to MaxBatch rows; ffn is o's buffer (a
	// layer adds o into x before its FFN writes ffn), one batch of rows
	// less to hold
	x, h, q, k, v, att, o, ffn backend.Buf
	qkvDst                     [3]backend.Buf      // a step's views of q, k, v, for MatMuls
	routerLogits               map[int]backend.Buf // by expert count
	final, logits              backend.Buf
	// MLA's: q's bottleneck, kv_a_proj_with_mqa's output
	mqa, mckv  backend.Buf
	logitsHost []float32

	experts    ExpertSource
	prefetcher Prefetcher // nil unless Options.Prefetch and the source supports it
	pre        backend.Buf
	cache      expertCache
	// per layer: the last token's routed experts and the cache's hits and
	// misses, for ExpertMap
	lastRouted             [][]int
	layerHits, layerMisses []int
	stats                  Stats
}

type layer struct {
	attnNorm, ffnNorm  backend.Weight
	wq, wk, wv, wo     backend.Weight
	bq, bk, bv         backend.Weight
	qkv, qkvBias       [3]backend.Weight // wq, wk, wv and their biases, for MatMuls
	qNorm, kNorm       backend.Weight
	router, routerBias backend.Weight
	routerLogitBias    backend.Weight
	bo, sinks          backend.Weight
	// multi-head latent attention (model.MLA)
	wqA, qANorm, wqB, wkvA, kvANorm, wkvB backend.Weight
	window                                int // 0: full attention
	rule                                  *model.Router
	ffn                                   backend.FFN
	dense                                 *backend.DenseLayer // fusable's view, once built
}

// Stats counts what the engine has done since New.
type Stats struct {
	Forwards       int
	Tokens         int
	ExpertsTotal   int // routed experts in the model
	RoutedAssigned int // (token, expert) assignments seen (when routes are read)

	// The expert cache: a hit is a routed expert already on the backend, a
	// miss one loaded from the ExpertSource.
	ExpertHits, ExpertMisses int
	ExpertsLoaded            int // uploads, counting reloads after eviction
	ExpertBytesLoaded        int64
	ExpertEvictions          int
	ExpertBytesEvicted       int64
	ExpertsResident          int
	ExpertBytesResident      int64
	// Prefetches counts experts the engine asked the source to prefetch.
	Prefetches int
	// Substitutions counts routed slots MissingFast gave to another expert.
	Substitutions int
}

// HitRate is the share of routed expert uses that found the expert resident.
func (s Stats) HitRate() float64 {
	if n := s.ExpertHits + s.ExpertMisses; n > 0 {
		return float64(s.ExpertHits) / float64(n)
	}
	return 0
}

// New uploads the model's weights (routed experts too unless LazyExperts)
// and allocates the KV cache.
func New(b backend.Backend, m *model.Model, o Options) (*Engine, error) {
	if o.Experts != nil || o.ExpertBudget > 0 {
		o.LazyExperts = true
	}
	if err := m.Validate(o.LazyExperts); err != nil {
		return nil, err
	}
	c := m.Config
	if err := checkFeatures(b, &c); err != nil {
		return nil, err
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 128
	}
	if o.MaxSeq <= 0 {
		o.MaxSeq = min(c.MaxSeq, 4096)
	}
	o.MaxSeq = min(o.MaxSeq, c.MaxSeq)
	e := &Engine{cfg: c, m: m, b: b, opt: o, experts: o.Experts}
	if e.experts == nil {
		e.experts = weightsSource{&m.Config, m.Weights}
	}
	if pf, ok := e.experts.(Prefetcher); ok && o.Prefetch {
		e.prefetcher = pf
	}
	e.lastRouted = make([][]int, c.Layers)
	e.layerHits, e.layerMisses = make([]int, c.Layers), make([]int, c.Layers)
	e.cache = expertCache{budget: o.ExpertBudget, lastUse: map[expertKey]int64{}, size: map[expertKey]int64{}, inFlight: map[expertKey]bool{}}
	inv, af := c.RopeFreqs()
	e.rope = backend.Rope{InvFreq: inv, AttnFactor: af, Interleaved: c.RopeStyle == model.RopeInterleaved}
	var err error
	up := func(name string) backend.Weight {
		if err != nil {
			return nil
		}
		t, ok := m.Weights[name]
		if !ok {
			return nil
		}
		if isExpertBias(name) && t.DType != tensor.F32 {
			// The MoE kernels index bias rows as f32: a quantised copy
			// (an [experts, width] matrix a writer took for weights) is
			// decoded here once.
			f, ferr := t.Float32s()
			if ferr != nil {
				err = fmt.Errorf("decoding %s: %w", name, ferr)
				return nil
			}
			t = tensor.FromF32(name, t.Shape, f)
		}
		var w backend.Weight
		w, err = uploadTo(b, t, o.ShareWeights)
		if err != nil {
			err = fmt.Errorf("uploading %s: %w", name, err)
		}
		return w
	}
	e.embed = up(model.NameEmbed)
	e.finalNorm = up(model.NameFinalNorm)
	if c.TiedOutput {
		e.output = e.embed
	} else {
		e.output = up(model.NameOutput)
	}
	e.routerLogits = map[int]backend.Buf{}
	for l := 0; l < c.Layers; l++ {
		n := func(s string) string { return model.LayerName(l, s) }
		ly := layer{
			attnNorm: up(n("attn_norm")), ffnNorm: up(n("ffn_norm")),
			wq: up(n("wq")), wk: up(n("wk")), wv: up(n("wv")), wo: up(n("wo")),
			bq: up(n("bq")), bk: up(n("bk")), bv: up(n("bv")),
			qNorm: up(n("q_norm")), kNorm: up(n("k_norm")),
			router: up(n("router")), routerBias: up(n("router_bias")),
			routerLogitBias: up(n("router_logit_bias")),
			bo:              up(n("bo")), sinks: up(n("sinks")),
			window: c.Window(l),
			wqA:    up(n("wq_a")), qANorm: up(n("q_a_norm")), wqB: up(n("wq_b")),
			wkvA: up(n("wkv_a")), kvANorm: up(n("kv_a_norm")), wkvB: up(n("wkv_b")),
		}
		ly.qkv, ly.qkvBias = [3]backend.Weight{ly.wq, ly.wk, ly.wv}, [3]backend.Weight{ly.bq, ly.bk, ly.bv}
		f := &c.FFN[l]
		for s := range f.SharedWidths {
			ly.ffn.Shared = append(ly.ffn.Shared, &backend.Expert{
				Gate: up(model.SharedName(l, s, "gate")), Up: up(model.SharedName(l, s, "up")), Down: up(model.SharedName(l, s, "down"))})
		}
		ly.ffn.SharedGate = up(n("shared_gate"))
		ly.ffn.Act, ly.ffn.Alpha, ly.ffn.Limit = f.Act, f.Alpha, f.Limit
		ly.ffn.GateBias, ly.ffn.UpBias, ly.ffn.DownBias = up(n("expert_gate_bias")), up(n("expert_up_bias")), up(n("expert_down_bias"))
		ly.ffn.NormEps = c.NormEps
		if f.Sparse() {
			ly.rule = f.Router
			ly.ffn.Experts = make([]*backend.Expert, len(f.ExpertWidths))
			e.stats.ExpertsTotal += len(f.ExpertWidths)
			if _, ok := e.routerLogits[len(f.ExpertWidths)]; !ok {
				rl, berr := b.NewBuf(o.MaxBatch, len(f.ExpertWidths))
				if berr != nil {
					return nil, berr
				}
				e.routerLogits[len(f.ExpertWidths)] = rl
			}
		}
		e.layers = append(e.layers, ly)
		if err != nil {
			return nil, err
		}
	}
	if !o.LazyExperts {
		for l := range e.layers {
			all := make([]int, len(e.layers[l].ffn.Experts))
			for x := range all {
				all[x] = x
			}
			// the model's own weights: nothing to wait for
			if err := e.ensure(context.Background(), l, all); err != nil {
				return nil, err
			}
		}
		e.stats.ExpertHits, e.stats.ExpertMisses = 0, 0 // preloading is not use
		clear(e.layerHits)
		clear(e.layerMisses)
	}
	if err != nil {
		return nil, err
	}
	B := o.MaxBatch
	bufs := []struct {
		p    *backend.Buf
		r, c int
	}{
		{&e.x, B, c.Dim}, {&e.h, B, c.Dim}, {&e.q, B, c.QDim()}, {&e.k, B, c.KVDim()}, {&e.v, B, c.KVDim()},
		{&e.att, B, c.AttnOutDim()}, {&e.o, B, c.Dim}, {&e.pre, B, c.Dim},
		{&e.final, 1, c.Dim}, {&e.logits, 1, c.Vocab},
	}
	if m := c.MLA; m != nil {
		bufs = append(bufs, []struct {
			p    *backend.Buf
			r, c int
		}{{&e.mckv, B, m.KVLoraRank + m.RopeDim}}...)
		if m.QLoraRank > 0 {
			bufs = append(bufs, struct {
				p    *backend.Buf
				r, c int
			}{&e.mqa, B, m.QLoraRank})
		}
	}
	for _, s := range bufs {
		if *s.p, err = b.NewBuf(s.r, s.c); err != nil {
			return nil, err
		}
	}
	e.ffn = e.o
	if e.kv, err = newKV(b, c, o); err != nil {
		return nil, err
	}
	e.logitsHost = make([]float32, c.Vocab)
	return e, nil
}

// isExpertBias reports whether a canonical name is a layer's expert biases.
func isExpertBias(name string) bool {
	for _, s := range []string{".expert_gate_bias", ".expert_up_bias", ".expert_down_bias"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// checkFeatures refuses a model that needs an op b does not implement.
func checkFeatures(b backend.Backend, c *model.Config) error {
	var need []backend.Feature
	if c.Sinks {
		need = append(need, backend.FeatureSinks)
	}
	for l := range c.Layers {
		if c.Window(l) > 0 {
			need = append(need, backend.FeatureSlidingWindow)
			break
		}
	}
	for _, f := range c.FFN {
		if f.ExpertBias {
			need = append(need, backend.FeatureExpertBias)
		}
		if f.Act == model.ActSwiGLUClamped {
			need = append(need, backend.FeatureClampedSwiGLU)
		}
	}
	if c.MLA != nil {
		need = append(need, backend.FeatureMLA)
	}
	for _, f := range c.FFN {
		if f.Router != nil && f.Router.Groups > 0 {
			need = append(need, backend.FeatureGroupRouting)
			break
		}
	}
	fb, _ := b.(backend.Featurer)
	for _, f := range need {
		if fb == nil || !fb.Supports(f) {
			return fmt.Errorf("engine: the %s model needs %s, which backend %s does not implement", c.Arch, f, b.Name())
		}
	}
	return nil
}

// ringLen is how many positions layer l's cache holds: a sliding-window
// layer needs the window and, for a batch, the batch's other rows
// (window-1+MaxBatch), not the whole context.
func ringLen(c *model.Config, o Options, l int) int {
	if w := c.Window(l); w > 0 {
		return min(o.MaxSeq, w-1+o.MaxBatch)
	}
	return o.MaxSeq
}

// newKV allocates the cache in the format o asks for.
func newKV(b backend.Backend, c model.Config, o Options) (backend.KV, error) {
	if m := c.MLA; m != nil {
		ml, ok := b.(backend.MLAer)
		if !ok {
			return nil, fmt.Errorf("engine: backend %s has no multi-head latent attention", b.Name())
		}
		if o.KVF16 {
			return nil, fmt.Errorf("engine: the f16 KV cache is not implemented for multi-head latent attention")
		}
		return ml.NewMLAKV(c.Layers, o.MaxSeq, m.KVLoraRank, m.RopeDim)
	}
	seqs := make([]int, c.Layers)
	ring := false
	for l := range seqs {
		seqs[l] = ringLen(&c, o, l)
		ring = ring || seqs[l] < o.MaxSeq
	}
	if ring {
		r, ok := b.(backend.RingKVer)
		if !ok {
			return nil, fmt.Errorf("engine: backend %s has no ring KV cache for sliding-window layers", b.Name())
		}
		if o.KVF16 && c.KVDim()%2 != 0 {
			return nil, fmt.Errorf("engine: f16 KV cache needs an even kv dim, got %d", c.KVDim())
		}
		return r.NewRingKV(seqs, c.KVDim(), o.KVF16)
	}
	if !o.KVF16 {
		return b.NewKV(c.Layers, o.MaxSeq, c.KVDim())
	}
	f, ok := b.(backend.KVFormatter)
	if !ok {
		return nil, fmt.Errorf("engine: backend %s has no f16 KV cache", b.Name())
	}
	kv, err := f.NewKVF16(c.Layers, o.MaxSeq, c.KVDim())
	if err != nil {
		return nil, fmt.Errorf("engine: f16 KV cache: %w", err)
	}
	return kv, nil
}

// Config returns the model's config.
func (e *Engine) Config() model.Config { return e.cfg }

// Pos is the number of tokens in the context.
func (e *Engine) Pos() int { return e.pos }

// MaxSeq is the context length.
func (e *Engine) MaxSeq() int { return e.opt.MaxSeq }

// Stats returns the counters.
func (e *Engine) Stats() Stats { return e.stats }

// Reset empties the context; weights stay loaded.
func (e *Engine) Reset() { e.pos = 0 }

// Truncate keeps the first n tokens of the context and drops the rest, so
// the next Forward continues at position n. Entries of the KV cache past n
// need no clearing: attention reads only positions before the current one,
// and the next tokens overwrite them. A caller that keeps the ids it fed
// can so reuse the cache of their longest common prefix with a new prompt.
func (e *Engine) Truncate(n int) error {
	if n < 0 || n > e.pos {
		return fmt.Errorf("truncate to %d tokens: the context holds %d", n, e.pos)
	}
	if !e.CanTruncate(n) {
		return fmt.Errorf("truncate to %d tokens: a sliding-window layer's ring has overwritten the positions before %d that position %d needs", n, e.pos, n)
	}
	e.pos = n
	return nil
}

// CanTruncate reports whether Truncate(n) can keep n tokens: a
// sliding-window layer's cache is a ring, and the window before position n
// may have been overwritten since. Truncate(0) always can.
func (e *Engine) CanTruncate(n int) bool {
	if n < 0 || n > e.pos {
		return false
	}
	if n == 0 || n == e.pos {
		return true
	}
	for l := range e.layers {
		w := e.layers[l].window
		if w == 0 {
			continue
		}
		// The ring holds positions pos-R..pos-1; position n needs n-w+1..n-1.
		if r := ringLen(&e.cfg, e.opt, l); max(0, n-w+1) < e.pos-r {
			return false
		}
	}
	return true
}

// Forward appends ids to the context and returns the logits that predict the
// token after the last of them. The slice is reused by the next call.
// ctx bounds the expert fetches the step waits for and the prefetches it
// starts; when it ends, Forward returns an error wrapping ctx's, and the
// context holds the batches that completed before it (Pos says how many
// tokens).
func (e *Engine) Forward(ctx context.Context, ids []int) ([]float32, error) {
	if _, err := e.forward(ctx, ids, nil); err != nil {
		return nil, err
	}
	return e.logitsHost, nil
}

// ForwardArgmax is Forward followed by greedy selection, computed on the
// backend when it can (backend.Argmaxer), so a GPU decode step reads back
// one token id instead of the logits.
func (e *Engine) ForwardArgmax(ctx context.Context, ids []int) (int, error) {
	return e.forward(ctx, ids, e.argmax)
}

// argmax picks the largest logit, on the backend when it can.
func (e *Engine) argmax(logits backend.Buf) (int, error) {
	if am, ok := e.b.(backend.Argmaxer); ok {
		return am.Argmax(logits)
	}
	if err := e.b.Read(logits, e.logitsHost); err != nil {
		return 0, err
	}
	return Greedy{}.Sample(e.logitsHost, nil), nil
}

// forward runs ids; with pick nil it reads the last row's logits into
// logitsHost, else it returns pick's choice from them.
func (e *Engine) forward(ctx context.Context, ids []int, pick func(backend.Buf) (int, error)) (int, error) {
	if len(ids) == 0 {
		return 0, errors.New("forward: no tokens")
	}
	if e.pos+len(ids) > e.opt.MaxSeq {
		return 0, fmt.Errorf("forward: %d tokens at position %d pass the context of %d: %w", len(ids), e.pos, e.opt.MaxSeq, ErrContextFull)
	}
	for _, id := range ids {
		if id < 0 || id >= e.cfg.Vocab {
			return 0, fmt.Errorf("forward: token id %d outside vocab of %d", id, e.cfg.Vocab)
		}
	}
	if e.cfg.DynamicRope() {
		// transformers recomputes dynamic NTK frequencies once per forward
		// call from its last position (dynamic_rope_update), and keys
		// already cached keep the rotation they were stored with; so does
		// this, per Forward rather than per batch.
		seq := e.pos + len(ids)
		if seq <= e.cfg.RopeScale.OrigMaxPosition {
			seq = 0
		}
		if seq != e.ropeSeq {
			e.rope.InvFreq, e.rope.AttnFactor = e.cfg.RopeFreqsAt(seq)
			e.ropeSeq = seq
		}
	}
	var n, best int
	for start := 0; start < len(ids); start += n {
		n = min(e.opt.MaxBatch, len(ids)-start)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("forward: %d of %d tokens done: %w", start, len(ids), err)
		}
		var err error
		if best, err = e.step(ctx, ids[start:start+n], start+n == len(ids), pick); err != nil {
			return 0, err
		}
	}
	e.stats.Forwards++
	e.stats.Tokens += len(ids)
	return best, nil
}

// step runs one batch through every layer; when last is set it also
// computes the logits of the batch's last row, and with pick returns its
// choice from them instead of reading them.
func (e *Engine) step(ctx context.Context, ids []int, last bool, pick func(backend.Buf) (int, error)) (int, error) {
	c, b := &e.cfg, e.b
	T := len(ids)
	view := func(x backend.Buf) backend.Buf { return b.View(x, 0, T) }
	x, h, q, k, v := view(e.x), view(e.h), view(e.q), view(e.k), view(e.v)
	att, o, ffn := view(e.att), view(e.o), view(e.ffn)
	b.Embed(x, e.embed, ids)
	// Granite's multipliers (modeling_granitemoe.py): embeddings ×
	// embedding_multiplier, each block's output × residual_multiplier
	// before its residual add, logits ÷ logits_scaling.
	if s := c.EmbedScale; s != 0 && s != 1 {
		b.Scale(x, s)
	}
	res := c.ResidualScale
	if res == 1 {
		res = 0
	}
	fuser, _ := b.(backend.LayerFuser)
	multi, _ := b.(backend.MultiMatMuler)
	e.qkvDst = [3]backend.Buf{q, k, v}
	for l := range e.layers {
		ly := &e.layers[l]
		if fuser != nil && T == 1 && res == 0 && e.fusable(ly) &&
			fuser.FuseLayer(x, e.kv, ly.dense, backend.LayerSpec{Layer: l, Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim,
				Pos0: e.pos, Divisor: c.AttnDivisor(), Eps: c.NormEps, Rope: &e.rope}) {
			continue
		}
		b.RMSNorm(h, x, ly.attnNorm, c.NormEps)
		if c.MLA != nil {
			e.mla(l, h, q, att)
		} else {
			if multi != nil {
				multi.MatMuls(e.qkvDst[:], h, ly.qkv[:], ly.qkvBias[:])
			} else {
				b.MatMul(q, h, ly.wq, ly.bq)
				b.MatMul(k, h, ly.wk, ly.bk)
				b.MatMul(v, h, ly.wv, ly.bv)
			}
			if ly.qNorm != nil {
				b.RMSNorm(q, q, ly.qNorm, c.NormEps)
				b.RMSNorm(k, k, ly.kNorm, c.NormEps)
			}
			b.RoPE(q, c.HeadDim, e.pos, &e.rope)
			b.RoPE(k, c.HeadDim, e.pos, &e.rope)
			b.Attention(att, q, k, v, e.kv, backend.AttnSpec{Layer: l, Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim, Pos0: e.pos,
				Divisor: c.AttnDivisor(), Window: ly.window, Sinks: ly.sinks})
		}
		b.MatMul(o, att, ly.wo, ly.bo)
		if res != 0 {
			b.Scale(o, res)
		}
		b.Add(x, o)
		b.RMSNorm(h, x, ly.ffnNorm, c.NormEps)
		var routes backend.Routes
		if ly.rule != nil {
			var err error
			if routes, err = e.route(ctx, l, h); err != nil {
				return 0, err
			}
		}
		// Predict the next layer's experts once this layer's are secured, so
		// their fetch overlaps this layer's FFN and the next attention.
		if e.prefetcher != nil && l+1 < len(e.layers) && e.layers[l+1].rule != nil {
			if err := e.prefetch(ctx, l+1, x); err != nil {
				return 0, err
			}
		}
		b.MoE(ffn, h, routes, &ly.ffn)
		if res != 0 {
			b.Scale(ffn, res)
		}
		b.Add(x, ffn)
	}
	e.pos += T
	if !last {
		return 0, b.Sync()
	}
	b.RMSNorm(e.final, b.View(x, T-1, 1), e.finalNorm, c.NormEps)
	b.MatMul(e.logits, e.final, e.output, nil)
	if s := c.LogitScale; s != 0 && s != 1 {
		b.Scale(e.logits, 1/s)
	}
	if pick != nil {
		return pick(e.logits)
	}
	return 0, b.Read(e.logits, e.logitsHost)
}

// fusable says whether layer ly is a plain layer a LayerFuser may run
// whole: no MLA, biases, sinks or window (QK-norm is fine), and an FFN
// of one SwiGLU block, or of routed plain SwiGLU experts alone (no
// shared expert, no router or expert biases) when route would not look
// at the routes (every expert resident, no trace, no prefetch). It builds
// ly.dense on first use.
func (e *Engine) fusable(ly *layer) bool {
	if ly.dense != nil {
		return true
	}
	f := &ly.ffn
	if e.cfg.MLA != nil || ly.bq != nil || ly.bk != nil || ly.bv != nil || ly.bo != nil || (ly.qNorm == nil) != (ly.kNorm == nil) ||
		ly.sinks != nil || ly.window != 0 || f.SharedGate != nil ||
		f.Act != model.ActSwiGLU || f.GateBias != nil || f.UpBias != nil || f.DownBias != nil {
		return false
	}
	d := &backend.DenseLayer{AttnNorm: ly.attnNorm, Wq: ly.wq, Wk: ly.wk, Wv: ly.wv, Wo: ly.wo, QNorm: ly.qNorm, KNorm: ly.kNorm, FFNNorm: ly.ffnNorm}
	plain := func(x *backend.Expert) bool {
		return x != nil && len(x.More) == 0 && (x.Act == "" || x.Act == model.ActSwiGLU)
	}
	switch {
	case ly.rule == nil && len(f.Experts) == 0 && len(f.Shared) == 1 && plain(f.Shared[0]):
		x := f.Shared[0]
		d.Gate, d.Up, d.Down = x.Gate, x.Up, x.Down
	case ly.rule != nil && len(f.Shared) == 0 && len(f.Experts) > 0 && ly.routerBias == nil && ly.routerLogitBias == nil &&
		!e.opt.LazyExperts && e.opt.Trace == nil && e.prefetcher == nil:
		for _, x := range f.Experts {
			if !plain(x) {
				return false
			}
		}
		d.Router, d.Rule, d.Experts = ly.router, ly.rule, f.Experts
	default:
		return false
	}
	ly.dense = d
	return true
}

// prefetch predicts layer l's experts from the residual stream x of the
// layer before it — normalised with layer l's FFN norm and scored by layer
// l's router, the "pre-gating" of Pre-gated MoE — and asks the source to
// start fetching the predicted experts that are not resident.
func (e *Engine) prefetch(ctx context.Context, l int, x backend.Buf) error {
	ly := &e.layers[l]
	n := len(ly.ffn.Experts)
	tmp := e.b.View(e.pre, 0, x.Rows())
	e.b.RMSNorm(tmp, x, ly.ffnNorm, e.cfg.NormEps)
	logits := e.b.View(e.routerLogits[n], 0, x.Rows())
	e.b.MatMul(logits, tmp, ly.router, ly.routerLogitBias)
	choices, err := e.b.ReadRoutes(e.b.Route(logits, backend.RouteSpec{Rule: ly.rule, Bias: ly.routerBias}))
	if err != nil {
		return fmt.Errorf("layer %d: reading predicted routes: %w", l, err)
	}
	var want []int
	seen := make([]bool, n)
	for _, cs := range choices {
		for _, c := range cs {
			if !seen[c.Expert] && ly.ffn.Experts[c.Expert] == nil {
				seen[c.Expert] = true
				want = append(want, c.Expert)
			}
		}
	}
	if len(want) > 0 {
		e.prefetcher.Prefetch(ctx, l, want)
		e.stats.Prefetches += len(want)
	}
	return nil
}

// ready reports whether expert x of layer l can be used without waiting:
// it is on the backend, or its source has it at hand.
func (e *Engine) ready(l, x int) bool {
	if e.layers[l].ffn.Experts[x] != nil {
		return true
	}
	r, ok := e.experts.(Readier)
	return ok && r.Ready(l, x)
}

// substitute gives every routed slot whose expert is not ready to the
// best-scoring ready expert the token has not chosen (by router logit),
// keeping the slot's weight, and asks the source to fetch the missing
// experts in the background. A slot with no ready expert to take it keeps
// its expert, which is then waited for.
func (e *Engine) substitute(ctx context.Context, l int, logits backend.Buf, choices [][]routing.Choice) (bool, error) {
	n := len(e.layers[l].ffn.Experts)
	var missing []int
	isMissing := make([]bool, n)
	for _, cs := range choices {
		for _, c := range cs {
			if !isMissing[c.Expert] && !e.ready(l, c.Expert) {
				isMissing[c.Expert] = true
				missing = append(missing, c.Expert)
			}
		}
	}
	if len(missing) == 0 {
		return false, nil
	}
	if pf, ok := e.experts.(Prefetcher); ok {
		pf.Prefetch(ctx, l, missing)
	}
	host := make([]float32, logits.Rows()*n)
	if err := e.b.Read(logits, host); err != nil {
		return false, fmt.Errorf("layer %d: reading router logits: %w", l, err)
	}
	changed := false
	for t, cs := range choices {
		row := host[t*n : (t+1)*n]
		for i := range cs {
			if !isMissing[cs[i].Expert] {
				continue
			}
			best := -1
			for x := range n {
				if isMissing[x] || !e.ready(l, x) || chosen(cs, x) {
					continue
				}
				if best < 0 || row[x] > row[best] {
					best = x
				}
			}
			if best >= 0 {
				cs[i].Expert = best
				e.stats.Substitutions++
				changed = true
			}
		}
	}
	return changed, nil
}

func chosen(cs []routing.Choice, x int) bool {
	for _, c := range cs {
		if c.Expert == x {
			return true
		}
	}
	return false
}

// route runs layer l's router over h and makes sure every expert it picked
// is on the backend.
func (e *Engine) route(ctx context.Context, l int, h backend.Buf) (backend.Routes, error) {
	ly := &e.layers[l]
	n := len(ly.ffn.Experts)
	logits := e.b.View(e.routerLogits[n], 0, h.Rows())
	e.b.MatMul(logits, h, ly.router, ly.routerLogitBias)
	capacity := ly.rule.Capacity(h.Rows(), n)
	routes := e.b.Route(logits, backend.RouteSpec{Rule: ly.rule, Bias: ly.routerBias, Capacity: capacity})
	if !e.opt.LazyExperts && e.opt.Trace == nil && capacity == 0 {
		return routes, nil // everything is resident: no need to look
	}
	choices, err := e.b.ReadRoutes(routes)
	if err != nil {
		return nil, fmt.Errorf("layer %d: reading routes: %w", l, err)
	}
	if e.opt.Missing == MissingFast {
		changed, err := e.substitute(ctx, l, logits, choices)
		if err != nil {
			return nil, err
		}
		if changed {
			if err := e.b.WriteRoutes(routes, choices); err != nil {
				return nil, fmt.Errorf("layer %d: writing substituted routes: %w", l, err)
			}
		}
	}
	var need []int
	seen := make([]bool, n)
	for _, cs := range choices {
		e.stats.RoutedAssigned += len(cs)
		for _, ch := range cs {
			if !seen[ch.Expert] {
				seen[ch.Expert] = true
				need = append(need, ch.Expert)
			}
		}
	}
	if err := e.ensure(ctx, l, need); err != nil {
		return nil, err
	}
	if len(choices) > 0 {
		last := choices[len(choices)-1]
		e.lastRouted[l] = e.lastRouted[l][:0]
		for _, c := range last {
			e.lastRouted[l] = append(e.lastRouted[l], c.Expert)
		}
	}
	if e.opt.Trace != nil {
		e.opt.Trace(l, e.pos, choices)
	}
	return routes, nil
}

// mla runs layer l's multi-head latent attention (DeepseekV2Attention in
// modeling_deepseek.py) on the normed rows h, writing [T, heads·v_head_dim]
// to att: q straight or through its bottleneck, kv_a_proj_with_mqa, then
// the backend's MLAAttention (latent norm, RoPE on the rope parts,
// attention over the latent cache).
func (e *Engine) mla(l int, h, q, att backend.Buf) {
	c, b, ly, m := &e.cfg, e.b, &e.layers[l], e.cfg.MLA
	T := h.Rows()
	ckv := b.View(e.mckv, 0, T)
	if ly.wqA != nil {
		qa := b.View(e.mqa, 0, T)
		b.MatMul(qa, h, ly.wqA, nil)
		b.RMSNorm(qa, qa, ly.qANorm, c.NormEps)
		b.MatMul(q, qa, ly.wqB, nil)
	} else {
		b.MatMul(q, h, ly.wq, nil)
	}
	b.MatMul(ckv, h, ly.wkvA, nil)
	absorb := T == 1
	switch e.opt.MLA {
	case MLAExpanded:
		absorb = false
	case MLAAbsorbed:
		absorb = true
	}
	b.(backend.MLAer).MLAAttention(att, q, ckv, e.kv, backend.MLASpec{Layer: l, Heads: c.Heads,
		NopeDim: m.NopeDim, RopeDim: m.RopeDim, VDim: m.VDim, Rank: m.KVLoraRank, Pos0: e.pos,
		Divisor: c.AttnDivisor(), KVNorm: ly.kvANorm, Eps: c.NormEps, KVB: ly.wkvB, Rope: &e.rope, Absorb: absorb})
}
