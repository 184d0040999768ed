package hfrepo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/shard"
)

// mapKeeper is a Keeper in memory.
type mapKeeper struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (k *mapKeeper) Get(_ context.Context, key string) ([]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.m[key]
	return bytes.Clone(b), ok
}

func (k *mapKeeper) Put(_ context.Context, key string, b []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[key] = bytes.Clone(b)
}

func (k *mapKeeper) Drop(_ context.Context, key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
}

// only returns the one entry k holds.
func (k *mapKeeper) only(t *testing.T) (string, []byte) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.m) != 1 {
		t.Fatalf("%d indexes kept, want 1", len(k.m))
	}
	for key, b := range k.m {
		return key, b
	}
	return "", nil
}

func manifestJSON(t *testing.T, r *Repo) string {
	t.Helper()
	b, err := json.Marshal(r.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKeptIndex: with Options.Keep, a second Index of a commit is built
// from the kept answers with no request when the location names the
// commit, and with the one request for config.json (X-Repo-Commit) when
// it names a branch; the manifest and the ETags are the first Index's. A
// kept entry that is damaged or lies (cut, a list that does not add up, a
// config or header that does not parse, another commit, an answer
// missing or of the wrong size) is dropped and the repository indexed
// from the network again, and the entry then kept is good.
func TestKeptIndex(t *testing.T) {
	_, files := synthRepo(t, "olmoe", func(o *synth.Options) { o.FFN = 64 })
	h := newHub(t, "test/olmoe", files)
	kp := &mapKeeper{m: map[string][]byte{}}
	o := Options{Endpoint: h.endpoint(), Quant: DefaultQuant, Keep: kp}
	mark := 0
	index := func(t *testing.T, rev string) (*Repo, []string) {
		t.Helper()
		r, err := Index(context.Background(), Location{Repo: "test/olmoe", Revision: rev}, o)
		if err != nil {
			t.Fatal(err)
		}
		reqs, n := h.requestsSince(mark)
		mark = n
		return r, reqs
	}
	first, reqs := index(t, "main")
	if first.FromKept || len(reqs) < 8 {
		t.Fatalf("first Index: kept %v, %d requests", first.FromKept, len(reqs))
	}
	key, good := kp.only(t)
	if want := keptKey(h.endpoint(), "test/olmoe", testCommit); key != want {
		t.Errorf("kept under %q, want %q", key, want)
	}
	full := len(reqs)
	same := func(t *testing.T, r *Repo) {
		t.Helper()
		if manifestJSON(t, r) != manifestJSON(t, first) || !bytes.Equal(r.Tokenizer, first.Tokenizer) || !bytes.Equal(r.TokenizerConfig, first.TokenizerConfig) {
			t.Error("the index differs from the first one")
		}
		for _, f := range []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} {
			u := first.Base + f
			if first.ETag(u) == "" || r.ETag(u) != first.ETag(u) {
				t.Errorf("ETag of %s: %q, first %q", f, r.ETag(u), first.ETag(u))
			}
		}
	}
	for _, c := range []struct {
		rev  string
		want []string
	}{
		{"main", []string{"/test/olmoe/resolve/main/config.json"}},
		{testCommit, nil},
	} {
		r, reqs := index(t, c.rev)
		if !r.FromKept || !slices.Equal(reqs, c.want) {
			t.Errorf("@%s: kept %v, requests %q, want %q", c.rev, r.FromKept, reqs, c.want)
		}
		same(t, r)
	}

	log, err := decodeKept(good)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(log []recorded) []recorded) func([]byte) []byte {
		return func([]byte) []byte {
			l := slices.Clone(log)
			for i, r := range l {
				if r.a != nil {
					a := *r.a
					l[i].a = &a
				}
			}
			return encodeKept(f(l))
		}
	}
	answerOf := func(log []recorded, file string, off int64) *answer {
		for _, r := range log {
			if r.file == file && r.off == off && r.a != nil {
				return r.a
			}
		}
		t.Fatalf("no answer for %s at %d", file, off)
		return nil
	}
	for _, c := range []struct {
		name string
		bad  func([]byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"not an index", func([]byte) []byte { return []byte("hello") }},
		{"cut", func(b []byte) []byte { return b[:len(b)/2] }},
		{"list length lies", func(b []byte) []byte {
			b = bytes.Clone(b)
			binary.LittleEndian.PutUint32(b[len(keptMagic):], 1<<31)
			return b
		}},
		{"bytes past the answers", func(b []byte) []byte { return append(bytes.Clone(b), 0) }},
		{"config of another architecture", edit(func(l []recorded) []recorded {
			a := answerOf(l, "config.json", 0)
			a.body = []byte(`{"architectures": ["NoSuchForCausalLM"], "model_type": "nosuch"}`)
			a.total = int64(len(a.body))
			return l
		})},
		{"another commit", edit(func(l []recorded) []recorded {
			answerOf(l, "config.json", 0).commit = strings.Repeat("ab", 20)
			return l
		})},
		{"header not JSON", edit(func(l []recorded) []recorded {
			a := answerOf(l, "model-00002-of-00002.safetensors", 8)
			a.body = bytes.Repeat([]byte("}"), len(a.body))
			return l
		})},
		{"header range short", edit(func(l []recorded) []recorded {
			a := answerOf(l, "model-00001-of-00002.safetensors", 8)
			a.body = a.body[:len(a.body)-1]
			return l
		})},
		{"tokenizer not JSON", edit(func(l []recorded) []recorded {
			a := answerOf(l, "tokenizer.json", 0)
			a.body, a.total = []byte("{"), 1
			return l
		})},
		{"an answer missing", edit(func(l []recorded) []recorded { return l[:len(l)-1] })},
	} {
		t.Run(c.name, func(t *testing.T) {
			kp.Put(context.Background(), key, c.bad(good))
			r, reqs := index(t, testCommit)
			if r.FromKept || len(reqs) != full {
				t.Errorf("kept %v, %d requests, want the %d of a first Index", r.FromKept, len(reqs), full)
			}
			same(t, r)
			if _, b := kp.only(t); !bytes.Equal(b, good) {
				if _, err := decodeKept(b); err != nil {
					t.Errorf("the index kept again is not good: %v", err)
				}
			}
			if r, reqs := index(t, testCommit); !r.FromKept || len(reqs) != 0 {
				t.Errorf("after rebuilding: kept %v, requests %q", r.FromKept, reqs)
			}
		})
	}
}

