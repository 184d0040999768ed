package hfrepo

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
)

func TestParseLocation(t *testing.T) {
	for _, tt := range []struct {
		in, repo, rev, err string
	}{
		{"hf:allenai/OLMoE-1B-7B-0125-Instruct", "allenai/OLMoE-1B-7B-0125-Instruct", "main", ""},
		{"hf:test/olmoe-tiny@v1.0", "test/olmoe-tiny", "v1.0", ""},
		{"hf:test/m@refs/pr/1", "test/m", "refs/pr/1", ""},
		{"hf:test/m@" + testCommit, "test/m", testCommit, ""},
		{"hf:test", "", "", "ORG/REPO"},
		{"hf:test/m/x", "", "", "ORG/REPO"},
		{"hf:../m", "", "", "ORG/REPO"},
		{"hf:a/b@", "", "", "revision"},
		{"hf:a/b@x y", "", "", "revision"},
		{"hf:a/b@a..b", "", "", "revision"},
		{"hf:a/b@a#b", "", "", "revision"},
		{"test/m", "", "", "hf:"},
	} {
		l, err := ParseLocation(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseLocation(%q) = %v, %v; want an error about %q", tt.in, l, err, tt.err)
			}
			continue
		}
		if err != nil || l.Repo != tt.repo || l.Revision != tt.rev {
			t.Errorf("ParseLocation(%q) = %+v, %v", tt.in, l, err)
		}
		if l2, err := ParseLocation(l.String()); err != nil || l2 != l {
			t.Errorf("%q does not round-trip: %q, %v", tt.in, l.String(), err)
		}
	}
	if got := resolveBase("http://h/", "a/b", "refs/pr/1"); got != "http://h/a/b/resolve/refs%2Fpr%2F1/" {
		t.Errorf("resolveBase: %s", got)
	}
}

