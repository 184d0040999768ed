package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/moderuntime/mode/internal/wasmsimd"
	"github.com/moderuntime/mode/modelpack/hfrepo"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/manifest"
	chatsession "github.com/moderuntime/mode/runtime/session"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/runtime/tokenizer"
	"github.com/moderuntime/mode/runtime/vec"
)

// env is what a session needs from its platform.
type env struct {
	// store persists shards; nil when the platform has none.
	store blobStore
	// storeNote says why store is nil, for the page.
	storeNote string
	// opfs persists shards in the Origin Private File System (cache
	// "opfs"); opfsNote says why it is nil.
	opfs     blobStore
	opfsNote string
	// estimate reports storage usage and quota; nil: unknown.
	estimate estimateFunc
	// yield lets the platform's event loop run (in a browser: deliver an
	// interrupt message) during a long computation.
	yield func()
	// threads is the CPU backend's default thread count (0: all cores).
	threads int
	// http configures the shard source.
	http shard.HTTPOptions
	logf func(format string, args ...any)
	// gpu opens a WebGPU backend, or says why there is none; nil where the
	// platform has no WebGPU at all.
	gpu func() (backend.Backend, gpuInfo, error)
	// peers starts want-1 more engine instances for the CPU path (want 0:
	// the platform's choice), whose answers are at most answerBytes, and
	// says how many instances there are in all and why; stop ends them.
	// nil where the platform has none (one instance).
	peers func(ctx context.Context, want, answerBytes int) (ps []cpu.Peer, note string, stop func())
}

// maxBatch is the most prompt tokens one forward step takes (the
// engine's MaxBatch): it sizes the peers' answers.
const maxBatch = 128

// session holds at most one loaded model and runs one generation at a time.
type session struct {
	env env

	mu       sync.Mutex // guards the fields below
	model    *loaded
	loading  bool
	cancelGn context.CancelFunc // the running generation's, or nil
}

// loaded is a model ready to generate.
type loaded struct {
	name    string
	pack    *loader.Pack
	src     *cachingSource
	conv    *convertedStore // an hf: model's converted shards; nil if not kept
	eng     *engine.Engine
	chat    *chatsession.Session
	cancel  context.CancelFunc // ends expert fetches on unload
	b       backend.Backend    // closed on unload
	backend string
	workers int
	// stopPeers ends the peers' workers; nil without peers.
	stopPeers func()

	gen       sync.Mutex // one generation at a time; guards eng, chat, last, lastUsage and the gpu fields
	last      engine.Result
	lastUsage chatsession.Usage
	// gpuFirst and gpuLast are the backend's counts (a backend.Counter)
	// at the first and the latest of gpuTicks generated tokens of the
	// running generation; gpuDecode is the last generation's per token.
	gpuFirst, gpuLast backend.Counts
	gpuTicks          int
	gpuDecode         gpuStats

	snapMu sync.Mutex
	snap   stats // refreshed while generating, so stats() need not wait
}

func newSession(e env) *session {
	if e.yield == nil {
		e.yield = func() {}
	}
	if e.logf == nil {
		e.logf = func(string, ...any) {}
	}
	// The platform's OPFS and quota, where the caller did not set them.
	if e.opfs == nil && e.opfsNote == "" {
		e.opfs, e.opfsNote = openOPFS("mode-shards-v1")
	}
	if e.estimate == nil {
		e.estimate = platformEstimate()
	}
	return &session{env: e}
}

// handle runs one request and sends its replies through send. It returns
// when the request is done; the caller runs it on its own goroutine.
func (s *session) handle(ctx context.Context, r request, send func(reply)) {
	data, err := s.dispatch(ctx, r, func(typ string, v any) { send(reply{ID: r.ID, Type: typ, Data: v}) })
	if err != nil {
		code := "internal"
		var ce *codedError
		var se *chatsession.Error
		switch {
		case errors.As(err, &ce):
			code = ce.code
		case errors.As(err, &se):
			code = se.Code
		}
		send(reply{ID: r.ID, Type: "error", Error: &errorMsg{Code: code, Message: err.Error()}})
		return
	}
	send(reply{ID: r.ID, Type: "result", Data: data})
}

