package loader

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

// Pack is an opened pack: everything but the routed experts is loaded.
type Pack struct {
	Manifest  *manifest.Manifest
	Model     *model.Model
	Tokenizer tokenizer.Tokenizer
	AddBOS    bool

	// ctx bounds every fetch of the pack's lifetime; Close cancels it.
	ctx       context.Context
	close     context.CancelCauseFunc
	fetcher   *shard.Fetcher
	convert   func(*tensor.Tensor) (*tensor.Tensor, error)
	rearrange func(*manifest.Shard, []byte) ([]byte, error)
	kept      ConvertedStore               // nil: converted shards are not kept
	experts   map[[2]int][]*manifest.Shard // (layer, expert) -> its shards
	wg        sync.WaitGroup               // the goroutines Prefetch starts

	mu       sync.Mutex
	closed   bool // no goroutine may start once set
	stats    Stats
	inFlight map[[2]int]*prefetch // prefetched experts not yet loaded
	order    [][2]int             // prefetch order, to drop the oldest beyond maxPrefetchBytes
	pending  int64                // bytes of the experts in inFlight
	running  map[*prefetch]bool   // prefetches whose goroutine has not returned, dropped ones too
	fetched  map[[2]int]bool      // experts fetched since Open
}

// maxPrefetchBytes bounds the bytes of experts held after a prefetch and
// before use, so wrong predictions cannot grow memory without limit; it is
// large enough for a prefill batch's whole next layer.
const maxPrefetchBytes = 256 << 20

// prefetch is one expert's background fetch.
type prefetch struct {
	done  chan struct{}
	parts map[string][]part
	bytes int64
	err   error
}

// Stats counts what the pack fetched.
type Stats struct {
	Bytes         int64 // shard bytes fetched (verified), all kinds
	ExpertBytes   int64
	Shards        int
	ExpertShards  int
	ExpertFetches int // experts fetched (a refetch after eviction counts again)
	TotalBytes    int64
	TotalExperts  int

	// Prefetch: experts fetched ahead of use, those later used (hits), and
	// the bytes of those dropped unused (waste).
	Prefetched     int
	PrefetchHits   int
	PrefetchWasted int64

	// Conversions counts tensors Options.Convert turned into another
	// format; ConvertedHits the shards taken already converted from
	// Options.Converted, which were neither fetched nor converted.
	Conversions   int
	ConvertedHits int
}

// Open reads the manifest at location (a pack directory, a manifest path
// or an http(s) URL, optionally pinning the manifest's sha256 as
// shard.ReadManifest describes) and loads everything except routed
// experts.
func Open(ctx context.Context, location string, o shard.HTTPOptions) (*Pack, error) {
	return withTokenizer(OpenWeights(ctx, location, o))
}

// OpenWeights is Open without the tokenizer, for tools that compute or
// that copy the tokenizer's files (TokenizerFiles) rather than tokenize.
func OpenWeights(ctx context.Context, location string, o shard.HTTPOptions) (*Pack, error) {
	src, b, err := shard.ReadManifest(ctx, location, o)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", location, err)
	}
	return LoadWeights(ctx, m, &shard.Fetcher{Src: src, HTTP: o})
}

// Load loads a parsed manifest through f: the tokenizer and the weights.
// ctx bounds every later expert fetch too; Close ends them sooner.
func Load(ctx context.Context, m *manifest.Manifest, f *shard.Fetcher) (*Pack, error) {
	return withTokenizer(LoadWeights(ctx, m, f))
}

// withTokenizer adds the tokenizer to a pack whose weights loaded.
func withTokenizer(p *Pack, err error) (*Pack, error) {
	if err != nil {
		return nil, err
	}
	if p.Tokenizer, err = p.tokenizer(); err != nil {
		return nil, err
	}
	return p, nil
}

// LoadWeights is Load without the tokenizer, for tools that only compute.
func LoadWeights(ctx context.Context, m *manifest.Manifest, f *shard.Fetcher) (*Pack, error) {
	return LoadWith(ctx, m, f, Options{})
}

