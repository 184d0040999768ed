package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/hfrepo"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/loader"
	chatsession "github.com/moderuntime/mode/runtime/session"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestSessionCachesHFRanges: an hf: model's shards are kept in the store,
// converted to the session's formats (by default) or, with quant
// "source", as fetched, keyed by URL (which names the commit) and range:
// a second visit reads only the small files and the headers and converts
// nothing, a damaged entry is fetched again, a new commit fetches the
// weights again, and a server that does not say the commit gets nothing
// cached. gpt-oss, whose experts are stored fused (bf16 interleaved and
// input-major, or MXFP4), is rearranged on arrival and cached alike.
func TestSessionCachesHFRanges(t *testing.T) {
	for _, arch := range []struct {
		name  string
		mxfp4 bool
	}{{"olmoe", false}, {"gpt_oss", false}, {"gpt_oss", true}} {
		for _, quant := range []string{"", "source"} {
			t.Run(fmt.Sprintf("%s/mxfp4=%v/quant=%s", arch.name, arch.mxfp4, quant), func(t *testing.T) {
				testSessionCachesHFRanges(t, arch.name, arch.mxfp4, quant)
			})
		}
	}
}

func testSessionCachesHFRanges(t *testing.T, arch string, mxfp4 bool, quant string) {
	dir := filepath.Join(t.TempDir(), "m")
	o := synth.Default(arch)
	o.DType, o.Files, o.FFN, o.MXFP4 = tensor.BF16, 2, 64, mxfp4
	if err := synth.Write(dir, o); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	commit := strings.Repeat("a", 40)
	weightReads := 0
	noCommit := false // a mirror that does not say the commit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		c := commit
		rest, ok := strings.CutPrefix(r.URL.Path, "/test/m/resolve/")
		rev, name, _ := strings.Cut(rest, "/")
		if !ok || (rev != "main" && rev != c) || strings.Contains(name, "/") {
			mu.Unlock()
			http.NotFound(w, r)
			return
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			mu.Unlock()
			http.NotFound(w, r)
			return
		}
		if rg := r.Header.Get("Range"); strings.HasSuffix(name, ".safetensors") && !strings.HasPrefix(rg, "bytes=0-7") &&
			rg != "bytes=8-"+itoa(7+int64(binary.LittleEndian.Uint64(b))) {
			weightReads++
		}
		if !noCommit {
			w.Header().Set("X-Repo-Commit", c)
		}
		mu.Unlock()
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	}))
	defer srv.Close()
	store := &mapStore{m: map[string][]byte{}}
	gen := map[string]any{"prompt": "the cat", "temperature": 0, "max_tokens": 6, "return_token_ids": true}
	var first []int
	var st stats // of the last visit
	visit := func(name string) int {
		t.Helper()
		mu.Lock()
		before := weightReads
		mu.Unlock()
		s := newSession(env{store: store})
		defer s.unload()
		if _, e, _, _ := call(s, "load", loadParams{Model: "hf:test/m", HFEndpoint: srv.URL, Quant: quant}); e != nil {
			t.Fatalf("%s: load: %+v", name, e)
		}
		res, e, _, _ := call(s, "complete", gen)
		if e != nil {
			t.Fatalf("%s: complete: %+v", name, e)
		}
		var c chatsession.Completion
		if err := json.Unmarshal(res, &c); err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = c.Choices[0].TokenIDs
		} else if !slices.Equal(c.Choices[0].TokenIDs, first) {
			t.Errorf("%s generated %v, the first visit %v", name, c.Choices[0].TokenIDs, first)
		}
		raw, _, _, _ := call(s, "stats", nil)
		st = stats{}
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return weightReads - before
	}
	// with no store, what loads is what reading the files gives
	cs := newSession(env{})
	if _, e, _, _ := call(cs, "load", loadParams{Model: "hf:test/m", HFEndpoint: srv.URL, Quant: quant}); e != nil {
		t.Fatalf("load: %+v", e)
	}
	checkWeights(t, cs.model.pack, dir, quant)
	cs.unload()
	n := visit("first visit")
	if n == 0 {
		t.Fatal("the first visit read no weights")
	}
	converts := quant == ""
	if converts && (st.Conversions == 0 || st.ConvertedFromCache != 0) || !converts && (st.Conversions != 0 || st.ConvertedFromCache != 0) {
		t.Errorf("first visit: %d conversions, %d shards converted from the store", st.Conversions, st.ConvertedFromCache)
	}
	if got := visit("second visit"); got != 0 {
		t.Errorf("second visit: %d weight ranges fetched, want 0", got)
	}
	if st.Conversions != 0 || converts && st.ConvertedFromCache == 0 {
		t.Errorf("second visit: %d conversions, %d shards converted from the store; want none converted", st.Conversions, st.ConvertedFromCache)
	}
	if st.ExpertMap == nil || len(slices.Concat(st.ExpertMap.Cached...)) == 0 {
		t.Errorf("second visit: the expert map shows no expert cached: %+v", st.ExpertMap)
	}
	// damage one stored range: it alone is fetched again
	store.mu.Lock()
	for k, b := range store.m {
		if strings.Contains(k, "/sha256/") && len(b) > 64 {
			b[len(b)/2] ^= 1
			break
		}
	}
	store.mu.Unlock()
	// (a converted entry is a shard, whose tensors may lie in several
	// ranges; a range entry is one range)
	if got := visit("damaged entry"); !converts && got != 1 || converts && (got < 1 || got >= n) {
		t.Errorf("after damaging one entry: %d weight ranges fetched, want 1 shard's (the first visit fetched %d)", got, n)
	}
	mu.Lock()
	commit = strings.Repeat("b", 40)
	mu.Unlock()
	if got := visit("new commit"); got != n {
		t.Errorf("a new commit: %d weight ranges fetched, want the first visit's %d", got, n)
	}
	// without X-Repo-Commit the URLs name the branch: nothing is kept
	mu.Lock()
	noCommit = true
	mu.Unlock()
	for _, name := range []string{"unpinned", "unpinned again"} {
		if got := visit(name); got != n {
			t.Errorf("%s: %d weight ranges fetched, want %d (no caching by a branch's URL)", name, got, n)
		}
	}
	// no storage: nothing kept, the stats (with the expert map) still work
	ns := newSession(env{})
	if _, e, _, _ := call(ns, "load", loadParams{Model: "hf:test/m", HFEndpoint: srv.URL, Quant: quant}); e != nil {
		t.Fatalf("no storage: load: %+v", e)
	}
	if _, e, _, _ := call(ns, "complete", gen); e != nil {
		t.Fatalf("no storage: complete: %+v", e)
	}
	raw, _, _, _ := call(ns, "stats", nil)
	if err := json.Unmarshal(raw, &st); err != nil || st.ConvertedFromCache != 0 || converts && st.Conversions == 0 {
		t.Errorf("no storage: stats %s, %v", raw, err)
	}
	ns.unload()
	if _, e, _, _ := call(newSession(env{store: store}), "load", loadParams{Model: "hf:test/gone", HFEndpoint: srv.URL}); e == nil || e.Code != "load_failed" || !strings.Contains(e.Message, "hf:test/gone") {
		t.Errorf("a missing repository: %+v", e)
	}
	if _, e, _, _ := call(newSession(env{store: store}), "load", loadParams{Model: "hf:test/m", HFEndpoint: srv.URL, Quant: "q3"}); e == nil || e.Code != "bad_request" {
		t.Errorf("quant q3: %+v", e)
	}
}

// checkWeights checks that the pack loaded holds the tensors reading the
// whole checkpoint in dir gives, converted alike.
func checkWeights(t *testing.T, pk *loader.Pack, dir, quant string) {
	t.Helper()
	got, err := pk.Whole(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, err := hf.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	q := hfrepo.DefaultQuant
	if quant != "" {
		if q, err = hfrepo.ParseQuant(quant); err != nil {
			t.Fatal(err)
		}
	}
	conv := q.Converter(want.Config)
	for _, sp := range want.Config.Spec() {
		w := want.Weights[sp.Name]
		if conv != nil {
			if w, err = conv(w); err != nil {
				t.Fatal(err)
			}
		}
		if g := got.Weights[sp.Name]; g == nil || g.DType != w.DType || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("%s: %v, reading the checkpoint %v, or bytes differ", sp.Name, g, w.DType)
		}
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
