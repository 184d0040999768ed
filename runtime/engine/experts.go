package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// ExpertSource supplies a routed expert's tensors on demand, e.g. by
// fetching its shard from a pack: one per entry of the config's
// ExpertSpec(layer, expert), in that order (gate, up, down for a plain
// expert). LoadExpert gives up when ctx ends, with an error that wraps
// ctx's. The engine calls it for several experts of a layer at once.
type ExpertSource interface {
	LoadExpert(ctx context.Context, layer, expert int) ([]*tensor.Tensor, error)
}

// Prefetcher is an ExpertSource that can start fetching experts before
// they are needed. Prefetch must not block; a later LoadExpert of a
// prefetched expert waits for (or reuses) that fetch. A prefetch ends
// with ctx: the engine passes the context of the Forward that predicted
// it, so an interrupted generation leaves no download behind.
type Prefetcher interface {
	Prefetch(ctx context.Context, layer int, experts []int)
}

// Readier is an ExpertSource that can say, without blocking, whether an
// expert could be loaded at once (MissingFast uses it).
type Readier interface {
	Ready(layer, expert int) bool
}

// weightsSource serves experts from a fully loaded model: always ready.
type weightsSource struct {
	c *model.Config
	w model.Weights
}

func (s weightsSource) Ready(l, e int) bool {
	_, ok := s.w[model.ExpertName(l, e, "gate")]
	return ok
}