func (s *session) dispatch(ctx context.Context, r request, send func(typ string, v any)) (any, error) {
	switch r.Op {
	case "load":
		var p loadParams
		if err := decode(r.Params, &p); err != nil {
			return nil, err
		}
		return s.load(ctx, p, func(p progress) { send("progress", p) })
	case "chat", "complete":
		var p chatsession.Request
		if err := decode(r.Params, &p); err != nil {
			return nil, err
		}
		return s.generate(ctx, r.Op == "chat", p, func(v any) { send("chunk", v) })
	case "interrupt":
		return map[string]bool{"interrupted": s.interrupt()}, nil
	case "stats":
		return s.stats(), nil
	case "unload":
		s.unload()
		return map[string]bool{"unloaded": true}, nil
	}
	return nil, withCode("bad_request", fmt.Errorf("unknown op %q: want load, chat, complete, interrupt, stats or unload", r.Op))
}

func decode(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return withCode("bad_request", fmt.Errorf("bad parameters: %w", err))
	}
	return nil
}

// gpuInfo is what openWebGPU tells of the adapter besides the backend.
type gpuInfo struct {
	Adapter  string // the adapter's name
	Software bool   // a software renderer (SwiftShader, lavapipe, …) or a fallback adapter
}

// newBackend opens the compute backend name asks for and returns it with
// its name and a note saying why that one: "auto" takes WebGPU only on a
// hardware adapter, since on a software renderer the CPU path is many
// times faster (e2e measured 3–30 tokens/s on SwiftShader against 100–300
// on the CPU for the same packs); "webgpu" forces it anyway.
// gpu may be nil: the platform has no WebGPU.
// describe is "; " and what b says of its device and arithmetic (the
// WebGPU backend: f16 arithmetic, whether matvec's lanes meet through
// subgroups and why not), or "" when b says nothing.
func describe(b backend.Backend) string {
	if s, ok := b.(fmt.Stringer); ok {
		return "; " + s.String()
	}
	return ""
}

func newBackend(name string, threads int, gpu func() (backend.Backend, gpuInfo, error)) (b backend.Backend, got, note string, err error) {
	switch name {
	case "cpu":
		return cpu.New(cpu.Options{Threads: threads}), "cpu", "the CPU backend was asked for", nil
	case "webgpu", "auto", "":
	default:
		return nil, "", "", withCode("bad_request", fmt.Errorf(`backend %q: want "cpu", "webgpu" or "auto"`, name))
	}
	why := "this build has no WebGPU"
	if gpu != nil {
		var info gpuInfo
		if b, info, err = gpu(); err == nil {
			switch {
			case name == "webgpu" && info.Software:
				return b, "webgpu", fmt.Sprintf("WebGPU on %s, a software renderer, as asked: the CPU backend is usually faster there%s", info.Adapter, describe(b)), nil
			case name == "webgpu":
				return b, "webgpu", fmt.Sprintf("WebGPU on %s, as asked%s", info.Adapter, describe(b)), nil
			case !info.Software:
				return b, "webgpu", fmt.Sprintf("WebGPU on %s, a hardware adapter%s", info.Adapter, describe(b)), nil
			}
			b.Close()
			return cpu.New(cpu.Options{Threads: threads}), "cpu",
				fmt.Sprintf("running on the CPU: WebGPU's only adapter, %s, is a software renderer, slower than the CPU path (choose the webgpu backend to use it anyway)", info.Adapter), nil
		}
		why = err.Error()
	}
	if name == "webgpu" {
		return nil, "", "", withCode("unavailable", fmt.Errorf(`backend "webgpu" is unavailable (%s): use backend "cpu", or "auto" to take the best available`, why))
	}
	return cpu.New(cpu.Options{Threads: threads}), "cpu", fmt.Sprintf("WebGPU is unavailable (%s): running on the CPU", why), nil
}