// Options change how LoadWith builds tensors.
type Options struct {
	// Convert, when set, is applied to every tensor once its bytes are in
	// (the always-used ones at load, each routed expert's when it is
	// fetched), so a source stored in bf16 can run quantised.
	Convert func(*tensor.Tensor) (*tensor.Tensor, error)
	// Rearrange, when set, is applied to every shard's bytes once they
	// are fetched, before its tensors are cut out of them: an hf:
	// repository storing tensors fused (gpt-oss's experts) lists them at
	// their offsets in the rearranged bytes. It must not modify data.
	Rearrange func(s *manifest.Shard, data []byte) ([]byte, error)
	// Converted, with Convert, keeps shards' converted tensors, so a shard
	// it holds is neither fetched nor converted again (on a later visit).
	// Only shards whose tensors are whole (no row chunks) are kept.
	Converted ConvertedStore
}

// ConvertedStore keeps the converted tensors of shards, by shard. Its
// implementation decides what identifies a shard's conversion (where the
// bytes came from and the formats asked for) and checks what it stored.
// Experts load concurrently (an engine's lazy loads, Whole), so Get and
// Put may be called from several goroutines at once.
type ConvertedStore interface {
	// Get returns s's tensors as converted before, in s.Tensors order, or
	// false.
	Get(ctx context.Context, s *manifest.Shard) ([]*tensor.Tensor, bool)
	// Put keeps s's converted tensors; failing to is not an error (the
	// store is an optimisation), so it reports none.
	Put(ctx context.Context, s *manifest.Shard, ts []*tensor.Tensor)
}

// LoadWith is LoadWeights with options; the caller adds a tokenizer.
func LoadWith(ctx context.Context, m *manifest.Manifest, f *shard.Fetcher, o Options) (*Pack, error) {
	p := &Pack{Manifest: m, fetcher: f, experts: map[[2]int][]*manifest.Shard{}, AddBOS: m.Tokenizer.AddBOS,
		inFlight: map[[2]int]*prefetch{}, running: map[*prefetch]bool{}, fetched: map[[2]int]bool{}, convert: o.Convert, rearrange: o.Rearrange}
	if o.Convert != nil {
		p.kept = o.Converted
	}
	p.ctx, p.close = context.WithCancelCause(ctx)
	ok := false
	defer func() {
		if !ok {
			p.close(errClosed)
		}
	}()
	w := model.Weights{}
	parts := map[string][]part{}
	for i := range m.Shards {
		s := &m.Shards[i]
		p.stats.TotalBytes += s.Size
		if s.Kind == manifest.KindExpert {
			k := [2]int{s.Layer, s.Expert}
			if len(p.experts[k]) == 0 {
				p.stats.TotalExperts++
			}
			p.experts[k] = append(p.experts[k], s)
			continue
		}
		ps, err := p.load(p.ctx, s)
		if err != nil {
			return nil, err
		}
		for _, pt := range ps {
			parts[pt.t.Name] = append(parts[pt.t.Name], pt)
		}
	}
	for name, ps := range parts {
		t, err := p.assemble(name, ps)
		if err != nil {
			return nil, err
		}
		w[name] = t
	}
	p.Model = &model.Model{Config: m.Model, Weights: w}
	if err := p.Model.Validate(true); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	ok = true
	return p, nil
}

// errClosed is the cause of the pack's context once Close ran.
var errClosed = fmt.Errorf("the pack is closed: %w", context.Canceled)

// Close ends the pack's fetches — a LoadExpert waiting for one returns an
// error wrapping context.Canceled — and waits for the goroutines Prefetch
// started to return, so none outlives an unload. The model and tokenizer
// stay usable; LoadExpert and Prefetch fetch nothing more. Close is safe
// to call more than once and concurrently with the pack's other methods.
func (p *Pack) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.close(errClosed)
	p.wg.Wait()
	return nil
}