func (s weightsSource) LoadExpert(_ context.Context, l, e int) ([]*tensor.Tensor, error) {
	var ts []*tensor.Tensor
	for _, sp := range s.c.ExpertSpec(l, e) {
		t := s.w[sp.Name]
		if t == nil {
			return nil, fmt.Errorf("expert %d of layer %d: tensor %s is not loaded", e, l, sp.Name)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

type expertKey struct{ layer, expert int }

// ExpertMap is the per-expert state of every sparse layer, for a live view
// of sparsity and lazy loading. Slices are indexed by layer; dense layers
// have empty entries.
type ExpertMap struct {
	Experts    []int     // routed experts per layer (0 for a dense layer)
	Resident   [][]int   // experts on the backend
	LastRouted [][]int   // experts the last token was routed to
	HitRate    []float64 // per layer, -1 before any use
}

// ExpertMap returns the current per-expert state.
func (e *Engine) ExpertMap() ExpertMap {
	m := ExpertMap{}
	for l, ly := range e.layers {
		m.Experts = append(m.Experts, len(ly.ffn.Experts))
		var res []int
		for x, ex := range ly.ffn.Experts {
			if ex != nil {
				res = append(res, x)
			}
		}
		m.Resident = append(m.Resident, res)
		m.LastRouted = append(m.LastRouted, append([]int(nil), e.lastRouted[l]...))
		rate := -1.0
		if n := e.layerHits[l] + e.layerMisses[l]; n > 0 {
			rate = float64(e.layerHits[l]) / float64(n)
		}
		m.HitRate = append(m.HitRate, rate)
	}
	return m
}

// expertCache tracks which routed experts are on the backend and evicts the
// least recently used ones when a byte budget would be exceeded.
type expertCache struct {
	budget   int64 // 0: no limit
	bytes    int64
	clock    int64
	lastUse  map[expertKey]int64
	size     map[expertKey]int64
	inFlight map[expertKey]bool // needed by the layer being computed: never evicted
}

// expertFetchWindow is how many of a layer's missing experts ensure loads
// from the source at once. Each load is one or more requests to the
// network (a pack's shards, an hf: repository's ranges), which one after
// another would cost a round trip each; the window bounds the experts
// held on the host, fetched but not yet uploaded.
const expertFetchWindow = 4

// ensure makes every expert in need resident on the backend, loading misses
// from the source (up to expertFetchWindow at once, uploaded in need's
// order) and evicting cold experts beyond the budget.
func (e *Engine) ensure(ctx context.Context, l int, need []int) error {
	c := &e.cache
	clear(c.inFlight)
	for _, x := range need {
		c.inFlight[expertKey{l, x}] = true
	}
	loads := e.startLoads(ctx, l, need)
	defer loads.stop()
	for _, x := range need {
		k := expertKey{l, x}
		c.clock++
		if e.layers[l].ffn.Experts[x] != nil {
			e.stats.ExpertHits++
			e.layerHits[l]++
			c.lastUse[k] = c.clock
			continue
		}
		e.stats.ExpertMisses++
		e.layerMisses[l]++
		ts, err := loads.wait(ctx, e.experts, l, x)
		if err != nil {
			return err
		}
		want := c.weightBytes(ts...)
		if err := e.evictFor(want); err != nil {
			return err
		}
		ex, err := e.upload(l, x, ts)
		if err != nil {
			return err
		}
		e.layers[l].ffn.Experts[x] = ex
		var n int64
		for _, w := range ex.Weights() {
			n += w.Bytes()
		}
		c.size[k], c.lastUse[k] = n, c.clock
		c.bytes += n
		e.stats.ExpertsLoaded++
		e.stats.ExpertBytesLoaded += want
	}
	e.stats.ExpertsResident = len(c.size)
	e.stats.ExpertBytesResident = c.bytes
	return nil
}

// expertLoads are the loads ensure runs for one layer's misses, started
// in their order, at most expertFetchWindow ahead of the one waited for.
type expertLoads struct {
	ctx     context.Context
	cancel  context.CancelFunc
	src     ExpertSource
	layer   int
	misses  []int // the experts to load, in order
	started int
	done    []chan struct{}
	ts      [][]*tensor.Tensor
	errs    []error
}

// startLoads starts loading the experts of need that are not resident;
// nil when all are (the usual decode step: nothing is allocated). A
// single miss is loaded by wait itself, with no goroutine.
func (e *Engine) startLoads(ctx context.Context, l int, need []int) *expertLoads {
	var misses []int
	for _, x := range need {
		if e.layers[l].ffn.Experts[x] == nil && !slices.Contains(misses, x) {
			misses = append(misses, x)
		}
	}
	if len(misses) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	ls := &expertLoads{ctx: ctx, cancel: cancel, src: e.experts, layer: l, misses: misses}
	ls.done = make([]chan struct{}, len(ls.misses))
	ls.ts, ls.errs = make([][]*tensor.Tensor, len(ls.misses)), make([]error, len(ls.misses))
	if len(ls.misses) > 1 {
		ls.startUpTo(expertFetchWindow)
	}
	return ls
}

func (ls *expertLoads) startUpTo(n int) {
	for ; ls.started < min(n, len(ls.misses)); ls.started++ {
		i := ls.started
		ls.done[i] = make(chan struct{})
		go func() {
			defer close(ls.done[i])
			ls.ts[i], ls.errs[i] = ls.src.LoadExpert(ls.ctx, ls.layer, ls.misses[i])
		}()
	}
}

// wait returns expert x's tensors, keeping the window of loads after it
// going. An expert ensure did not count as missing (ls is nil when it
// counted none) is loaded directly from src.
func (ls *expertLoads) wait(ctx context.Context, src ExpertSource, l, x int) ([]*tensor.Tensor, error) {
	if ls == nil {
		return src.LoadExpert(ctx, l, x)
	}
	i := slices.Index(ls.misses, x)
	if i < 0 || len(ls.misses) == 1 {
		return ls.src.LoadExpert(ls.ctx, ls.layer, x)
	}
	ls.startUpTo(i + expertFetchWindow)
	<-ls.done[i]
	ts, err := ls.ts[i], ls.errs[i]
	ls.ts[i] = nil // uploaded next: the host copy is not kept here
	return ts, err
}

// stop cancels the loads still running (after an error) and waits for
// them, so that none outlives ensure.
func (ls *expertLoads) stop() {
	if ls == nil {
		return
	}
	ls.cancel()
	for i := range ls.started {
		<-ls.done[i]
	}
}

func (c *expertCache) weightBytes(ts ...*tensor.Tensor) int64 {
	var n int64
	for _, t := range ts {
		n += int64(len(t.Data))
	}
	return n
}

// evictFor frees least-recently-used experts until want more bytes fit the
// budget. Experts the current layer needs are kept even if that overshoots:
// a layer cannot run without them.
func (e *Engine) evictFor(want int64) error {
	c := &e.cache
	for c.budget > 0 && c.bytes+want > c.budget {
		var victim expertKey
		found := false
		for k, t := range c.lastUse {
			if c.inFlight[k] {
				continue
			}
			if !found || t < c.lastUse[victim] || (t == c.lastUse[victim] && less(k, victim)) {
				victim, found = k, true
			}
		}
		if !found {
			return nil
		}
		ex := e.layers[victim.layer].ffn.Experts[victim.expert]
		for _, w := range ex.Weights() {
			e.b.Free(w)
		}
		e.layers[victim.layer].ffn.Experts[victim.expert] = nil
		c.bytes -= c.size[victim]
		e.stats.ExpertEvictions++
		e.stats.ExpertBytesEvicted += c.size[victim]
		delete(c.size, victim)
		delete(c.lastUse, victim)
	}
	return nil
}

func less(a, b expertKey) bool {
	return a.layer < b.layer || (a.layer == b.layer && a.expert < b.expert)
}

// upload checks the expert's tensors against the config and puts it on the
// backend.
func (e *Engine) upload(l, x int, ts []*tensor.Tensor) (*backend.Expert, error) {
	spec := e.cfg.ExpertSpec(l, x)
	if len(ts) != len(spec) {
		return nil, fmt.Errorf("expert %d of layer %d: %d tensors, its architecture has %d", x, l, len(ts), len(spec))
	}
	ws := make([]backend.Weight, len(ts))
	// An ExpertSource's tensors are the engine's to keep; the model's own
	// weights only when the caller shares them.
	adopt := true
	if _, fromModel := e.experts.(weightsSource); fromModel {
		adopt = e.opt.ShareWeights
	}
	for i, t := range ts {
		if t == nil || !slices.Equal(t.Shape, spec[i].Shape) {
			for _, w := range ws[:i] {
				e.b.Free(w)
			}
			if t == nil {
				return nil, fmt.Errorf("expert %d of layer %d: tensor %s missing", x, l, spec[i].Name)
			}
			return nil, fmt.Errorf("expert %d of layer %d: tensor %s has shape %v, want %v", x, l, t.Name, t.Shape, spec[i].Shape)
		}
		var err error
		// Matrices go through the backend's expert upload (its expert
		// pool on WebGPU); a deep block's norm vector is an ordinary weight.
		up := uploadExpertTo
		if len(t.Shape) != 2 {
			up = uploadTo
		}
		if ws[i], err = up(e.b, t, adopt); err != nil {
			for _, w := range ws[:i] {
				e.b.Free(w)
			}
			return nil, fmt.Errorf("uploading %s: %w", t.Name, err)
		}
	}
	ex := &backend.Expert{Gate: ws[0], Up: ws[1], Down: ws[2], Act: e.cfg.FFN[l].Arch(x).Act}
	for i := 3; i+4 <= len(ws); i += 4 {
		ex.More = append(ex.More, backend.Block{Norm: ws[i], Gate: ws[i+1], Up: ws[i+2], Down: ws[i+3]})
	}
	return ex, nil
}