func (s *session) load(ctx context.Context, p loadParams, report func(progress)) (*loadResult, error) {
	if p.Model == "" {
		return nil, withCode("bad_request", errors.New("model is empty: give the URL of a pack's manifest.json"))
	}
	if p.ExpertBudgetMB < 0 {
		return nil, withCode("bad_request", fmt.Errorf("expertBudgetMB is %v: want 0 (no limit) or more", p.ExpertBudgetMB))
	}
	if p.StorageBudgetMB < 0 {
		return nil, withCode("bad_request", fmt.Errorf("storageBudgetMB is %v: want 0 (80%% of the quota) or more", p.StorageBudgetMB))
	}
	store, cacheMode, storeNote := s.env.store, "cache-storage", s.env.storeNote
	switch p.Cache {
	case "", "cache-storage":
	case "opfs":
		store, cacheMode, storeNote = s.env.opfs, "opfs", s.env.opfsNote
	case "none":
		store, storeNote = nil, ""
	default:
		return nil, withCode("bad_request", fmt.Errorf(`cache %q: want "cache-storage", "opfs" or "none"`, p.Cache))
	}
	if store == nil {
		cacheMode = "none"
	}
	if p.Threads == 0 {
		p.Threads = s.env.threads
	}
	if p.Workers < 0 || p.Workers > maxWorkers {
		return nil, withCode("bad_request", fmt.Errorf("workers is %d: want 0 (the platform's choice) to %d", p.Workers, maxWorkers))
	}

	s.mu.Lock()
	if s.loading {
		s.mu.Unlock()
		return nil, withCode("busy", errors.New("a model is loading already: wait for it, or unload"))
	}
	s.loading = true
	old := s.model
	s.model = nil
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.loading = false
		s.mu.Unlock()
	}()
	if old != nil {
		// Before opening the new backend: the old one may hold the GPU's memory.
		old.close(s.env.logf)
	}
	b, backendName, backendNote, err := newBackend(p.Backend, p.Threads, s.env.gpu)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()

	report(progress{Phase: "manifest", ETASeconds: -1})
	budget := int64(p.StorageBudgetMB * (1 << 20))
	var shards *shardStore // over store, for the shards and an hf: index
	if store != nil {
		shards = newShardStore(store, budget, s.env.estimate, map[string]bool{}, s.env.logf)
	}
	var m *manifest.Manifest
	var src shard.Source
	var repo *hfrepo.Repo // for an hf: location
	var convert func(*tensor.Tensor) (*tensor.Tensor, error)
	q := hfrepo.DefaultQuant
	if hfrepo.IsLocation(p.Model) {
		loc, err := hfrepo.ParseLocation(p.Model)
		if err != nil {
			return nil, withCode("bad_request", err)
		}
		if p.Quant != "" {
			if q, err = hfrepo.ParseQuant(p.Quant); err != nil {
				return nil, withCode("bad_request", err)
			}
		}
		ho := hfrepo.Options{Endpoint: p.HFEndpoint, HTTP: s.env.http, Quant: q}
		if shards != nil {
			// A reload of a commit indexed before reads none of its files.
			ho.Keep = keptIndexes{s: shards, logf: s.env.logf}
		}
		if repo, err = hfrepo.Index(ctx, loc, ho); err != nil {
			return nil, withCode("load_failed", err)
		}
		m = repo.Manifest
		// Ranges must come from the version of each file the index read.
		if src, err = shard.NewHTTP(repo.Base, repo.HTTP(s.env.http)); err != nil {
			return nil, withCode("load_failed", err)
		}
		convert = q.Converter(m.Model)
	} else {
		if p.Quant != "" {
			return nil, withCode("bad_request", errors.New("quant applies to hf: models only: a pack's formats were chosen at import"))
		}
		raw, psrc, err := openManifest(ctx, p.Model, s.env.http)
		if err != nil {
			return nil, withCode("load_failed", err)
		}
		if m, err = manifest.Parse(raw); err != nil {
			return nil, withCode("load_failed", fmt.Errorf("%s: %w", p.Model, err))
		}
		src = psrc
	}
	// An hf: repository's shards are kept only when the URLs name a
	// commit (under a branch name the bytes may change): converted to the
	// session's formats when it converts, so a second visit neither
	// fetches nor converts; else as fetched, by URL and range.
	so := storeOptions{store: store, shards: shards, budget: budget, estimate: s.env.estimate}
	var conv *convertedStore
	if repo != nil && repo.Pinned {
		if convert != nil {
			conv = newConvertedStore(m, repo.Base, q.ManifestFormats(m))
			so.converted, so.keep = true, conv.upfront(m)
		} else {
			so.ranges = true
		}
	}
	cs := newCachingSource(src, so, m, s.env.logf)
	var kept loader.ConvertedStore
	if conv != nil && cs.store == nil {
		conv = nil // no storage (cache "none", a private window)
	}
	if conv != nil {
		conv.c = cs
		kept = conv
	}
	total, n := upfront(m)
	// Say at once what is to come: the first shard (the core, the largest)
	// can take long, and until it is in the page would still be showing
	// "reading the manifest".
	report(progress{Phase: "weights", Total: total, ShardsTotal: n, ETASeconds: -1})
	// The peers' workers start (fetch and compile mode.wasm) while the
	// weights load.
	peersCh := make(chan peerStart, 1)
	go func() {
		var r peerStart
		r.workers, r.note, r.stop = s.startPeers(ctx, p, b, backendName, m.Model.Dim)
		peersCh <- r
	}()
	var peers *peerStart
	joinPeers := func() peerStart {
		if peers == nil {
			r := <-peersCh
			peers = &r
		}
		return *peers
	}
	defer func() {
		if stop := joinPeers().stop; !ok && stop != nil {
			stop()
		}
	}()
	cs.onProgress(func(st sourceStats) {
		report(progress{Phase: "weights", Bytes: st.UpfrontBytes, Total: total, Shards: st.UpfrontShards,
			ShardsTotal: n, FromCache: st.UpfrontHits, ETASeconds: eta(st, total)})
		s.env.yield() // let the page's messages in between shards
	})
	// The pack's context outlives this request: it bounds expert fetches
	// until unload.
	pctx, cancel := context.WithCancel(context.Background())
	stopLoad := context.AfterFunc(ctx, cancel)
	defer stopLoad()
	var src2 shard.Source = cs
	if p.Eager {
		report(progress{Phase: "download", Total: packBytes(m), ETASeconds: -1})
		if src2, err = downloadAll(pctx, cs, m, s.env.http); err != nil {
			cancel()
			return nil, withCode("load_failed", fmt.Errorf("downloading %s: %w", p.Model, err))
		}
	}
	var pk *loader.Pack
	if repo != nil {
		// The tokenizer's files were read while indexing: no second fetch.
		pk, err = loader.LoadWith(pctx, m, &shard.Fetcher{Src: src2, HTTP: s.env.http}, loader.Options{Convert: convert, Converted: kept, Rearrange: repo.Rearrange})
		if err == nil {
			pk.Tokenizer, err = tokenizer.Load("hf", repo.Tokenizer, repo.TokenizerConfig, m.Model.Vocab)
		}
	} else {
		pk, err = loader.Load(pctx, m, &shard.Fetcher{Src: src2, HTTP: s.env.http})
	}
	if err != nil {
		cancel()
		return nil, withCode("load_failed", fmt.Errorf("loading %s: %w", p.Model, err))
	}
	cs.onProgress(nil)
	ps := joinPeers()
	workers, workersNote, stopPeers := ps.workers, ps.note, ps.stop
	if mem, ok := src2.(*memSource); ok && workers > 1 {
		mem.handOverReads()
	}
	opts := engine.Options{MaxBatch: maxBatch, Experts: pk, ExpertBudget: int64(p.ExpertBudgetMB * (1 << 20)), Prefetch: p.Prefetch == nil || *p.Prefetch,
		ShareWeights: true} // the pack's weights are the engine's alone
	switch p.MissingExperts {
	case "", "exact":
	case "fast":
		opts.Missing = engine.MissingFast
	default:
		cancel()
		return nil, withCode("bad_request", fmt.Errorf("missingExperts is %q: want \"exact\" or \"fast\"", p.MissingExperts))
	}
	eng, err := engine.New(b, pk.Model, opts)
	if err != nil {
		cancel()
		pk.Close()
		return nil, withCode("load_failed", fmt.Errorf("%s: %w", p.Model, err))
	}
	l := &loaded{name: p.Model, pack: pk, src: cs, conv: conv, eng: eng, cancel: cancel, b: b, backend: backendName, workers: workers, stopPeers: stopPeers}
	// A request without a seed gets the session's next one, so the first
	// is 0 as it always was and a regenerated reply differs.
	if l.chat, err = chatsession.New(eng, chatsession.Options{Tokenizer: pk.Tokenizer, AddBOS: pk.AddBOS,
		ChatTemplate: m.ChatTemplate, Model: p.Model, Tick: l.tick(s.env.yield)}); err != nil {
		cancel()
		pk.Close()
		return nil, withCode("load_failed", fmt.Errorf("%s: %w", p.Model, err))
	}
	ok = true
	first := l.refresh()
	s.mu.Lock()
	s.model = l
	s.mu.Unlock()
	st := cs.stats()
	report(progress{Phase: "ready", Bytes: st.UpfrontBytes, Total: total, Shards: st.UpfrontShards, ShardsTotal: n, FromCache: st.UpfrontHits})
	note := ""
	if store == nil {
		note = storeNote
	}
	kernels := vec.Impl() // "go" in every wasm build
	simd, kernelsNote := wasmsimd.Ready()
	if simd {
		kernels = wasmsimd.ImplSIMD
	}
	return &loadResult{
		Model: p.Model, Backend: backendName, BackendNote: backendNote, Cache: cacheMode, CacheNote: note,
		Kernels: kernels, KernelsNote: kernelsNote, Workers: workers, WorkersNote: workersNote, ChatTemplate: l.chat.Template(), ChatTemplateNote: l.chat.TemplateNote(),
		Vocab: m.Model.Vocab, ContextLen: eng.MaxSeq(), Experts: eng.Stats().ExpertsTotal, ExpertBytes: expertBytes(m), Stats: first,
	}, nil
}