// TestKeptETagChanged: a repository opened from a kept index whose files
// the CDN now serves under other ETags (moved under the same commit)
// reads its headers again once, takes the new ETags, keeps them and
// loads; when an answer still differs after that, the read fails as
// without a kept index, and the headers were read again only once.
func TestKeptETagChanged(t *testing.T) {
	_, files := synthRepo(t, "olmoe", func(o *synth.Options) { o.FFN = 64 })
	h := newHub(t, "test/olmoe", files)
	kp := &mapKeeper{m: map[string][]byte{}}
	o := Options{Endpoint: h.endpoint(), Quant: DefaultQuant, Keep: kp, HTTP: shard.HTTPOptions{Backoff: time.Millisecond, Retries: 2, Logf: t.Logf}}
	ctx := context.Background()
	loc := Location{Repo: "test/olmoe", Revision: testCommit}
	pk, first, err := Open(ctx, loc, o)
	if err != nil {
		t.Fatal(err)
	}
	good, err := pk.LoadExpert(ctx, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	headerReads := func(reqs []string) int {
		n := 0
		for _, r := range reqs {
			if strings.HasPrefix(r, "/cdn/") && strings.HasSuffix(r, " bytes=0-7") {
				n++
			}
		}
		return n
	}
	t.Run("moved", func(t *testing.T) {
		h.mu.Lock()
		h.etagSalt = "-moved"
		h.mu.Unlock()
		_, mark := h.requestsSince(0)
		pk, r, err := Open(ctx, loc, o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pk.LoadExpert(ctx, 1, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if !bytes.Equal(got[i].Data, good[i].Data) {
				t.Errorf("tensor %s differs", got[i].Name)
			}
		}
		reqs, _ := h.requestsSince(mark)
		if !r.FromKept || headerReads(reqs) != 2 {
			t.Errorf("kept %v; headers read %d times for 2 files: %q", r.FromKept, headerReads(reqs), reqs)
		}
		u := r.Base + "model-00001-of-00002.safetensors"
		if !strings.Contains(r.ETag(u), "-moved") {
			t.Errorf("ETag %q after reading the headers again", r.ETag(u))
		}
		again, err := Index(ctx, loc, o)
		if err != nil || !again.FromKept || again.ETag(u) != r.ETag(u) {
			t.Errorf("the new ETags were not kept: %v, %q", err, again.ETag(u))
		}
		if first.ETag(u) == r.ETag(u) {
			t.Error("the test changed no ETag")
		}
	})
	t.Run("still different", func(t *testing.T) {
		pk, r, err := Open(ctx, loc, o)
		if err != nil || !r.FromKept {
			t.Fatalf("%v, kept %v", err, r != nil && r.FromKept)
		}
		var expert string
		for _, s := range r.Manifest.Shards {
			if s.Layer == 1 && s.Expert == 3 {
				expert = s.Pieces[0].File[strings.LastIndex(s.Pieces[0].File, "/")+1:]
			}
		}
		h.mu.Lock()
		h.alter = func(name, rg string, w http.ResponseWriter, body []byte) bool {
			if name != expert || strings.HasPrefix(rg, "bytes=0-") || strings.HasPrefix(rg, "bytes=8-") {
				return false
			}
			w.Header().Set("ETag", `"another-version"`)
			return false
		}
		h.mu.Unlock()
		defer func() { h.mu.Lock(); h.alter = nil; h.mu.Unlock() }()
		_, mark := h.requestsSince(0)
		_, err = pk.LoadExpert(ctx, 1, 3)
		if err == nil || !strings.Contains(err.Error(), "its bytes changed on the server") {
			t.Fatalf("error %v", err)
		}
		if reqs, _ := h.requestsSince(mark); headerReads(reqs) != 2 {
			t.Errorf("headers read %d times for 2 files: %q", headerReads(reqs), reqs)
		}
	})
}
