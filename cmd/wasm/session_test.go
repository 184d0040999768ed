package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/cpu"
	chatsession "github.com/moderuntime/mode/runtime/session"
	"github.com/moderuntime/mode/runtime/tensor"
)

// mapStore is a blobStore in memory.
type mapStore struct {
	mu   sync.Mutex
	m    map[string][]byte
	gets int
}

func (s *mapStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	b, ok := s.m[key]
	return b, ok, nil
}

func (s *mapStore) Put(_ context.Context, key string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = b
	return nil
}

// servePack packs a synthetic OLMoE model and serves it, counting the
// requests for shard files.
func servePack(t *testing.T) (url string, shardRequests func() int) {
	t.Helper()
	return servePackOf(t, synth.Default("olmoe"))
}

// servePackOf is servePack for the synthetic model o.
func servePackOf(t *testing.T, o synth.Options) (url string, shardRequests func() int) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := synth.Write(src, o); err != nil {
		t.Fatal(err)
	}
	in, err := importer.Open(src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dir := filepath.Join(t.TempDir(), "pack")
	if _, err := pack.Write(dir, in.Source, in.Tokenizer, in.ChatTemplate, pack.Options{Quant: tensor.Q8_0}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	fs := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/shards/") {
			mu.Lock()
			n++
			mu.Unlock()
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/manifest.json", func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// call sends one request and returns its result (or error) and chunks.
func call(s *session, op string, params any) (result json.RawMessage, errMsg *errorMsg, chunks, progress int) {
	raw, _ := json.Marshal(params)
	s.handle(context.Background(), request{ID: 1, Op: op, Params: raw}, func(r reply) {
		switch r.Type {
		case "chunk":
			chunks++
		case "progress":
			progress++
		case "result":
			result, _ = json.Marshal(r.Data)
		case "error":
			errMsg = r.Error
		}
	})
	return result, errMsg, chunks, progress
}

func TestSessionPersistsShards(t *testing.T) {
	url, shardRequests := servePack(t)
	store := &mapStore{m: map[string][]byte{}}
	gen := map[string]any{"prompt": "the cat", "temperature": 0, "max_tokens": 6, "return_token_ids": true}
	var first []int
	for visit, wantRequests := range []bool{true, false} {
		s := newSession(env{store: store})
		before := shardRequests()
		loadRes, e, _, progress := call(s, "load", loadParams{Model: url})
		if e != nil || progress == 0 {
			t.Fatalf("visit %d: load: %+v, %d progress messages", visit, e, progress)
		}
		var lr loadResult
		if err := json.Unmarshal(loadRes, &lr); err != nil || lr.ExpertBytes <= 0 {
			t.Errorf("visit %d: load result %s (%v): want expertBytes", visit, loadRes, err)
		}
		res, e, _, _ := call(s, "complete", gen)
		if e != nil {
			t.Fatalf("visit %d: complete: %+v", visit, e)
		}
		var c chatsession.Completion
		if err := json.Unmarshal(res, &c); err != nil {
			t.Fatal(err)
		}
		if visit == 0 {
			first = c.Choices[0].TokenIDs
		} else if !slices.Equal(c.Choices[0].TokenIDs, first) {
			t.Errorf("visit %d generated %v, first visit %v", visit, c.Choices[0].TokenIDs, first)
		}
		if got := shardRequests() - before; (got > 0) != wantRequests {
			t.Errorf("visit %d: %d shard requests", visit, got)
		}
		// The page learns from the worker which experts are stored: with no
		// budget, every one fetched so far.
		raw, _, _, _ := call(s, "stats", nil)
		var st stats
		if err := json.Unmarshal(raw, &st); err != nil || st.ExpertMap == nil {
			t.Fatalf("visit %d: stats %s (%v)", visit, raw, err)
		}
		if em := st.ExpertMap; !reflect.DeepEqual(em.Cached, em.Fetched) || len(slices.Concat(em.Cached...)) == 0 {
			t.Errorf("visit %d: the store holds experts %v; fetched %v", visit, em.Cached, em.Fetched)
		}
		s.unload()
	}
}

func TestSessionErrors(t *testing.T) {
	url, _ := servePack(t)
	tests := []struct {
		op     string
		params any
		code   string
	}{
		{"complete", map[string]any{"prompt": "x"}, "not_loaded"},
		{"load", loadParams{Model: url, Backend: "webgpu"}, "unavailable"},
		{"load", loadParams{Model: url, Backend: "tpu"}, "bad_request"},
		{"load", loadParams{Model: url, Cache: "disk"}, "bad_request"},
		{"load", loadParams{}, "bad_request"},
		{"load", loadParams{Model: strings.TrimSuffix(url, "manifest.json") + "missing.json"}, "load_failed"},
		{"dance", nil, "bad_request"},
	}
	for _, tt := range tests {
		s := newSession(env{})
		_, e, _, _ := call(s, tt.op, tt.params)
		if e == nil || e.Code != tt.code || e.Message == "" {
			t.Errorf("%s %+v: error %+v, want code %s", tt.op, tt.params, e, tt.code)
		}
	}
}

func TestSessionStreamAndStop(t *testing.T) {
	url, _ := servePack(t)
	s := newSession(env{})
	if _, e, _, _ := call(s, "load", loadParams{Model: url, Cache: "none"}); e != nil {
		t.Fatal(e)
	}
	whole, e, _, _ := call(s, "chat", map[string]any{"messages": []chatsession.Message{{Role: "user", Content: "hi"}}, "temperature": 0, "max_tokens": 5})
	if e != nil {
		t.Fatal(e)
	}
	streamed, e, chunks, _ := call(s, "chat", map[string]any{"messages": []chatsession.Message{{Role: "user", Content: "hi"}}, "temperature": 0, "max_tokens": 5, "stream": true})
	if e != nil {
		t.Fatal(e)
	}
	var w, st chatsession.Completion
	if err := errors.Join(json.Unmarshal(whole, &w), json.Unmarshal(streamed, &st)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w.Choices, st.Choices) || chunks < 2 {
		t.Errorf("stream (%d chunks) %s\nwhole %s", chunks, streamed, whole)
	}
	// The same messages again reuse the cache of all but the prompt's last
	// id, and the page sees it in usage and stats.
	if u := st.Usage; u.PromptDetails == nil || u.PromptDetails.CachedTokens != u.Prompt-1 || u.PrefilledTokens != 1 {
		t.Errorf("repeated request: usage %s", streamed)
	}
	if got := s.stats(); got.LastCachedTokens != st.Usage.Prompt-1 || got.LastPrefilledTokens != 1 || got.LastPromptTokens != st.Usage.Prompt {
		t.Errorf("stats after a repeated request: %d cached, %d prefilled of %d", got.LastCachedTokens, got.LastPrefilledTokens, got.LastPromptTokens)
	}
}

func TestNewBackend(t *testing.T) {
	type gpuFunc = func() (backend.Backend, gpuInfo, error)
	noAdapter := func() (backend.Backend, gpuInfo, error) { return nil, gpuInfo{}, errors.New("no adapter") }
	// A CPU backend stands in for WebGPU on a hardware and a software adapter.
	gpu := func() (backend.Backend, gpuInfo, error) {
		return cpu.New(cpu.Options{}), gpuInfo{Adapter: "Radeon"}, nil
	}
	soft := func() (backend.Backend, gpuInfo, error) {
		return cpu.New(cpu.Options{}), gpuInfo{Adapter: "swiftshader", Software: true}, nil
	}
	tests := []struct {
		name, ask string
		gpu       gpuFunc
		want      string // backend, or the error code
		note      string // a word the note must hold
	}{
		{"cpu", "cpu", gpu, "cpu", "asked"},
		{"auto takes webgpu", "auto", gpu, "webgpu", "Radeon, a hardware adapter"},
		{"default is auto", "", gpu, "webgpu", "hardware"},
		{"auto skips a software adapter", "auto", soft, "cpu", "swiftshader, is a software renderer"},
		{"auto without adapter", "auto", noAdapter, "cpu", "no adapter"},
		{"auto without webgpu", "auto", nil, "cpu", "no WebGPU"},
		{"webgpu", "webgpu", gpu, "webgpu", "as asked"},
		{"webgpu forced on a software adapter", "webgpu", soft, "webgpu", "software renderer, as asked"},
		{"webgpu without adapter", "webgpu", noAdapter, "unavailable", ""},
		{"webgpu without webgpu", "webgpu", nil, "unavailable", ""},
		{"unknown", "tpu", gpu, "bad_request", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, got, note, err := newBackend(tt.ask, 1, tt.gpu)
			if err != nil {
				var ce *codedError
				if !errors.As(err, &ce) || ce.code != tt.want {
					t.Fatalf("error %v, want %s", err, tt.want)
				}
				if ce.code == "unavailable" && !strings.Contains(err.Error(), `"cpu"`) {
					t.Errorf("error %q does not offer the cpu backend", err)
				}
				return
			}
			defer b.Close()
			if got != tt.want || !strings.Contains(note, tt.note) {
				t.Errorf("got %q, note %q; want %q, a note with %q", got, note, tt.want, tt.note)
			}
		})
	}
}

// countingBackend is the CPU backend as a backend.Counter that counts a
// forward step's Embed as one submission of two dispatches of "embed".
type countingBackend struct {
	*cpu.Backend
	embeds int
}

func (c *countingBackend) Embed(dst backend.Buf, table backend.Weight, ids []int) {
	c.embeds++
	c.Backend.Embed(dst, table, ids)
}

func (c *countingBackend) Counts() backend.Counts {
	return backend.Counts{Submissions: c.embeds, Dispatches: 2 * c.embeds, Kernels: map[string]int{"embed": c.embeds, "unused": 3}}
}

// TestSessionGPUStats: on a backend that counts its device work (the
// WebGPU backend in a browser), stats carry the totals and the last
// generation's work per decoded token, the steps after the first token;
// on the CPU they are absent.
func TestSessionGPUStats(t *testing.T) {
	url, _ := servePack(t)
	cb := &countingBackend{Backend: cpu.New(cpu.Options{})}
	s := newSession(env{gpu: func() (backend.Backend, gpuInfo, error) { return cb, gpuInfo{Adapter: "counting"}, nil }})
	if _, e, _, _ := call(s, "load", loadParams{Model: url, Cache: "none", Backend: "webgpu"}); e != nil {
		t.Fatal(e)
	}
	for _, n := range []int{6, 3} {
		if _, e, _, _ := call(s, "complete", map[string]any{"prompt": "the cat", "temperature": 0, "max_tokens": n}); e != nil {
			t.Fatal(e)
		}
		g := s.stats().GPU
		if g == nil {
			t.Fatal("no gpu stats on a counting backend")
		}
		want := gpuStats{Submissions: cb.embeds, Dispatches: 2 * cb.embeds, Kernels: map[string]int{"embed": cb.embeds, "unused": 3},
			DecodeTokens: n - 1, SubmissionsPerToken: 1, DispatchesPerToken: 2, KernelsPerToken: map[string]float64{"embed": 1}}
		if !reflect.DeepEqual(*g, want) {
			t.Errorf("max_tokens %d: gpu stats %+v, want %+v", n, *g, want)
		}
	}
	cs := newSession(env{})
	if _, e, _, _ := call(cs, "load", loadParams{Model: url, Cache: "none", Backend: "cpu"}); e != nil {
		t.Fatal(e)
	}
	if g := cs.stats().GPU; g != nil {
		t.Errorf("gpu stats on the cpu backend: %+v", *g)
	}
}