// openManifest reads the manifest at url and returns the source for the
// pack's files.
func openManifest(ctx context.Context, url string, o shard.HTTPOptions) ([]byte, shard.Source, error) {
	// url passes unchanged: a "#sha256=HEX" pin on it is checked here.
	src, b, err := shard.ReadManifest(ctx, url, o)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (is the URL right and the server up?)", err)
	}
	return b, src, nil
}

// eta estimates the seconds left from the rate so far; -1 before any
// bytes arrived.
func eta(st sourceStats, total int64) float64 {
	el := time.Since(st.Start).Seconds()
	if st.UpfrontBytes <= 0 || el <= 0 {
		return -1
	}
	return float64(total-st.UpfrontBytes) / (float64(st.UpfrontBytes) / el)
}

func (s *session) current() (*loaded, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.model == nil {
		return nil, withCode("not_loaded", errors.New("no model is loaded: call mode.create({model: ...}) first"))
	}
	return s.model, nil
}

func (s *session) interrupt() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelGn == nil {
		return false
	}
	s.cancelGn()
	return true
}

func (s *session) unload() {
	s.mu.Lock()
	l := s.model
	s.model = nil
	if s.cancelGn != nil {
		s.cancelGn()
	}
	s.mu.Unlock()
	if l != nil {
		l.close(s.env.logf)
	}
}

