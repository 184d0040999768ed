package hfrepo

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/modelpack/synth"
)

// FuzzParseLocation: any string parses to a location that round-trips
// and whose URL stays inside the endpoint, or is refused.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"hf:allenai/OLMoE-1B-7B-0125-Instruct", "hf:a/b@refs/pr/1", "hf:a/b@" + testCommit, "hf:/", "hf:a/b@../../x", "hf:a/b@%2e%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLocation(s)
		if err != nil {
			return
		}
		if l2, err := ParseLocation(l.String()); err != nil || l2 != l {
			t.Fatalf("%q: %+v does not round-trip (%q: %+v, %v)", s, l, l.String(), l2, err)
		}
		base := resolveBase("https://h.example", l.Repo, l.Revision)
		rest := strings.TrimPrefix(base, "https://h.example/")
		if strings.Count(rest, "/") != 4 || strings.Contains(rest, "..") || strings.ContainsAny(rest, "?#") {
			t.Fatalf("%q: resolve base %q leaves its place", s, base)
		}
	})
}

// roundTrip serves files in the hub's layout from memory, without a
// network, so the fuzzer runs fast.
type roundTrip map[string][]byte

func (m roundTrip) RoundTrip(r *http.Request) (*http.Response, error) {
	name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	w := httptest.NewRecorder()
	w.Header().Set("X-Repo-Commit", testCommit)
	if b, ok := m[name]; ok {
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	} else {
		http.NotFound(w, r)
	}
	resp := w.Result()
	resp.Request = r
	return resp, nil
}

// FuzzIndexHeader: whatever bytes a server hands out as model.safetensors
// of an OLMoE or a gpt-oss repository (whose experts are fused), Index
// either builds a manifest whose every piece lies inside the file or fails
// with an error naming the repository; it never panics, and reads only the
// header. Rearranging any shard's bytes never panics either.
func FuzzIndexHeader(f *testing.F) {
	repos := map[bool]map[string][]byte{}
	index := func(gptOss bool, b []byte) (*Repo, error) {
		m := roundTrip{}
		for k, v := range repos[gptOss] {
			m[k] = v
		}
		m[safetensors.SingleFile] = b
		return Index(context.Background(), Location{Repo: "test/fuzz", Revision: "main"},
			Options{Endpoint: "http://hub.invalid", HTTP: httpOptions(&http.Client{Transport: m})})
	}
	for _, gptOss := range []bool{false, true} {
		dir := f.TempDir()
		// The smallest models the importer takes: the fuzzer mutates the
		// whole file, and every byte past the header is data Index never
		// reads. At the default sizes (1 MB) each run took milliseconds and
		// minimising an interesting input held the worker for its whole
		// budget.
		o := synth.Default("olmoe")
		o.Layers, o.Experts, o.TopK = 1, 2, 1
		o.Dim, o.Heads, o.KVHeads, o.FFN, o.Vocab, o.MaxSeq = 8, 2, 1, 8, 300, 16
		if gptOss {
			o = synth.Default("gpt_oss")
			o.Layers, o.Experts, o.TopK, o.FFN, o.Vocab, o.MaxSeq = 1, 2, 1, 32, 300, 16
		}
		if err := synth.Write(dir, o); err != nil {
			f.Fatal(err)
		}
		files := map[string][]byte{}
		for _, n := range []string{"config.json", "tokenizer.json", "tokenizer_config.json", safetensors.SingleFile} {
			b, err := readFile(dir, n)
			if err != nil {
				f.Fatal(err)
			}
			files[n] = b
		}
		repos[gptOss] = files
		good := files[safetensors.SingleFile]
		// The fuzzer starts from files that index, so that it explores
		// the checks past the header's syntax.
		if _, err := index(gptOss, good); err != nil {
			f.Fatalf("the valid seed (gpt-oss %v): %v", gptOss, err)
		}
		f.Add(gptOss, good)
		f.Add(gptOss, good[:len(good)/2])
	}
	f.Add(false, rawSafetensors([]rawTensor{{name: "x", dtype: "BF16", shape: []int{4}, data: make([]byte, 8), end: 1 << 40}}))
	f.Add(true, []byte("\xff\xff\xff\xff\xff\xff\xff\x7f{}"))
	f.Fuzz(func(t *testing.T, gptOss bool, b []byte) {
		r, err := index(gptOss, b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "hf:test/fuzz: ") {
				t.Fatalf("error does not name the repository: %v", err)
			}
			return
		}
		for _, s := range r.Manifest.Shards {
			for _, p := range s.Pieces {
				if p.Offset < 0 || p.Length < 0 || p.Offset+p.Length > int64(len(b)) {
					t.Fatalf("shard %s: piece [%d, +%d) outside the %d-byte file", s.ID, p.Offset, p.Length, len(b))
				}
			}
			if s.Size <= 1<<20 {
				data := make([]byte, s.Size)
				for _, short := range [][]byte{data, data[:len(data)/2]} {
					r.Rearrange(&s, short) // an error is fine, a panic is not
				}
			}
		}
	})
}

// FuzzKeptIndex: whatever bytes storage hands back as a kept index, Index
// built from them either gives a valid manifest at the commit it was
// kept for or fails; it never panics and makes no request (the replay is
// offline).
func FuzzKeptIndex(f *testing.F) {
	dir := f.TempDir()
	o := synth.Default("olmoe")
	o.Layers, o.Experts, o.TopK = 1, 2, 1
	o.Dim, o.Heads, o.KVHeads, o.FFN, o.Vocab, o.MaxSeq = 8, 2, 1, 8, 300, 16
	if err := synth.Write(dir, o); err != nil {
		f.Fatal(err)
	}
	files := roundTrip{}
	for _, n := range []string{"config.json", "tokenizer.json", "tokenizer_config.json", safetensors.SingleFile} {
		b, err := readFile(dir, n)
		if err != nil {
			f.Fatal(err)
		}
		files[n] = b
	}
	kp := &mapKeeper{m: map[string][]byte{}}
	const endpoint = "http://hub.invalid"
	loc := Location{Repo: "test/fuzz", Revision: testCommit}
	if _, err := Index(context.Background(), loc, Options{Endpoint: endpoint, Keep: kp, HTTP: httpOptions(&http.Client{Transport: files})}); err != nil {
		f.Fatal(err)
	}
	for _, b := range kp.m {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte(keptMagic + "\x02\x00\x00\x00[]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k := &keptIndex{keep: kp, loc: loc, endpoint: endpoint, quant: DefaultQuant, logf: t.Logf}
		r, err := k.open(context.Background(), b, testCommit)
		if err != nil {
			return
		}
		if r.Commit != testCommit || !r.FromKept {
			t.Fatalf("commit %s, kept %v", r.Commit, r.FromKept)
		}
		if err := r.Manifest.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}
