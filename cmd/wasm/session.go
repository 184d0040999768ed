package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/moderuntime/mode/modelpack/manifest"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/sample"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tokenizer"
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
	gpu func() (backend.Backend, error)
}

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
	eng     *engine.Engine
	format  chatFormat
	cancel  context.CancelFunc // ends expert fetches on unload
	b       backend.Backend    // closed on unload
	backend string

	gen  sync.Mutex // one generation at a time; guards eng and last
	last engine.Result

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
		if errors.As(err, &ce) {
			code = ce.code
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
		var p genParams
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

// newBackend opens the compute backend name asks for and returns it with
// its name and, when "auto" had to settle for the CPU, a note saying why.
// gpu may be nil: the platform has no WebGPU.
func newBackend(name string, threads int, gpu func() (backend.Backend, error)) (b backend.Backend, got, note string, err error) {
	switch name {
	case "cpu":
		return cpu.New(cpu.Options{Threads: threads}), "cpu", "", nil
	case "webgpu", "auto", "":
	default:
		return nil, "", "", withCode("bad_request", fmt.Errorf(`backend %q: want "cpu", "webgpu" or "auto"`, name))
	}
	why := "this build has no WebGPU"
	if gpu != nil {
		if b, err = gpu(); err == nil {
			return b, "webgpu", "", nil
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
	raw, src, err := openManifest(ctx, p.Model, s.env.http)
	if err != nil {
		return nil, withCode("load_failed", err)
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, withCode("load_failed", fmt.Errorf("%s: %w", p.Model, err))
	}
	cs := newCachingSource(src, storeOptions{store: store, budget: int64(p.StorageBudgetMB * (1 << 20)), estimate: s.env.estimate}, m, s.env.logf)
	total, n := upfront(m)
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
	pk, err := loader.Load(pctx, m, &shard.Fetcher{Src: src2, HTTP: s.env.http})
	if err != nil {
		cancel()
		return nil, withCode("load_failed", fmt.Errorf("loading %s: %w", p.Model, err))
	}
	cs.onProgress(nil)
	opts := engine.Options{Experts: pk, ExpertBudget: int64(p.ExpertBudgetMB * (1 << 20)), Prefetch: p.Prefetch == nil || *p.Prefetch}
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
		return nil, withCode("load_failed", fmt.Errorf("%s: %w", p.Model, err))
	}
	l := &loaded{name: p.Model, pack: pk, src: cs, eng: eng, format: formatFor(m.ChatTemplate, tokenText(pk.Tokenizer, m.Model.BOS), tokenText(pk.Tokenizer, firstOr(m.Model.EOS, -1))), cancel: cancel, b: b, backend: backendName}
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
	return &loadResult{
		Model: p.Model, Backend: backendName, BackendNote: backendNote, Cache: cacheMode, CacheNote: note, ChatTemplate: l.format.Name,
		Vocab: m.Model.Vocab, ContextLen: eng.MaxSeq(), Experts: eng.Stats().ExpertsTotal, Stats: first,
	}, nil
}

// openManifest reads the manifest at url and returns the source for the
// pack's files.
func openManifest(ctx context.Context, url string, o shard.HTTPOptions) ([]byte, shard.Source, error) {
	src, name, err := shard.Open(url, o)
	if err != nil {
		return nil, nil, err
	}
	b, err := src.Read(ctx, name, 0, -1)
	if err != nil {
		return nil, nil, fmt.Errorf("reading manifest %s: %w (is the URL right and the server up?)", url, err)
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
	// after unload returns.
	l.gen.Lock()
	defer l.gen.Unlock()
	if err := l.b.Close(); err != nil {
		// Nothing to do about it but say so: the model is gone either way.
		logf("closing the %s backend: %v", l.backend, err)
	}
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
		Loaded: true, Backend: l.backend, BytesFetched: cs.NetBytes, BytesFromCache: cs.CacheBytes,
		ShardCacheHits: cs.Hits, ShardCacheMiss: cs.Misses,
		StorageEvictions: cs.Store.Evictions, StorageSkipped: cs.Store.Skipped, StorageBytes: cs.Store.Bytes,
		ExpertsResident: es.ExpertsResident, ExpertsTotal: es.ExpertsTotal, ExpertBytesResident: es.ExpertBytesResident,
		ExpertHitRate: es.HitRate(), ExpertEvictions: es.ExpertEvictions, ExpertFetches: ps.ExpertFetches,
		Prefetched: ps.Prefetched, PrefetchHits: ps.PrefetchHits, PrefetchWasted: ps.PrefetchWasted, Substitutions: es.Substitutions,
		PrefillTokensPerSec: l.last.PrefillTokensPerSecond(), DecodeTokensPerSec: l.last.DecodeTokensPerSecond(),
		LastPromptTokens: l.last.Prompt, LastCompletionTokens: l.last.Generated,
	}
	if n := cs.Hits + cs.Misses; n > 0 {
		st.ShardHitRate = float64(cs.Hits) / float64(n)
	}
	if em := l.eng.ExpertMap(); slices.Max(em.Experts) > 0 {
		st.ExpertMap = &expertMap{Layers: len(em.Experts), Experts: slices.Max(em.Experts), Fetched: l.pack.Fetched(),
			Resident: em.Resident, LastRouted: em.LastRouted, HitRate: em.HitRate}
	}
	return st
}

// generate runs chat (messages) or completion (prompt) and returns the
// OpenAI-shaped result; with Stream set it also sends chunks.
func (s *session) generate(ctx context.Context, chat bool, p genParams, chunk func(any)) (any, error) {
	l, err := s.current()
	if err != nil {
		return nil, err
	}
	text, stopText, stopIDs, err := l.prompt(chat, p)
	if err != nil {
		return nil, err
	}
	sp := sample.Params{Temperature: 1, TopP: 1}
	if p.Temperature != nil {
		sp.Temperature = float32(*p.Temperature)
	}
	if p.TopP != nil {
		sp.TopP = float32(*p.TopP)
	}
	if p.Seed != nil {
		sp.Seed = *p.Seed
	}
	if err := sp.Validate(); err != nil {
		return nil, withCode("bad_request", err)
	}
	smp, err := sample.New(sp)
	if err != nil {
		return nil, withCode("bad_request", err)
	}
	if p.MaxTokens < 0 {
		return nil, withCode("bad_request", fmt.Errorf("max_tokens is %d: want 1 or more (or leave it out)", p.MaxTokens))
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

	prompt := l.encode(text, chat)
	if len(prompt) == 0 {
		return nil, withCode("bad_request", errors.New("the prompt is empty and the model has no BOS token to start from"))
	}
	if len(prompt) >= l.eng.MaxSeq() {
		return nil, withCode("bad_request", fmt.Errorf("the prompt is %d tokens; the context holds %d: shorten it", len(prompt), l.eng.MaxSeq()))
	}
	l.eng.Reset()
	dec := l.pack.Tokenizer.NewStream()
	if a, ok := l.pack.Tokenizer.(interface{ NewStreamAfter(int) *tokenizer.Stream }); ok {
		dec = a.NewStreamAfter(prompt[len(prompt)-1])
	}
	stop := stopper{stops: append(stopText, p.Stop...)}
	out := newResponse(chat, l.name)
	var ids []int
	var full []byte
	hitStop := false
	lastYield := time.Now()
	emit := func(piece string) {
		if piece == "" {
			return
		}
		full = append(full, piece...)
		if p.Stream {
			chunk(out.chunk(piece, nil))
		}
	}
	res, err := l.eng.Generate(gctx, prompt, engine.GenerateOptions{MaxTokens: p.MaxTokens, Sampler: smp, Stop: stopIDs},
		func(id int) error {
			ids = append(ids, id)
			piece, stopped := stop.push(dec.Push(id))
			emit(piece)
			if stopped {
				hitStop = true
				return errStop
			}
			// Go on js runs the page's messages only when every goroutine
			// waits; give it a moment now and then so interrupt gets in.
			if time.Since(lastYield) > 25*time.Millisecond {
				l.refresh()
				s.env.yield()
				lastYield = time.Now()
			}
			return nil
		})
	finish := res.StopReason
	switch {
	case hitStop:
		finish = "stop"
	case errors.Is(err, context.Canceled):
		finish = "abort"
	case err != nil:
		return nil, withCode("generate_failed", err)
	}
	if !hitStop {
		piece, _ := stop.push(dec.Flush())
		emit(piece + stop.flush())
	}
	l.last = res
	l.refresh()
	u := usage{Prompt: len(prompt), Completion: len(ids), Total: len(prompt) + len(ids)}
	if p.Stream {
		c := out.chunk("", &finish)
		c.Usage = &u
		chunk(c)
	}
	r := out.final(string(full), finish, u)
	if p.ReturnTokenIDs {
		r.PromptTokenIDs = prompt
		r.Choices[0].TokenIDs = ids
	}
	return r, nil
}

var errStop = errors.New("stop string reached")

// tokenText is the text of token id, "" when there is none.
func tokenText(t interface{ Token(int) string }, id int) string {
	if id < 0 {
		return ""
	}
	return t.Token(id)
}

func firstOr(ids []int, def int) int {
	if len(ids) == 0 {
		return def
	}
	return ids[0]
}

// prompt returns the prompt text, the stop strings and the stop ids
// (nil: the model's EOS) for a request.
func (l *loaded) prompt(chat bool, p genParams) (text string, stopText []string, stopIDs []int, err error) {
	if !chat {
		if p.Prompt == nil {
			return "", nil, nil, withCode("bad_request", errors.New("prompt is missing"))
		}
		return *p.Prompt, nil, nil, nil
	}
	if text, err = l.format.render(p.Messages); err != nil {
		return "", nil, nil, withCode("bad_request", err)
	}
	stopIDs = append(stopIDs, l.pack.Model.Config.EOS...)
	for _, st := range l.format.Stop {
		if ids := l.pack.Tokenizer.Encode(st); len(ids) == 1 && l.pack.Tokenizer.Token(ids[0]) == st {
			stopIDs = append(stopIDs, ids[0])
		} else {
			stopText = append(stopText, st)
		}
	}
	return text, stopText, stopIDs, nil
}

// encode tokenizes a prompt, with BOS when the pack (or the chat format)
// starts with it. A Jinja template writes its own bos_token text, so a chat
// prompt it rendered gets no second one (as apply_chat_template does).
func (l *loaded) encode(text string, chat bool) []int {
	ids := l.pack.Tokenizer.Encode(text)
	bos := l.pack.Model.Config.BOS
	if chat && l.format.tpl != nil {
		return ids
	}
	if bos >= 0 && (l.pack.AddBOS || (chat && l.format.BOS)) {
		ids = append([]int{bos}, ids...)
	}
	return ids
}

// The OpenAI shapes.

type usage struct {
	Prompt     int `json:"prompt_tokens"`
	Completion int `json:"completion_tokens"`
	Total      int `json:"total_tokens"`
}

type choice struct {
	Index        int       `json:"index"`
	Message      *message  `json:"message,omitempty"` // chat
	Delta        *delta    `json:"delta,omitempty"`   // chat chunk
	Text         *string   `json:"text,omitempty"`    // completion (and its chunks)
	FinishReason *string   `json:"finish_reason"`
	TokenIDs     []int     `json:"token_ids,omitempty"`
	Logprobs     *struct{} `json:"logprobs"`
}

type delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

type completion struct {
	ID             string   `json:"id"`
	Object         string   `json:"object"`
	Created        int64    `json:"created"`
	Model          string   `json:"model"`
	Choices        []choice `json:"choices"`
	Usage          *usage   `json:"usage,omitempty"`
	PromptTokenIDs []int    `json:"prompt_token_ids,omitempty"`
}

// response builds the objects of one generation.
type response struct {
	chat    bool
	id      string
	model   string
	created int64
	first   bool
}

func newResponse(chat bool, model string) *response {
	now := time.Now()
	prefix := "cmpl-"
	if chat {
		prefix = "chatcmpl-"
	}
	return &response{chat: chat, id: prefix + strconv.FormatInt(now.UnixNano(), 36), model: model, created: now.Unix(), first: true}
}

func (r *response) chunk(text string, finish *string) *completion {
	c := choice{FinishReason: finish}
	obj := "text_completion"
	if r.chat {
		obj = "chat.completion.chunk"
		c.Delta = &delta{Content: text}
		if r.first {
			c.Delta.Role = "assistant"
		}
	} else {
		c.Text = &text
	}
	r.first = false
	return &completion{ID: r.id, Object: obj, Created: r.created, Model: r.model, Choices: []choice{c}}
}

func (r *response) final(text, finish string, u usage) *completion {
	c := choice{FinishReason: &finish}
	obj := "text_completion"
	if r.chat {
		obj = "chat.completion"
		c.Message = &message{Role: "assistant", Content: text}
	} else {
		c.Text = &text
	}
	return &completion{ID: r.id, Object: obj, Created: r.created, Model: r.model, Choices: []choice{c}, Usage: &u}
}