func (l *loaded) close(logf func(format string, args ...any)) {
	l.cancel()
	// Wait for a running generation to notice, so its engine is not used
	// after unload returns, and for the pack's prefetches to end, so none
	// stores a shard or counts bytes after it.
	l.gen.Lock()
	defer l.gen.Unlock()
	l.pack.Close()
	if err := l.b.Close(); err != nil {
		// Nothing to do about it but say so: the model is gone either way.
		logf("closing the %s backend: %v", l.backend, err)
	}
	if l.stopPeers != nil {
		l.stopPeers()
	}
}

// peerStart is what startPeers returned.
type peerStart struct {
	workers int
	note    string
	stop    func()
}

// maxWorkers bounds the workers a page may ask for.
const maxWorkers = 16

// startPeers gives a CPU backend its peers (cpu.Peer) when the platform
// has them and more than one worker is wanted; it returns the number of
// engine instances in all, why, and how to stop the peers (nil if none).
func (s *session) startPeers(ctx context.Context, p loadParams, b backend.Backend, backendName string, dim int) (int, string, func()) {
	cb, isCPU := b.(*cpu.Backend)
	switch {
	case s.env.peers == nil:
		return 1, "", nil
	case !isCPU:
		return 1, fmt.Sprintf("one worker: the %s backend does not split experts between workers", backendName), nil
	}
	ps, note, stop := s.env.peers(ctx, p.Workers, 4*maxBatch*dim)
	if len(ps) > 0 {
		cb.SetPeers(ps)
	}
	return len(ps) + 1, note, stop
}