// Wait returns once every prefetch started so far has finished, or when
// ctx ends. A caller that reports what a generation fetched waits first,
// so that the downloads the generation predicted are counted (and stored
// by a caching source) before it answers.
func (p *Pack) Wait(ctx context.Context) error {
	p.mu.Lock()
	pending := make([]*prefetch, 0, len(p.running))
	for pf := range p.running {
		pending = append(pending, pf)
	}
	p.mu.Unlock()
	for _, pf := range pending {
		select {
		case <-pf.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// bind returns a context that ends when ctx or the pack's does.
func (p *Pack) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(p.ctx, func() { cancel(context.Cause(p.ctx)) })
	return c, func() { stop(); cancel(context.Canceled) }
}

// LoadExpert fetches a routed expert's shards (engine.ExpertSource), or
// takes them from a prefetch: one tensor per entry of the config's
// ExpertSpec(layer, expert). It gives up when ctx ends or the pack is
// closed, with an error wrapping context.Canceled (or ctx's error).
func (p *Pack) LoadExpert(ctx context.Context, layer, expert int) ([]*tensor.Tensor, error) {
	c := &p.Manifest.Model
	if layer < 0 || layer >= len(c.FFN) || expert < 0 || expert >= len(c.FFN[layer].ExpertWidths) {
		return nil, fmt.Errorf("pack has no expert %d in layer %d", expert, layer)
	}
	ctx, cancel := p.bind(ctx)
	defer cancel()
	k := [2]int{layer, expert}
	p.mu.Lock()
	pf := p.inFlight[k]
	p.mu.Unlock()
	var parts map[string][]part
	var err error
	if pf != nil {
		// Wait for the prefetch, leaving it in flight meanwhile so that
		// a LoadExpert cut short by ctx does not lose its download.
		select {
		case <-pf.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("expert %d of layer %d: %w", expert, layer, context.Cause(ctx))
		}
		p.mu.Lock()
		if p.inFlight[k] == pf {
			delete(p.inFlight, k)
			p.pending -= pf.bytes
		}
		if pf.err == nil {
			p.stats.PrefetchHits++
			parts = pf.parts
		}
		p.mu.Unlock()
	}
	if parts == nil {
		if parts, err = p.fetchExpert(ctx, k); err != nil {
			return nil, err
		}
	}
	spec := c.ExpertSpec(layer, expert)
	ts := make([]*tensor.Tensor, len(spec))
	for i, sp := range spec {
		if ts[i], err = p.assemble(sp.Name, parts[sp.Name]); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// Fetched lists, per layer, the experts whose shards have been fetched
// since the pack was opened.
func (p *Pack) Fetched() [][]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]int, p.Manifest.Model.Layers)
	for k := range p.fetched {
		out[k[0]] = append(out[k[0]], k[1])
	}
	for _, xs := range out {
		slices.Sort(xs)
	}
	return out
}

// fetchExpert reads all shards of one expert.
func (p *Pack) fetchExpert(ctx context.Context, k [2]int) (map[string][]part, error) {
	shards := p.experts[k]
	if len(shards) == 0 {
		return nil, fmt.Errorf("pack has no shard for expert %d of layer %d", k[1], k[0])
	}
	parts := map[string][]part{}
	for _, s := range shards {
		ps, err := p.load(ctx, s)
		if err != nil {
			return nil, err
		}
		for _, pt := range ps {
			parts[pt.t.Name] = append(parts[pt.t.Name], pt)
		}
	}
	p.mu.Lock()
	p.stats.ExpertFetches++
	p.fetched[k] = true
	p.mu.Unlock()
	return parts, nil
}

// Prefetch starts fetching experts of a layer in the background
// (engine.Prefetcher), each until it is done, ctx ends or the pack is
// closed. Experts already being prefetched are skipped; past
// maxPrefetchBytes of unused prefetches the oldest is dropped and counted
// as waste.
func (p *Pack) Prefetch(ctx context.Context, layer int, experts []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for _, x := range experts {
		k := [2]int{layer, x}
		if _, ok := p.inFlight[k]; ok || len(p.experts[k]) == 0 {
			continue
		}
		pf := &prefetch{done: make(chan struct{})}
		for _, s := range p.experts[k] {
			pf.bytes += s.Size
		}
		p.inFlight[k] = pf
		p.pending += pf.bytes
		p.order = append(p.order, k)
		p.stats.Prefetched++
		fctx, cancel := p.bind(ctx)
		p.running[pf] = true
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer cancel()
			pf.parts, pf.err = p.fetchExpert(fctx, k)
			close(pf.done)
			p.mu.Lock()
			delete(p.running, pf)
			p.mu.Unlock()
		}()
	}
	for p.pending > maxPrefetchBytes && len(p.order) > 0 {
		old := p.order[0]
		p.order = p.order[1:]
		if pf, ok := p.inFlight[old]; ok {
			delete(p.inFlight, old)
			p.pending -= pf.bytes
			p.stats.PrefetchWasted += pf.bytes
		}
	}
	// order keeps keys already consumed; trim them so it cannot grow forever
	if len(p.order) > 4*len(p.inFlight)+64 {
		live := p.order[:0]
		for _, k := range p.order {
			if _, ok := p.inFlight[k]; ok {
				live = append(live, k)
			}
		}
		p.order = live
	}
}

