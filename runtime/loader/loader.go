package loader

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/moderuntime/mode/modelpack/manifest"
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

	ctx     context.Context
	fetcher *shard.Fetcher
	experts map[[2]int][]*manifest.Shard // (layer, expert) -> its shards

	mu       sync.Mutex
	stats    Stats
	inFlight map[[2]int]*prefetch // prefetched experts not yet loaded
	order    [][2]int             // prefetch order, to drop the oldest beyond maxPrefetchBytes
	pending  int64                // bytes of the experts in inFlight
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
}

// Open reads the manifest at location (a pack directory, a manifest path
// or an http(s) URL) and loads everything except routed experts.
func Open(ctx context.Context, location string, o shard.HTTPOptions) (*Pack, error) {
	return withTokenizer(OpenWeights(ctx, location, o))
}

// OpenWeights is Open without the tokenizer, for tools that compute or
// that copy the tokenizer's files (TokenizerFiles) rather than tokenize.
func OpenWeights(ctx context.Context, location string, o shard.HTTPOptions) (*Pack, error) {
	src, name, err := shard.Open(location, o)
	if err != nil {
		return nil, err
	}
	b, err := src.Read(ctx, name, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", location, err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", location, err)
	}
	return LoadWeights(ctx, m, &shard.Fetcher{Src: src, HTTP: o})
}

// Load loads a parsed manifest through f: the tokenizer and the weights.
// ctx bounds every later expert fetch too.
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
	p := &Pack{Manifest: m, ctx: ctx, fetcher: f, experts: map[[2]int][]*manifest.Shard{}, AddBOS: m.Tokenizer.AddBOS,
		inFlight: map[[2]int]*prefetch{}, fetched: map[[2]int]bool{}}
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
		data, err := p.fetch(s)
		if err != nil {
			return nil, err
		}
		for _, t := range s.Tensors {
			parts[t.Name] = append(parts[t.Name], part{t, data})
		}
	}
	for name, ps := range parts {
		t, err := assemble(name, ps)
		if err != nil {
			return nil, err
		}
		w[name] = t
	}
	p.Model = &model.Model{Config: m.Model, Weights: w}
	if err := p.Model.Validate(true); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	return p, nil
}

// LoadExpert fetches a routed expert's shards (engine.ExpertSource), or
// takes them from a prefetch.
func (p *Pack) LoadExpert(layer, expert int) (gate, up, down *tensor.Tensor, err error) {
	k := [2]int{layer, expert}
	p.mu.Lock()
	pf := p.inFlight[k]
	if pf != nil {
		delete(p.inFlight, k)
		p.pending -= pf.bytes
	}
	p.mu.Unlock()
	var parts map[string][]part
	if pf != nil {
		<-pf.done
		if pf.err == nil {
			p.mu.Lock()
			p.stats.PrefetchHits++
			p.mu.Unlock()
			parts = pf.parts
		}
	}
	if parts == nil {
		if parts, err = p.fetchExpert(k); err != nil {
			return nil, nil, nil, err
		}
	}
	get := func(pt string) *tensor.Tensor {
		name := model.ExpertName(layer, expert, pt)
		t, e := assemble(name, parts[name])
		if e != nil && err == nil {
			err = e
		}
		return t
	}
	return get("gate"), get("up"), get("down"), err
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
func (p *Pack) fetchExpert(k [2]int) (map[string][]part, error) {
	shards := p.experts[k]
	if len(shards) == 0 {
		return nil, fmt.Errorf("pack has no shard for expert %d of layer %d", k[1], k[0])
	}
	parts := map[string][]part{}
	for _, s := range shards {
		data, err := p.fetch(s)
		if err != nil {
			return nil, err
		}
		for _, t := range s.Tensors {
			parts[t.Name] = append(parts[t.Name], part{t, data})
		}
	}
	p.mu.Lock()
	p.stats.ExpertFetches++
	p.fetched[k] = true
	p.mu.Unlock()
	return parts, nil
}

// Prefetch starts fetching experts of a layer in the background
// (engine.Prefetcher). Experts already being prefetched are skipped; past
// maxPrefetchBytes of unused prefetches the oldest is dropped and counted
// as waste.
func (p *Pack) Prefetch(layer int, experts []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
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
		go func() {
			defer close(pf.done)
			pf.parts, pf.err = p.fetchExpert(k)
		}()
	}
	for p.pending > maxPrefetchBytes && len(p.order) > 0 {
		old := p.order[0]
		p.order = p.order[1:]
		if pf, ok := p.inFlight[old]; ok {
			delete(p.inFlight, old)
			p.pending -= pf.bytes
			go func() { <-pf.done; p.mu.Lock(); p.stats.PrefetchWasted += pf.bytes; p.mu.Unlock() }()
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

func (p *Pack) fetch(s *manifest.Shard) ([]byte, error) {
	data, err := p.fetcher.Fetch(p.ctx, s)
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
// model rather than stream it.
func (p *Pack) Whole() (*model.Model, error) {
	c := &p.Model.Config
	w := model.Weights{}
	for k, v := range p.Model.Weights {
		w[k] = v
	}
	for l := range c.Layers {
		for e := range c.FFN[l].ExpertWidths {
			gate, up, down, err := p.LoadExpert(l, e)
			if err != nil {
				return nil, err
			}
			w[model.ExpertName(l, e, "gate")], w[model.ExpertName(l, e, "up")], w[model.ExpertName(l, e, "down")] = gate, up, down
		}
	}
	m := &model.Model{Config: *c, Weights: w}
	if err := m.Validate(false); err != nil {
		return nil, err
	}
	return m, nil
}

// part is one manifest entry of a tensor with the bytes of its shard.
type part struct {
	t    manifest.Tensor
	data []byte
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