func (s *session) stats() stats {
	s.mu.Lock()
	l := s.model
	s.mu.Unlock()
	if l == nil {
		return stats{}
	}
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	return l.snap
}

// refresh updates the snapshot stats() returns; l.gen must be held (or l
// not yet shared).
func (l *loaded) refresh() stats {
	st := l.stats()
	l.snapMu.Lock()
	l.snap = st
	l.snapMu.Unlock()
	return st
}

// stats must be called with l.gen held (or before l is shared).
func (l *loaded) stats() stats {
	cs, es, ps := l.src.stats(), l.eng.Stats(), l.pack.Stats()
	st := stats{
		Loaded: true, Backend: l.backend, Workers: l.workers, BytesFetched: cs.NetBytes, BytesFromCache: cs.CacheBytes,
		ShardCacheHits: cs.Hits, ShardCacheMiss: cs.Misses,
		StorageEvictions: cs.Store.Evictions, StorageSkipped: cs.Store.Skipped, StorageBytes: cs.Store.Bytes,
		ExpertsResident: es.ExpertsResident, ExpertsTotal: es.ExpertsTotal, ExpertBytesResident: es.ExpertBytesResident,
		ExpertHitRate: es.HitRate(), ExpertEvictions: es.ExpertEvictions, ExpertFetches: ps.ExpertFetches,
		Prefetched: ps.Prefetched, PrefetchHits: ps.PrefetchHits, PrefetchWasted: ps.PrefetchWasted, Substitutions: es.Substitutions,
		Conversions: ps.Conversions, ConvertedFromCache: ps.ConvertedHits,
		PrefillTokensPerSec: l.last.PrefillTokensPerSecond(), DecodeTokensPerSec: l.last.DecodeTokensPerSecond(),
		LastPromptTokens: l.lastUsage.Prompt, LastCompletionTokens: l.lastUsage.Completion,
		LastCachedTokens: l.lastUsage.Prompt - l.lastUsage.PrefilledTokens, LastPrefilledTokens: l.lastUsage.PrefilledTokens,
	}
	if c, ok := l.b.(backend.Counter); ok {
		n := c.Counts()
		g := l.gpuDecode
		g.Submissions, g.Dispatches, g.Kernels = n.Submissions, n.Dispatches, n.Kernels
		st.GPU = &g
	}
	if cb, ok := l.b.(*cpu.Backend); ok {
		st.ExpertsSplit = cb.SplitExperts()
	}
	if n := cs.Hits + cs.Misses; n > 0 {
		st.ShardHitRate = float64(cs.Hits) / float64(n)
	}
	if em := l.eng.ExpertMap(); slices.Max(em.Experts) > 0 {
		st.ExpertMap = &expertMap{Layers: len(em.Experts), Experts: slices.Max(em.Experts), Fetched: l.pack.Fetched(),
			Cached: l.cached(len(em.Experts)), Resident: em.Resident, LastRouted: em.LastRouted, HitRate: em.HitRate}
	}
	return st
}

