package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/tensor"
)

func TestStopper(t *testing.T) {
	tests := []struct {
		stops   []string
		pieces  []string
		want    string
		stopped bool
	}{
		{nil, []string{"ab", "cd"}, "abcd", false},
		{[]string{"."}, []string{"one", " two.", " three"}, "one two", true},
		{[]string{"\nUser:"}, []string{"hi", "\nUs", "er: x"}, "hi", true},
		{[]string{"\nUser:"}, []string{"hi", "\nUs", "ually"}, "hi\nUsually", false},
		{[]string{"xyz", "yq"}, []string{"axy", "q"}, "ax", true},
	}
	for _, tt := range tests {
		s := stopper{stops: tt.stops}
		var got strings.Builder
		stopped := false
		for _, p := range tt.pieces {
			out, st := s.push(p)
			got.WriteString(out)
			if st {
				stopped = true
				break
			}
		}
		if !stopped {
			got.WriteString(s.flush())
		}
		if got.String() != tt.want || stopped != tt.stopped {
			t.Errorf("stops %q, pieces %q: got %q (stopped %v), want %q (stopped %v)", tt.stops, tt.pieces, got.String(), stopped, tt.want, tt.stopped)
		}
	}
}

func TestChatFormats(t *testing.T) {
	msgs := []message{{"system", "Be brief."}, {"user", "Hi"}}
	tests := []struct {
		template, name, want string
	}{
		{"", "plain", "System: Be brief.\nUser: Hi\nAssistant:"},
		{"{% for m in messages %}<|im_start|>{{ m.role }}...", "chatml", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"{% unparseable %}<|start_header_id|>...", "llama3", "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"{% unknown jinja %}", "plain", "System: Be brief.\nUser: Hi\nAssistant:"},
		// real templates render through runtime/chat
		{"{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" +
			"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}", "jinja",
			"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"{{ bos_token }}{% for m in messages %}[{{ m.role | upper }}] {{ m.content | trim }}{{ eos_token }}{% endfor %}", "jinja",
			"<s>[SYSTEM] Be brief.</s>[USER] Hi</s>"},
	}
	for _, tt := range tests {
		f := formatFor(tt.template, "<s>", "</s>")
		got, err := f.render(msgs)
		if err != nil || f.Name != tt.name || got != tt.want {
			t.Errorf("template %q: format %s, render %q, %v; want %s, %q", tt.template, f.Name, got, err, tt.name, tt.want)
		}
	}
	if _, err := plainFormat.render([]message{{"robot", "x"}}); err == nil {
		t.Error("role robot: no error")
	}
	strict := formatFor("{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with a user message') }}{% endif %}", "", "")
	if _, err := strict.render(msgs); err == nil || !strings.Contains(err.Error(), "must start with a user") {
		t.Errorf("a template's raise_exception: %v", err)
	}
	if f := formatFor("{{ bos_token }}<|im_start|>{% for m in messages %}{{ m.content }}{% endfor %}", "", ""); f.Name != "jinja" || len(f.Stop) != 1 || f.Stop[0] != "<|im_end|>" {
		t.Errorf("ChatML-family Jinja template: format %s, stops %q", f.Name, f.Stop)
	}
}

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
	src := filepath.Join(t.TempDir(), "src")
	if err := synth.Write(src, synth.Default("olmoe")); err != nil {
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
		if _, e, _, progress := call(s, "load", loadParams{Model: url}); e != nil || progress == 0 {
			t.Fatalf("visit %d: load: %+v, %d progress messages", visit, e, progress)
		}
		res, e, _, _ := call(s, "complete", gen)
		if e != nil {
			t.Fatalf("visit %d: complete: %+v", visit, e)
		}
		var c completion
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
	whole, e, _, _ := call(s, "chat", map[string]any{"messages": []message{{"user", "hi"}}, "temperature": 0, "max_tokens": 5})
	if e != nil {
		t.Fatal(e)
	}
	streamed, e, chunks, _ := call(s, "chat", map[string]any{"messages": []message{{"user", "hi"}}, "temperature": 0, "max_tokens": 5, "stream": true})
	if e != nil {
		t.Fatal(e)
	}
	if string(whole[strings.Index(string(whole), `"choices"`):]) != string(streamed[strings.Index(string(streamed), `"choices"`):]) || chunks < 2 {
		t.Errorf("stream (%d chunks) %s\nwhole %s", chunks, streamed, whole)
	}
}

func TestNewBackend(t *testing.T) {
	noAdapter := func() (backend.Backend, error) { return nil, errors.New("no adapter") }
	gpu := func() (backend.Backend, error) { return cpu.New(cpu.Options{}), nil } // stands in for WebGPU
	tests := []struct {
		name, ask string
		gpu       func() (backend.Backend, error)
		want      string // backend, or the error code
		note      bool
	}{
		{"cpu", "cpu", gpu, "cpu", false},
		{"auto takes webgpu", "auto", gpu, "webgpu", false},
		{"default is auto", "", gpu, "webgpu", false},
		{"auto without adapter", "auto", noAdapter, "cpu", true},
		{"auto without webgpu", "auto", nil, "cpu", true},
		{"webgpu", "webgpu", gpu, "webgpu", false},
		{"webgpu without adapter", "webgpu", noAdapter, "unavailable", false},
		{"webgpu without webgpu", "webgpu", nil, "unavailable", false},
		{"unknown", "tpu", gpu, "bad_request", false},
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
			if got != tt.want || (note != "") != tt.note {
				t.Errorf("got %q, note %q; want %q, note %v", got, note, tt.want, tt.note)
			}
		})
	}
}