// TestIndexLikePackIndex: for every family modelpack index can point into
// (not gpt-oss, whose fused experts need rearranging: TestOpenGptOss),
// indexing a two-file bf16 repository over the hub
// layout gives the manifest modelpack index writes for the same directory
// (the same config, shards and tensors at the same byte ranges), with
// every piece at the commit the server named, from only the small files
// and two header reads per safetensors file.
func TestIndexLikePackIndex(t *testing.T) {
	for _, arch := range []string{"llama", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "granitemoe", "granitemoeshared", "deepseek_v2", "deepseek_v3"} {
		t.Run(arch, func(t *testing.T) {
			dir, files := synthRepo(t, arch, nil)
			h := newHub(t, "test/"+arch, files)
			r, err := Index(context.Background(), Location{Repo: "test/" + arch, Revision: "main"}, Options{Endpoint: h.endpoint()})
			if err != nil {
				t.Fatal(err)
			}
			want, err := pack.Index(context.Background(), shard.NewDir(dir), pack.IndexOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := r.Manifest
			if r.Commit != testCommit || !strings.HasSuffix(r.Base, "/resolve/"+testCommit+"/") {
				t.Errorf("commit %q base %q", r.Commit, r.Base)
			}
			if got.Model.Arch != want.Model.Arch || got.Model.Layers != want.Model.Layers || len(got.Shards) != len(want.Shards) || got.ChatTemplate != want.ChatTemplate || got.Tokenizer.SHA256 != want.Tokenizer.SHA256 {
				t.Fatalf("manifest differs from modelpack index's: %+v vs %+v", got.Model, want.Model)
			}
			for i := range want.Shards {
				g, w := got.Shards[i], want.Shards[i]
				if g.ID != w.ID || g.Kind != w.Kind || g.Size != w.Size || !g.Unverified {
					t.Fatalf("shard %d: %s %s %d vs %s %s %d", i, g.ID, g.Kind, g.Size, w.ID, w.Kind, w.Size)
				}
				if gr, wr := ranges(t, &g, r.Base), ranges(t, &w, ""); !slices.Equal(gr, wr) {
					t.Errorf("shard %s: tensors at %v, modelpack index says %v", g.ID, gr, wr)
				}
			}
			// only header reads so far: bytes=0-7 and bytes=8-... per file
			seen := h.rangesSeen()
			if len(seen) != 2*2 {
				t.Errorf("ranged requests while indexing: %v", seen)
			}
			for _, s := range seen {
				if !strings.Contains(s, "bytes=0-7") && !strings.Contains(s, "bytes=8-") {
					t.Errorf("a weight was read while indexing: %s", s)
				}
			}
		})
	}
}

// ranges lists "tensor file offset length" of a shard's tensors, from its
// pieces, with base cut from the file names.
func ranges(t *testing.T, s *manifest.Shard, base string) []string {
	t.Helper()
	var out []string
	for _, tn := range s.Tensors {
		var at int64
		found := false
		for _, p := range s.Pieces {
			if tn.Offset >= at && tn.Offset+tn.Length <= at+p.Length {
				file := strings.TrimPrefix(p.File, base)
				out = append(out, tn.Name+" "+file+" "+itoa(p.Offset+tn.Offset-at)+" "+itoa(tn.Length)+" "+tn.DType)
				found = true
				break
			}
			at += p.Length
		}
		if !found {
			t.Fatalf("shard %s: tensor %s is in no piece", s.ID, tn.Name)
		}
	}
	slices.Sort(out)
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestOpenConverts: for every family the HF reader supports, a
// repository opened with a Quant holds the tensors the local directory
// converted with the same Quant holds, bit for bit, in the formats packs
// use (4-bit experts, q8_0 attention and head, f32 norms and routers);
// routed experts come only when asked for, each in as few Range requests
// as its checkpoint allows: one where gate, up and down lie one after
// another, one per fused tensor where they are slices of fused tensors
// (Granite's input_linear and output_linear, gpt-oss's gate_up_proj and
// down_proj, and their scales for MXFP4), which other experts' bytes
// separate.
func TestOpenConverts(t *testing.T) {
	ffn64 := func(o *synth.Options) { o.FFN = 64 }
	for _, tt := range []struct {
		name, arch string
		edit       func(*synth.Options)
		query      string // the layer's query matrix: wq, or MLA's wq_a with q_lora_rank
		requests   int    // for one routed expert; 0 for a dense model
	}{
		{"llama", "llama", nil, "wq", 0},
		{"mixtral", "mixtral", ffn64, "wq", 1},
		{"qwen2_moe", "qwen2_moe", nil, "wq", 1},
		{"qwen3_moe", "qwen3_moe", nil, "wq", 1},
		{"olmoe", "olmoe", ffn64, "wq", 1},
		{"granitemoe", "granitemoe", nil, "wq", 2},
		{"granitemoeshared", "granitemoeshared", nil, "wq", 2},
		{"deepseek_v2", "deepseek_v2", nil, "wq", 1},
		{"deepseek_v3", "deepseek_v3", nil, "wq_a", 1},
		{"gpt_oss bf16", "gpt_oss", func(o *synth.Options) { o.MXFP4 = false }, "wq", 2},
		{"gpt_oss mxfp4", "gpt_oss", nil, "wq", 4},
		{"mode", "mode", nil, "wq", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, files := synthRepo(t, tt.arch, tt.edit)
			_, got := openFetchingOne(t, newHub(t, "test/"+tt.arch, files), "test/"+tt.arch, DefaultQuant, tt.requests)
			checkLikeLocal(t, dir, DefaultQuant, got)
			// q8_0 for the matrices every token uses beside 4-bit experts;
			// a dense model's are its experts' format
			dense := tensor.Q8_0
			if tt.requests == 0 {
				dense = tensor.Q4_0
			}
			formats := map[string]tensor.DType{"layers.0." + tt.query: dense, "layers.0.attn_norm": tensor.F32}
			if !got.Config.TiedOutput {
				formats[model.NameOutput] = tensor.Q8_0
			}
			if tt.requests > 0 {
				up := tensor.Q4_0
				if tt.name == "gpt_oss mxfp4" {
					up = tensor.MXFP4 // kept as stored, as import keeps it
				}
				formats[model.ExpertName(1, 1, "up")], formats["layers.1.router"] = up, tensor.F32
			}
			for name, d := range formats {
				if g := got.Weights[name]; g == nil || g.DType != d {
					t.Errorf("%s: missing or not %v", name, d)
				}
			}
		})
	}
}

// TestRefuse: what cannot run is refused in one sentence naming the
// repository and the file, before any weight is read.
func TestRefuse(t *testing.T) {
	dir, good := synthRepo(t, "olmoe", func(o *synth.Options) { o.Files = 0 })
	ts := tensorsOf(t, dir)
	with := func(edit func(map[string][]byte)) map[string][]byte {
		m := map[string][]byte{}
		for k, v := range good {
			m[k] = v
		}
		edit(m)
		return m
	}
	firstLen := func(b []byte) int64 { return 8 + int64(len(b[8:8+int(le64(b))])) }
	for _, tt := range []struct {
		name        string
		files       map[string][]byte
		repo        string
		ignoreRange bool
		want        []string
	}{
		{"only .bin", with(func(m map[string][]byte) {
			m["pytorch_model.bin"] = m[safetensors.SingleFile]
			delete(m, safetensors.SingleFile)
		}), "", false, []string{"pytorch_model.bin", "safetensors"}},
		{"no weights", with(func(m map[string][]byte) { delete(m, safetensors.SingleFile) }), "", false, []string{"model.safetensors", "no safetensors"}},
		{"unsupported architecture", with(func(m map[string][]byte) {
			m["config.json"] = bytes.Replace(m["config.json"], []byte(`"olmoe"`), []byte(`"gpt2"`), 1)
		}), "", false, []string{"gpt2"}},
		{"404 tokenizer", with(func(m map[string][]byte) { delete(m, "tokenizer.json") }), "", false, []string{"tokenizer.json", "not found"}},
		{"404 repository", good, "test/other", false, []string{"hf:test/other", "config.json", "not found"}},
		{"ignores Range", good, "", true, []string{"model.safetensors", "ignored the Range"}},
		{"header lies about offsets", with(func(m map[string][]byte) {
			lie := append([]rawTensor(nil), ts...)
			lie[len(lie)-1].end = 1 << 40
			m[safetensors.SingleFile] = rawSafetensors(lie)
		}), "", false, []string{"model.safetensors"}},
		{"missing tensor", with(func(m map[string][]byte) {
			var keep []rawTensor
			for _, x := range ts {
				if !strings.Contains(x.name, "layers.1.mlp.experts.2.up_proj") {
					keep = append(keep, x)
				}
			}
			m[safetensors.SingleFile] = rawSafetensors(keep)
		}), "", false, []string{"model.safetensors", "layers.1.mlp.experts.2.up_proj"}},
		{"unsupported dtype", with(func(m map[string][]byte) {
			i8 := append([]rawTensor(nil), ts...)
			for i, x := range i8 {
				if strings.HasSuffix(x.name, "layers.0.self_attn.q_proj.weight") {
					i8[i].dtype, i8[i].data = "I16", x.data
				}
			}
			m[safetensors.SingleFile] = rawSafetensors(i8)
		}), "", false, []string{"model.layers.0.self_attn.q_proj.weight", "I16"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(t, "test/olmoe-tiny", tt.files)
			h.ignoreRange = tt.ignoreRange
			repo := "test/olmoe-tiny"
			if tt.repo != "" {
				repo = tt.repo
			}
			_, _, err := Open(context.Background(), Location{Repo: repo, Revision: "main"}, Options{Endpoint: h.endpoint(), Quant: DefaultQuant})
			if err == nil {
				t.Fatal("opened")
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range append([]string{"hf:" + repo}, tt.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if strings.Count(msg, "\n") > 0 {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, s := range h.rangesSeen() {
				file, rg, _ := strings.Cut(s, " ")
				if b, ok := tt.files[path.Base(file)]; ok && len(b) >= 8 && !strings.HasPrefix(rg, "bytes=0-") && !strings.HasPrefix(rg, "bytes=8-"+itoa(firstLen(b)-1)) {
					t.Errorf("read %s although the repository is refused", s)
				}
			}
		})
	}
}

func le64(b []byte) uint64 {
	var n uint64
	for i := 7; i >= 0; i-- {
		n = n<<8 | uint64(b[i])
	}
	return n
}

// TestFormatsLikeImport: the formats Quant gives each tensor an hf:
// repository lists are those `modelpack import --quant` stores, for models
// whose widths need no padding, so an hf: model computes what the pack
// does: gpt-oss's expert biases stay f32 and its MXFP4 experts MXFP4.
func TestFormatsLikeImport(t *testing.T) {
	for _, q := range []tensor.DType{tensor.Q4_0, tensor.Q8_0, tensor.F16} {
		for _, c := range []struct {
			arch  string
			mxfp4 bool
		}{{"mixtral", false}, {"qwen2_moe", false}, {"olmoe", false}, {"gpt_oss", false}, {"gpt_oss", true}} {
			dir, files := synthRepo(t, c.arch, func(o *synth.Options) {
				if c.arch != "qwen2_moe" {
					o.FFN = 64
				}
				o.MXFP4 = c.mxfp4
			})
			in, err := importer.Open(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			m, err := pack.Write(filepath.Join(t.TempDir(), "p"), in.Source, in.Tokenizer, in.ChatTemplate, pack.Options{Quant: q})
			in.Close()
			if err != nil {
				t.Fatal(err)
			}
			h := newHub(t, "test/m", files)
			r, err := Index(context.Background(), Location{Repo: "test/m", Revision: "main"}, Options{Endpoint: h.endpoint()})
			if err != nil {
				t.Fatal(err)
			}
			formats := Quant{Experts: q}.ManifestFormats(r.Manifest)
			for _, s := range m.Shards {
				for _, tn := range s.Tensors {
					if got := formats[tn.Name].String(); got != tn.DType {
						t.Errorf("%s MXFP4 %v %v: %s is %s in the pack, %s here", c.arch, c.mxfp4, q, tn.Name, tn.DType, got)
					}
				}
			}
		}
	}
}

// TestChatTemplateJinja: a repository's chat_template.jinja (newer
// repositories ship their template so, gpt-oss's among them) is the
// manifest's chat template, over the hub and through modelpack index
// alike.
func TestChatTemplateJinja(t *testing.T) {
	dir, files := synthRepo(t, "mixtral", nil)
	const tpl = "{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{% endfor %}<|start|>assistant"
	files["chat_template.jinja"] = []byte(tpl)
	if err := os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte(tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHub(t, "test/mixtral", files)
	r, err := Index(context.Background(), Location{Repo: "test/mixtral", Revision: "main"}, Options{Endpoint: h.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	want, err := pack.Index(context.Background(), shard.NewDir(dir), pack.IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Manifest.ChatTemplate != tpl || want.ChatTemplate != tpl {
		t.Fatalf("chat templates %q (hub) and %q (index), want chat_template.jinja's", r.Manifest.ChatTemplate, want.ChatTemplate)
	}
}

// TestAlteredRanges: a weight range whose answer is cut short or names
// another version of the file (a different ETag than the header came
// with) is fetched again; when every answer is bad, the error names the
// file and the tensors the range holds.
func TestAlteredRanges(t *testing.T) {
	_, files := synthRepo(t, "olmoe", func(o *synth.Options) { o.FFN = 64 })
	h := newHub(t, "test/olmoe", files)
	loc := Location{Repo: "test/olmoe", Revision: "main"}
	o := Options{Endpoint: h.endpoint(), Quant: DefaultQuant, HTTP: shard.HTTPOptions{Backoff: time.Millisecond, Retries: 2}}
	pk, r, err := Open(context.Background(), loc, o)
	if err != nil {
		t.Fatal(err)
	}
	good, err := pk.LoadExpert(context.Background(), 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	var expert *manifest.Shard
	for i, s := range r.Manifest.Shards {
		if s.Kind == manifest.KindExpert && s.Layer == 1 && s.Expert == 3 {
			expert = &r.Manifest.Shards[i]
		}
	}
	p := expert.Pieces[0]
	file := p.File[strings.LastIndex(p.File, "/")+1:]
	var last int64
	for _, q := range expert.Pieces {
		last = max(last, q.Offset+q.Length-1)
	}
	altered := func(w http.ResponseWriter, rg string, body []byte) {
		w.Header().Set("ETag", `"another-version"`)
		b := bytes.Clone(body)
		b[p.Offset] ^= 1
		http.ServeContent(w, &http.Request{Header: http.Header{"Range": {rg}}, Method: "GET"}, file, time.Time{}, bytes.NewReader(b))
	}
	// cut sends 10 bytes of what was asked for, then drops the connection;
	// the client resumes after them.
	cut := func(w http.ResponseWriter, rg string, body []byte) {
		var from, to int64
		fmt.Sscanf(rg, "bytes=%d-%d", &from, &to)
		w.Header().Set("Content-Range", "bytes "+itoa(from)+"-"+itoa(to)+"/"+itoa(int64(len(body))))
		w.Header().Set("Content-Length", itoa(to-from+1))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body[from : from+min(10, to-from)])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	for _, c := range []struct {
		name  string
		bad   func(w http.ResponseWriter, rg string, body []byte)
		times int // bad answers before good ones; -1: all bad
		err   string
	}{
		{"altered once", altered, 1, ""},
		{"cut once", cut, 1, ""},
		{"altered always", altered, -1, "its bytes changed on the server"},
		{"cut always", cut, -1, "body cut"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pk, _, err := Open(context.Background(), loc, o)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			bad := 0
			h.mu.Lock()
			h.alter = func(name, rg string, w http.ResponseWriter, body []byte) bool {
				mu.Lock()
				defer mu.Unlock()
				var from, to int64
				fmt.Sscanf(rg, "bytes=%d-%d", &from, &to)
				if name != file || to != last || from < p.Offset || (c.times >= 0 && bad >= c.times) {
					return false
				}
				bad++
				c.bad(w, rg, body)
				return true
			}
			h.mu.Unlock()
			defer func() { h.mu.Lock(); h.alter = nil; h.mu.Unlock() }()
			got, err := pk.LoadExpert(context.Background(), 1, 3)
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if !bytes.Equal(got[i].Data, good[i].Data) {
						t.Errorf("tensor %s differs from a clean fetch", got[i].Name)
					}
				}
				if bad != c.times {
					t.Errorf("%d bad answers, want %d", bad, c.times)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range []string{c.err, file, expert.Tensors[0].Name} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if bad < 2 {
				t.Errorf("%d bad answers: the range was not fetched again", bad)
			}
		})
	}
}

// TestCheckWhole: a whole file is checked against X-Linked-Etag (sha256)
// and against a strong git-sha1 ETag the resolve URL answered itself.
func TestCheckWhole(t *testing.T) {
	b := []byte(`{"model_type": "olmoe"}`)
	s256 := sha256.Sum256(b)
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00%s", len(b), b)
	git := hex.EncodeToString(h.Sum(nil))
	other := strings.Repeat("0", 64)
	for _, c := range []struct {
		name, linked, etag string
		direct, ok         bool
	}{
		{"linked sha256", `"` + hex.EncodeToString(s256[:]) + `"`, "", false, true},
		{"linked sha256 wrong", `"` + other + `"`, "", false, false},
		{"git sha1", "", `"` + git + `"`, true, true},
		{"git sha1 wrong", "", `"` + other[:40] + `"`, true, false},
		{"git sha1 after a redirect: the CDN's own", "", `"` + other[:40] + `"`, false, true},
		{"weak tag", "", `W/"` + other[:40] + `"`, true, true},
		{"other form", "", `"abc"`, true, true},
		{"none", "", "", true, true},
	} {
		err := checkWhole(b, c.linked, c.etag, c.direct)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// TestOpenGptOss: gpt-oss, whose experts are stored fused (gate and up
// interleaved in gate_up_proj, input-major in bf16 or MXFP4 rows with
// their scales), opens as hf: with each expert's slice of the fused
// tensors fetched on first use, one range per source tensor: its tensors
// are those reading the whole files gives, converted alike, and it
// generates the greedy tokens of the pack `modelpack import` writes from
// the same files at the same quantisation.
func TestOpenGptOss(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mxfp4  bool
		quant  Quant
		pack   tensor.DType // modelpack import --quant
		ranges int          // requests for one expert
	}{
		{"bf16 source", false, Quant{}, tensor.F32, 2},
		{"bf16 q4_0", false, DefaultQuant, tensor.Q4_0, 2},
		{"mxfp4 source", true, Quant{}, tensor.F32, 4},
		{"mxfp4 q4_0", true, DefaultQuant, tensor.Q4_0, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, files := synthRepo(t, "gpt_oss", func(o *synth.Options) { o.MXFP4 = tt.mxfp4 })
			pk, got := openFetchingOne(t, newHub(t, "test/gpt-oss", files), "test/gpt-oss", tt.quant, tt.ranges)
			checkLikeLocal(t, dir, tt.quant, got)
			if tt.mxfp4 {
				if d := got.Weights[model.ExpertName(0, 1, "up")].DType; d != tensor.MXFP4 {
					t.Errorf("MXFP4 expert loaded as %v", d)
				}
			}
			in, err := importer.Open(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			pdir := filepath.Join(t.TempDir(), "p")
			_, err = pack.Write(pdir, in.Source, in.Tokenizer, in.ChatTemplate, pack.Options{Quant: tt.pack})
			in.Close()
			if err != nil {
				t.Fatal(err)
			}
			imp, err := loader.Open(context.Background(), pdir, shard.HTTPOptions{})
			if err != nil {
				t.Fatal(err)
			}
			prompt := []int{3, 50, 7, 99, 12}
			gotIDs := greedy(t, pk.Model, engine.Options{Experts: pk}, prompt, 16)
			if wantIDs := greedy(t, imp.Model, engine.Options{Experts: imp}, prompt, 16); !slices.Equal(gotIDs, wantIDs) {
				t.Errorf("hf: generates %v, the imported pack %v", gotIDs, wantIDs)
			}
		})
	}
}

// openFetchingOne opens repo on h with quantisation q, checks that no
// expert was fetched at load and, for a model with routed experts
// (requests > 0), that expert (1, 3) costs that many requests; it returns
// the pack and the whole model.
func openFetchingOne(t *testing.T, h *hub, repo string, q Quant, requests int) (*loader.Pack, *model.Model) {
	t.Helper()
	pk, _, err := Open(context.Background(), Location{Repo: repo, Revision: "main"}, Options{Endpoint: h.endpoint(), Quant: q})
	if err != nil {
		t.Fatal(err)
	}
	if n := pk.Stats().ExpertFetches; n != 0 {
		t.Errorf("%d experts fetched at load", n)
	}
	if requests > 0 {
		before := len(h.rangesSeen())
		if _, err := pk.LoadExpert(context.Background(), 1, 3); err != nil {
			t.Fatal(err)
		}
		if seen := h.rangesSeen()[before:]; len(seen) != requests {
			t.Errorf("one expert took %d requests (%v), want %d", len(seen), seen, requests)
		}
	}
	got, err := pk.Whole(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pk, got
}

// checkLikeLocal: every tensor of got is the one the whole-file reader
// finds in dir, converted by q as the importer would.
func checkLikeLocal(t *testing.T, dir string, q Quant, got *model.Model) {
	t.Helper()
	want, err := hf.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	conv := q.Converter(want.Config)
	for _, sp := range want.Config.Spec() {
		w := want.Weights[sp.Name]
		if conv != nil {
			if w, err = conv(w); err != nil {
				t.Fatal(err)
			}
		}
		g := got.Weights[sp.Name]
		if g == nil || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("%s: missing, or not the local %v %v, or bytes differ", sp.Name, w.DType, w.Shape)
		}
	}
}

func greedy(t *testing.T, m *model.Model, o engine.Options, prompt []int, n int) []int {
	t.Helper()
	e, err := engine.New(cpu.New(cpu.Options{}), m, o)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	if _, err := e.Generate(context.Background(), prompt, engine.GenerateOptions{MaxTokens: n, Stop: []int{}},
		func(id int) error { out = append(out, id); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}