// cached lists, per layer, the experts whose every shard the persistent
// store holds, so the page need not read the worker's storage itself.
func (l *loaded) cached(layers int) [][]int {
	out := make([][]int, layers)
	all := map[[2]int]bool{} // (layer, expert) → every shard stored so far
	for _, s := range l.pack.Manifest.Shards {
		if s.Kind != manifest.KindExpert || s.Layer < 0 || s.Layer >= layers {
			continue
		}
		k := [2]int{s.Layer, s.Expert}
		ok, seen := all[k]
		all[k] = (ok || !seen) && (l.conv != nil && l.conv.stored(&s) || l.src.shardStored(&s))
	}
	for k, ok := range all {
		if ok {
			out[k[0]] = append(out[k[0]], k[1])
		}
	}
	for _, xs := range out {
		slices.Sort(xs)
	}
	return out
}

// generate runs chat (messages) or completion (prompt) through the
// model's chat session and returns the OpenAI-shaped result; with Stream
// set it also sends chunks.
func (s *session) generate(ctx context.Context, chat bool, r chatsession.Request, chunk func(any)) (any, error) {
	l, err := s.current()
	if err != nil {
		return nil, err
	}
	l.gen.Lock()
	defer l.gen.Unlock()
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	if s.model != l {
		s.mu.Unlock()
		return nil, withCode("not_loaded", errors.New("the model was unloaded"))
	}
	s.cancelGn = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.cancelGn = nil
		s.mu.Unlock()
	}()
	l.gpuTicks = 0
	run := l.chat.Complete
	if chat {
		run = l.chat.Chat
	}
	c, err := run(gctx, r, func(c *chatsession.Completion) { chunk(c) })
	// The experts this reply predicted but did not use are still coming:
	// let them land (an interrupt ends them), so the stats count, and the
	// store holds, all that the reply fetched.
	l.pack.Wait(gctx)
	if cb, ok := l.b.(*cpu.Backend); ok && cb.PeerErr() != nil {
		// The model cannot go on without the shares the lost worker held.
		return nil, withCode("worker_failed", fmt.Errorf("%w: create the engine again (threads: 1 runs on one worker)", cb.PeerErr()))
	}
	if err != nil {
		return nil, err
	}
	l.last, l.lastUsage = l.chat.Last(), *c.Usage
	l.gpuDecode = decodeCounts(l.gpuFirst, l.gpuLast, l.gpuTicks-1)
	l.refresh()
	return c, nil
}

// decodeCounts is the device work of n decode steps, from first to last,
// per token (zero when n < 1).
func decodeCounts(first, last backend.Counts, n int) gpuStats {
	if n < 1 {
		return gpuStats{}
	}
	g := gpuStats{DecodeTokens: n, KernelsPerToken: map[string]float64{},
		SubmissionsPerToken: float64(last.Submissions-first.Submissions) / float64(n),
		DispatchesPerToken:  float64(last.Dispatches-first.Dispatches) / float64(n)}
	for k, v := range last.Kernels {
		if d := v - first.Kernels[k]; d != 0 {
			g.KernelsPerToken[k] = float64(d) / float64(n)
		}
	}
	return g
}

// tick runs after every generated token. Go on js runs the page's
// messages only when every goroutine waits: now and then it gives them a
// moment, so interrupt gets in, and refreshes the stats the page polls.
func (l *loaded) tick(yield func()) func() {
	last := time.Now()
	return func() {
		// The device work between the first generated token and each
		// later one is the decode steps' (the first comes from the prompt).
		if c, ok := l.b.(backend.Counter); ok {
			n := c.Counts()
			if l.gpuTicks == 0 {
				l.gpuFirst = n
			}
			l.gpuLast = n
			l.gpuTicks++
		}
		if time.Since(last) > 25*time.Millisecond {
			l.refresh()
			yield()
			last = time.Now()
		}
	}
}
