package engine

import (
	"errors"
	"fmt"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
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

	embed, finalNorm, output backend.Weight
	layers                   []layer
	kv                       backend.KV
	pos                      int

	// scratch activations for up to MaxBatch rows
	x, h, q, k, v, att, o, ffn backend.Buf
	routerLogits               map[int]backend.Buf // by expert count
	final, logits              backend.Buf
	logitsHost                 []float32

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
	qNorm, kNorm       backend.Weight
	router, routerBias backend.Weight
	rule               *model.Router
	ffn                backend.FFN
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
	if o.MaxBatch <= 0 {
		o.MaxBatch = 128
	}
	if o.MaxSeq <= 0 {
		o.MaxSeq = min(c.MaxSeq, 4096)
	}
	o.MaxSeq = min(o.MaxSeq, c.MaxSeq)
	e := &Engine{cfg: c, m: m, b: b, opt: o, experts: o.Experts}
	if e.experts == nil {
		e.experts = weightsSource{m.Weights}
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
		var w backend.Weight
		w, err = b.Upload(t)
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
		}
		f := &c.FFN[l]
		for s := range f.SharedWidths {
			ly.ffn.Shared = append(ly.ffn.Shared, &backend.Expert{
				Gate: up(model.SharedName(l, s, "gate")), Up: up(model.SharedName(l, s, "up")), Down: up(model.SharedName(l, s, "down"))})
		}
		ly.ffn.SharedGate = up(n("shared_gate"))
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
			if err := e.ensure(l, all); err != nil {
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
		{&e.att, B, c.QDim()}, {&e.o, B, c.Dim}, {&e.ffn, B, c.Dim}, {&e.pre, B, c.Dim},
		{&e.final, 1, c.Dim}, {&e.logits, 1, c.Vocab},
	}
	for _, s := range bufs {
		if *s.p, err = b.NewBuf(s.r, s.c); err != nil {
			return nil, err
		}
	}
	if e.kv, err = newKV(b, c, o); err != nil {
		return nil, err
	}
	e.logitsHost = make([]float32, c.Vocab)
	return e, nil
}

// newKV allocates the cache in the format o asks for.
func newKV(b backend.Backend, c model.Config, o Options) (backend.KV, error) {
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

// Forward appends ids to the context and returns the logits that predict the
// token after the last of them. The slice is reused by the next call.
func (e *Engine) Forward(ids []int) ([]float32, error) {
	if _, err := e.forward(ids, nil); err != nil {
		return nil, err
	}
	return e.logitsHost, nil
}

// ForwardArgmax is Forward followed by greedy selection, computed on the
// backend when it can (backend.Argmaxer), so a GPU decode step reads back
// one token id instead of the logits.
func (e *Engine) ForwardArgmax(ids []int) (int, error) {
	return e.forward(ids, e.argmax)
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
func (e *Engine) forward(ids []int, pick func(backend.Buf) (int, error)) (int, error) {
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
	var n, best int
	for start := 0; start < len(ids); start += n {
		n = min(e.opt.MaxBatch, len(ids)-start)
		var err error
		if best, err = e.step(ids[start:start+n], start+n == len(ids), pick); err != nil {
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
func (e *Engine) step(ids []int, last bool, pick func(backend.Buf) (int, error)) (int, error) {
	c, b := &e.cfg, e.b
	T := len(ids)
	view := func(x backend.Buf) backend.Buf { return b.View(x, 0, T) }
	x, h, q, k, v := view(e.x), view(e.h), view(e.q), view(e.k), view(e.v)
	att, o, ffn := view(e.att), view(e.o), view(e.ffn)
	b.Embed(x, e.embed, ids)
	for l := range e.layers {
		ly := &e.layers[l]
		b.RMSNorm(h, x, ly.attnNorm, c.NormEps)
		b.MatMul(q, h, ly.wq, ly.bq)
		b.MatMul(k, h, ly.wk, ly.bk)
		b.MatMul(v, h, ly.wv, ly.bv)
		if ly.qNorm != nil {
			b.RMSNorm(q, q, ly.qNorm, c.NormEps)
			b.RMSNorm(k, k, ly.kNorm, c.NormEps)
		}
		b.RoPE(q, c.HeadDim, e.pos, &e.rope)
		b.RoPE(k, c.HeadDim, e.pos, &e.rope)
		b.Attention(att, q, k, v, e.kv, backend.AttnSpec{Layer: l, Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim, Pos0: e.pos})
		b.MatMul(o, att, ly.wo, nil)
		b.Add(x, o)
		b.RMSNorm(h, x, ly.ffnNorm, c.NormEps)
		var routes backend.Routes
		if ly.rule != nil {
			var err error
			if routes, err = e.route(l, h); err != nil {
				return 0, err
			}
		}
		// Predict the next layer's experts once this layer's are secured, so
		// their fetch overlaps this layer's FFN and the next attention.
		if e.prefetcher != nil && l+1 < len(e.layers) && e.layers[l+1].rule != nil {
			if err := e.prefetch(l+1, x); err != nil {
				return 0, err
			}
		}
		b.MoE(ffn, h, routes, &ly.ffn)
		b.Add(x, ffn)
	}
	e.pos += T
	if !last {
		return 0, b.Sync()
	}
	b.RMSNorm(e.final, b.View(x, T-1, 1), e.finalNorm, c.NormEps)
	b.MatMul(e.logits, e.final, e.output, nil)
	if pick != nil {
		return pick(e.logits)
	}
	return 0, b.Read(e.logits, e.logitsHost)
}

// prefetch predicts layer l's experts from the residual stream x of the
// layer before it — normalised with layer l's FFN norm and scored by layer
// l's router, the "pre-gating" of Pre-gated MoE — and asks the source to
// start fetching the predicted experts that are not resident.
func (e *Engine) prefetch(l int, x backend.Buf) error {
	ly := &e.layers[l]
	n := len(ly.ffn.Experts)
	tmp := e.b.View(e.pre, 0, x.Rows())
	e.b.RMSNorm(tmp, x, ly.ffnNorm, e.cfg.NormEps)
	logits := e.b.View(e.routerLogits[n], 0, x.Rows())
	e.b.MatMul(logits, tmp, ly.router, nil)
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
		e.prefetcher.Prefetch(l, want)
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
func (e *Engine) substitute(l int, logits backend.Buf, choices [][]routing.Choice) (bool, error) {
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
		pf.Prefetch(l, missing)
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
func (e *Engine) route(l int, h backend.Buf) (backend.Routes, error) {
	ly := &e.layers[l]
	n := len(ly.ffn.Experts)
	logits := e.b.View(e.routerLogits[n], 0, h.Rows())
	e.b.MatMul(logits, h, ly.router, nil)
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
		changed, err := e.substitute(l, logits, choices)
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
	if err := e.ensure(l, need); err != nil {
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