// Ready reports whether an expert's prefetch has finished without error, so
// LoadExpert would not wait (engine.Readier).
func (p *Pack) Ready(layer, expert int) bool {
	p.mu.Lock()
	pf := p.inFlight[[2]int{layer, expert}]
	p.mu.Unlock()
	if pf == nil {
		return false
	}
	select {
	case <-pf.done:
		return pf.err == nil
	default:
		return false
	}
}

// Unused reports the bytes of prefetched experts not (yet) used; with
// Stats().PrefetchWasted it is what prediction cost in downloads so far.
func (p *Pack) Unused() int64 {
	p.mu.Lock()
	pending := make([]*prefetch, 0, len(p.inFlight))
	for _, pf := range p.inFlight {
		pending = append(pending, pf)
	}
	p.mu.Unlock()
	var n int64
	for _, pf := range pending {
		<-pf.done
		n += pf.bytes
	}
	return n
}

// Stats returns the fetch counters.
func (p *Pack) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// load returns the parts of shard s's tensors: its fetched bytes, or,
// when the pack keeps converted shards, its tensors already converted,
// taken from the store or converted now and stored. Converting here
// rather than when the tensor is assembled also moves the work of a
// prefetched expert off the path of the token that uses it.
func (p *Pack) load(ctx context.Context, s *manifest.Shard) ([]part, error) {
	keep := p.kept != nil && wholeTensors(s)
	if keep {
		if ts, ok := p.kept.Get(ctx, s); ok && matches(s, ts) {
			p.mu.Lock()
			p.stats.ConvertedHits++
			p.mu.Unlock()
			out := make([]part, len(ts))
			for i, t := range ts {
				out[i] = part{t: s.Tensors[i], ready: t}
			}
			return out, nil
		}
	}
	data, err := p.fetch(ctx, s)
	if err != nil {
		return nil, err
	}
	if p.rearrange != nil {
		if data, err = p.rearrange(s, data); err != nil {
			return nil, err
		}
	}
	out := make([]part, len(s.Tensors))
	for i, t := range s.Tensors {
		out[i] = part{t: t, data: data}
	}
	if !keep {
		return out, nil
	}
	ts := make([]*tensor.Tensor, len(out))
	for i := range out {
		if ts[i], err = p.assemble(out[i].t.Name, out[i:i+1]); err != nil {
			return nil, err
		}
		out[i].ready = ts[i]
	}
	p.kept.Put(ctx, s, ts)
	return out, nil
}

// wholeTensors reports whether each of s's tensors is whole in s.
func wholeTensors(s *manifest.Shard) bool {
	for _, t := range s.Tensors {
		if t.Rows > 0 {
			return false
		}
	}
	return len(s.Tensors) > 0
}

// matches checks tensors a ConvertedStore returned against the shard's
// names and shapes and their own formats, so a store that went wrong
// costs a fetch, never a wrong model.
func matches(s *manifest.Shard, ts []*tensor.Tensor) bool {
	if len(ts) != len(s.Tensors) {
		return false
	}
	for i, t := range ts {
		if t == nil || t.Name != s.Tensors[i].Name || !slices.Equal(t.Shape, s.Tensors[i].Shape) || t.Check() != nil {
			return false
		}
	}
	return true
}

func (p *Pack) fetch(ctx context.Context, s *manifest.Shard) ([]byte, error) {
	data, err := p.fetcher.Fetch(ctx, s)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.stats.Bytes += int64(len(data))
	p.stats.Shards++
	if s.Kind == manifest.KindExpert {
		p.stats.ExpertBytes += int64(len(data))
		p.stats.ExpertShards++
	}
	p.mu.Unlock()
	return data, nil
}

func (p *Pack) tokenizer() (tokenizer.Tokenizer, error) {
	b, cfg, err := p.TokenizerFiles()
	if err != nil {
		return nil, err
	}
	return tokenizer.Load(p.Manifest.Tokenizer.Kind, b, cfg, p.Manifest.Model.Vocab)
}

// TokenizerFiles fetches the pack's tokenizer file and, when it has one,
// its tokenizer config, hash-checked, as stored.
func (p *Pack) TokenizerFiles() (file, config []byte, err error) {
	mt := &p.Manifest.Tokenizer
	fetch := func(name, sum string, size int64) ([]byte, error) {
		s := &manifest.Shard{ID: "tokenizer file " + name, SHA256: sum, Size: size, Pieces: []manifest.Piece{{File: name, Length: size}}}
		return p.fetcher.Fetch(p.ctx, s)
	}
	if file, err = fetch(mt.File, mt.SHA256, mt.Size); err != nil {
		return nil, nil, err
	}
	if mt.Config != "" {
		if config, err = fetch(mt.Config, mt.ConfigSHA256, mt.ConfigSize); err != nil {
			return nil, nil, err
		}
	}
	return file, config, nil
}

// Whole returns the model with every routed expert loaded, each
// hash-checked like a lazy fetch, for tools that compute over the full
// model rather than stream it. The experts load on as many goroutines as
// the Go scheduler has processors: reading and hashing a shard is work
// for a core, and a large pack's load (a 0.9 GB OLMoE-shaped one: a
// thousand experts) took seconds on one. The error is the first in
// (layer, expert) order, as a load one expert after another reports it,
// and no expert after the failed one starts loading (those under way
// finish).
func (p *Pack) Whole(ctx context.Context) (*model.Model, error) {
	c := &p.Model.Config
	type job struct{ layer, expert int }
	var jobs []job
	for l := range c.Layers {
		for e := range c.FFN[l].ExpertWidths {
			jobs = append(jobs, job{l, e})
		}
	}
	loaded := make([][]*tensor.Tensor, len(jobs))
	errs := make([]error, len(jobs))
	// Jobs go out in order, so once job f failed every job before it has
	// gone out: none after it needs to (a damaged pack is not loaded to
	// the end), and the first error in order is among those out.
	var next, failed atomic.Int64
	failed.Store(int64(len(jobs)))
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= failed.Load() {
					return
				}
				loaded[i], errs[i] = p.LoadExpert(ctx, jobs[i].layer, jobs[i].expert)
				for errs[i] != nil {
					f := failed.Load()
					if i >= f || failed.CompareAndSwap(f, i) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	w := model.Weights{}
	for k, v := range p.Model.Weights {
		w[k] = v
	}
	for i, j := range jobs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		for k, sp := range c.ExpertSpec(j.layer, j.expert) {
			w[sp.Name] = loaded[i][k]
		}
	}
	m := &model.Model{Config: *c, Weights: w}
	if err := m.Validate(false); err != nil {
		return nil, err
	}
	return m, nil
}

// assemble is assemble with the pack's conversion applied, or the tensor
// load converted already.
func (p *Pack) assemble(name string, ps []part) (*tensor.Tensor, error) {
	if len(ps) == 1 && ps[0].ready != nil {
		return ps[0].ready, nil
	}
	t, err := assemble(name, ps)
	if err != nil || p.convert == nil {
		return t, err
	}
	c, err := p.convert(t)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	if c.DType != t.DType {
		p.mu.Lock()
		p.stats.Conversions++
		p.mu.Unlock()
	}
	return c, nil
}

// part is one manifest entry of a tensor with the bytes of its shard, or
// the tensor already converted (ready).
type part struct {
	t     manifest.Tensor
	data  []byte
	ready *tensor.Tensor
}

// assemble builds a tensor from its entries: one whole entry, or row
// chunks that together cover every row.
func assemble(name string, ps []part) (*tensor.Tensor, error) {
	if len(ps) == 0 {
		return nil, fmt.Errorf("pack: no data for tensor %s", name)
	}
	chunks := make([]*tensor.Tensor, len(ps))
	for i, p := range ps {
		d, err := tensor.ParseDType(p.t.DType)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		shape := append([]int(nil), p.t.Shape...)
		if p.t.Rows > 0 {
			shape[0] = p.t.Rows
		}
		chunks[i] = &tensor.Tensor{Name: name, DType: d, Shape: shape, Data: p.data[p.t.Offset : p.t.Offset+p.t.Length]}
	}
	if len(chunks) == 1 {
		return chunks[0], nil
	}
	// entries are in shard order, which the writer made row order; check.
	row := 0
	for _, p := range ps {
		if p.t.Row0 != row {
			return nil, fmt.Errorf("tensor %s: row chunks out of order (chunk at row %d, expected %d)", name, p.t.Row0, row)
		}
		row += p.t.Rows
	}
	return tensor.ConcatRows(chunks)
}
