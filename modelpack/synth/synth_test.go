package synth

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// readDir returns every file in dir by name.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if files[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

func TestDeterministic(t *testing.T) {
	for _, arch := range Arches() {
		t.Run(arch, func(t *testing.T) {
			o := Default(arch)
			o.Seed = 42
			o.DType = tensor.BF16
			a, b := t.TempDir(), t.TempDir()
			if err := Write(a, o); err != nil {
				t.Fatal(err)
			}
			if err := Write(b, o); err != nil {
				t.Fatal(err)
			}
			fa, fb := readDir(t, a), readDir(t, b)
			if len(fa) != 5 {
				t.Errorf("wrote %d files, want config, generation config, weights and two tokenizer files", len(fa))
			}
			for name, data := range fa {
				if !bytes.Equal(data, fb[name]) {
					t.Errorf("%s differs between two writes", name)
				}
			}
			o.Seed = 43
			c := t.TempDir()
			if err := Write(c, o); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(fa[safetensors.SingleFile], readDir(t, c)[safetensors.SingleFile]) {
				t.Error("another seed gave the same weights")
			}
		})
	}
}

func TestTokenizerJSON(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, Default("llama")); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		PreTokenizer map[string]any `json:"pre_tokenizer"`
		Decoder      map[string]any `json:"decoder"`
		Model        struct {
			Type   string         `json:"type"`
			Vocab  map[string]int `json:"vocab"`
			Merges []string       `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &tok); err != nil {
		t.Fatalf("tokenizer.json is not valid JSON: %v", err)
	}
	m := tok.Model
	if m.Type != "BPE" || len(m.Vocab) != 512 {
		t.Fatalf("model type %q with %d tokens, want BPE with 512", m.Type, len(m.Vocab))
	}
	if tok.PreTokenizer["type"] != "ByteLevel" || tok.PreTokenizer["use_regex"] != true || tok.Decoder["type"] != "ByteLevel" {
		t.Errorf("pre_tokenizer %v decoder %v", tok.PreTokenizer, tok.Decoder)
	}
	ids := map[int]bool{}
	for _, id := range m.Vocab {
		if id < 0 || id >= 512 || ids[id] {
			t.Fatalf("id %d out of range or repeated", id)
		}
		ids[id] = true
	}
	table := byteRunes()
	for b := range 256 {
		if m.Vocab[string(table[b])] != b {
			t.Errorf("byte %#x: token %q has id %d", b, table[b], m.Vocab[string(table[b])])
		}
	}
	if m.Vocab["Ġthe"] == 0 {
		t.Error(`no "Ġthe" token: merges did not learn the commonest word`)
	}
	for _, merge := range m.Merges {
		l, r, ok := strings.Cut(merge, " ")
		if _, inL := m.Vocab[l]; !ok || !inL {
			t.Fatalf("merge %q: left part not in vocab", merge)
		}
		if _, inR := m.Vocab[r]; !inR {
			t.Fatalf("merge %q: right part not in vocab", merge)
		}
		if _, inLR := m.Vocab[l+r]; !inLR {
			t.Fatalf("merge %q: result not in vocab", merge)
		}
	}
	want := []struct {
		id      int
		content string
	}{{510, "<|bos|>"}, {511, "<|eos|>"}}
	if len(tok.AddedTokens) != 2 {
		t.Fatalf("%d added tokens", len(tok.AddedTokens))
	}
	for i, w := range want {
		a := tok.AddedTokens[i]
		if a.ID != w.id || a.Content != w.content || !a.Special || m.Vocab[w.content] != w.id {
			t.Errorf("added token %d = %+v, want %q at %d", i, a, w.content, w.id)
		}
	}
	var tc map[string]any
	raw, _ = os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err := json.Unmarshal(raw, &tc); err != nil {
		t.Fatal(err)
	}
	if tc["bos_token"] != "<|bos|>" || tc["eos_token"] != "<|eos|>" || !strings.Contains(tc["chat_template"].(string), "messages") {
		t.Errorf("tokenizer_config %v", tc)
	}
	var cfg map[string]any
	raw, _ = os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["bos_token_id"] != 510.0 || cfg["eos_token_id"] != 511.0 {
		t.Errorf("config bos %v eos %v", cfg["bos_token_id"], cfg["eos_token_id"])
	}
}

// encode tokenizes text with the learned merges the way HF's BPE model
// does: split, map bytes, then apply the lowest-ranked merge until none
// applies. It proves the files describe a working tokenizer.
func encode(vocab map[string]int, merges []string, text string) []int {
	rank := map[string]int{}
	for i, m := range merges {
		rank[m] = i
	}
	table := byteRunes()
	var ids []int
	for _, word := range splitGPT2(text) {
		var syms []string
		for i := range len(word) {
			syms = append(syms, string(table[word[i]]))
		}
		for {
			best, at := len(merges), -1
			for i := 0; i+1 < len(syms); i++ {
				if r, ok := rank[syms[i]+" "+syms[i+1]]; ok && r < best {
					best, at = r, i
				}
			}
			if at < 0 {
				break
			}
			syms = slices.Replace(syms, at, at+2, syms[at]+syms[at+1])
		}
		for _, s := range syms {
			ids = append(ids, vocab[s])
		}
	}
	return ids
}

func TestTokenizerRoundTrip(t *testing.T) {
	tok := newTokenizer(512)
	vocab := map[string]int{}
	for id, s := range tok.vocab {
		vocab[s] = id
	}
	unicodeToByte := map[rune]byte{}
	for b, r := range byteRunes() {
		unicodeToByte[r] = byte(b)
	}
	for _, text := range []string{"The town's bridge was gone.", "héllo  wörld\n\n 2048 tokens!", ""} {
		ids := encode(vocab, tok.merges, text)
		var out []byte
		for _, id := range ids {
			for _, r := range tok.vocab[id] {
				out = append(out, unicodeToByte[r])
			}
		}
		if string(out) != text {
			t.Errorf("decode(encode(%q)) = %q", text, out)
		}
		if text != "" && len(ids) >= len(text) && strings.Contains(text, "The") {
			t.Errorf("%q took %d tokens: merges do not compress", text, len(ids))
		}
	}
}

func TestSplitGPT2(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"it's they'll", []string{"it", "'s", " they", "'ll"}},
		{"a  b", []string{"a", " ", " b"}},
		{"x\n\ny", []string{"x", "\n", "\n", "y"}},
		{"end   ", []string{"end", "   "}},
		{"99 bottles!?", []string{"99", " bottles", "!?"}},
		{"caf\u00e9 \u4e16\u754c", []string{"caf\u00e9", " \u4e16\u754c"}},
	}
	for _, tt := range tests {
		if got := splitGPT2(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitGPT2(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSharded(t *testing.T) {
	o := Default("mixtral")
	o.MaxShardBytes = 64 << 10
	dir := t.TempDir()
	if err := Write(dir, o); err != nil {
		t.Fatal(err)
	}
	files := readDir(t, dir)
	if _, ok := files[safetensors.SingleFile]; ok {
		t.Error("model.safetensors written although sharding was asked for")
	}
	shards := 0
	for name := range files {
		if strings.HasPrefix(name, "model-") {
			shards++
		}
	}
	if shards < 2 {
		t.Fatalf("%d shards", shards)
	}
	d, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	single := t.TempDir()
	o.MaxShardBytes = 0
	if err := Write(single, o); err != nil {
		t.Fatal(err)
	}
	s, err := safetensors.OpenDir(single)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !slices.Equal(d.Names(), s.Names()) {
		t.Fatal("sharded and single checkpoints name different tensors")
	}
	for _, name := range s.Names() {
		a, _ := d.Read(name)
		b, _ := s.Read(name)
		if !bytes.Equal(a.Data, b.Data) {
			t.Errorf("tensor %s differs between sharded and single", name)
		}
	}
	// Rewriting unsharded into the sharded directory leaves one checkpoint.
	if err := Write(dir, o); err != nil {
		t.Fatal(err)
	}
	if n := len(readDir(t, dir)); n != 5 {
		t.Errorf("%d files after rewriting, want 5", n)
	}
}

func TestWeightStatistics(t *testing.T) {
	for _, tt := range []struct {
		spec     tensorSpec
		mean, sd float64
	}{
		{tensorSpec{name: "w", shape: []int{512, 256}, init: initLinear}, 0, 1.0 / 16},
		{tensorSpec{name: "n", shape: []int{256}, init: initNorm}, 1, 0.05},
		{tensorSpec{name: "e", shape: []int{64, 256}, init: initEmbed}, 0, 1},
	} {
		v, err := generate(tt.spec, 1, tensor.F32, 2).Float32s()
		if err != nil {
			t.Fatal(err)
		}
		var sum, sq float64
		for _, x := range v {
			sum += float64(x)
		}
		mean := sum / float64(len(v))
		for _, x := range v {
			sq += (float64(x) - mean) * (float64(x) - mean)
		}
		sd := (sq / float64(len(v)))
		sd = math.Sqrt(sd)
		if d := mean - tt.mean; d > 0.1*tt.sd+0.01 || d < -0.1*tt.sd-0.01 || sd < 0.9*tt.sd || sd > 1.1*tt.sd {
			t.Errorf("%s: mean %.4f sd %.4f, want about %.4f and %.4f", tt.spec.name, mean, sd, tt.mean, tt.sd)
		}
	}
}

func TestOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"unknown arch", func(o *Options) { o.Arch = "gpt2" }, `unknown arch "gpt2"`},
		{"top_k above experts", func(o *Options) { o.Arch, o.Experts, o.TopK = "mixtral", 4, 5 }, "TopK 5 out of range 1..4"},
		{"kv heads", func(o *Options) { o.KVHeads = 3 }, "not a multiple of KVHeads 3"},
		{"small vocab", func(o *Options) { o.Vocab = 100 }, "Vocab 100"},
		{"quantised dtype", func(o *Options) { o.DType = tensor.Q8_0 }, "DType q8_0"},
		{"widths outside mode", func(o *Options) { o.ExpertWidths = []int{8} }, "ExpertWidths and ExpertArch apply to arch mode only"},
		{"arch outside mode", func(o *Options) { o.ExpertArch = []model.ExpertArch{{Act: model.ActReLU2}} }, "ExpertWidths and ExpertArch apply to arch mode only"},
		{"sigmoid outside mode", func(o *Options) { o.Arch, o.Scoring = "olmoe", "sigmoid" }, "softmax"},
		{"dense layer out of range", func(o *Options) { o.Arch, o.DenseLayers = "qwen3_moe", []int{9} }, "DenseLayers entry 9"},
		{"olmoe head_dim", func(o *Options) { o.Arch, o.HeadDim = "olmoe", 32 }, "HeadDim = Dim/Heads"},
		{"mode width count", func(o *Options) { o.Arch, o.Experts, o.ExpertWidths = "mode", 3, []int{8, 8} }, "2 ExpertWidths for 3 Experts"},
		{"expert width outside qwen", func(o *Options) { o.Arch, o.ExpertFFN = "olmoe", 64 }, "olmoe has no separate expert width"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Arch: "llama"}
			tt.edit(&o)
			err := Write(t.TempDir(), o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestRoutingVaries checks that a random router spreads tokens over its
// experts: with every token's embedding as input, no expert is everyone's
// first choice and most experts are someone's.
func TestRoutingVaries(t *testing.T) {
	o, err := Default("olmoe").resolve()
	if err != nil {
		t.Fatal(err)
	}
	var embed, router []float32
	for _, s := range hfLayout(&o) {
		switch s.name {
		case "model.embed_tokens.weight":
			embed, _ = generate(s, o.Seed, o.DType, o.Layers).Float32s()
		case "model.layers.0.mlp.gate.weight":
			router, _ = generate(s, o.Seed, o.DType, o.Layers).Float32s()
		}
	}
	first := make([]int, o.Experts)
	for tok := range o.Vocab {
		x := embed[tok*o.Dim : (tok+1)*o.Dim]
		best, bestLogit := 0, math.Inf(-1)
		for e := range o.Experts {
			var logit float64
			for i, w := range router[e*o.Dim : (e+1)*o.Dim] {
				logit += float64(w * x[i])
			}
			if logit > bestLogit {
				best, bestLogit = e, logit
			}
		}
		first[best]++
	}
	used := 0
	for e, n := range first {
		if n > 0 {
			used++
		}
		if n > o.Vocab/2 {
			t.Errorf("expert %d is the first choice of %d of %d tokens", e, n, o.Vocab)
		}
	}
	if used < o.Experts-1 {
		t.Errorf("only %d of %d experts are ever the first choice: %v", used, o.Experts, first)
	}
}

// TestFiles: every family writes a bf16 checkpoint in exactly two
// files named as transformers names them, with an index that lists every
// tensor, generation_config.json beside it, and the same tensors as the
// single-file checkpoint (gpt_oss's MXFP4 experts stay U8 blocks and
// scales).
func TestFiles(t *testing.T) {
	for _, arch := range Arches() {
		t.Run(arch, func(t *testing.T) {
			o := Default(arch)
			o.DType, o.Files = tensor.BF16, 2
			dir := t.TempDir()
			if err := Write(dir, o); err != nil {
				t.Fatal(err)
			}
			files := readDir(t, dir)
			for _, want := range []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", safetensors.IndexFile,
				"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"} {
				if _, ok := files[want]; !ok {
					t.Errorf("no %s in %v", want, slices.Sorted(maps.Keys(files)))
				}
			}
			if len(files) != 7 {
				t.Errorf("%d files, want 7", len(files))
			}
			var gen map[string]any
			if err := json.Unmarshal(files["generation_config.json"], &gen); err != nil || gen["eos_token_id"] == nil {
				t.Errorf("generation_config.json: %v %v", gen, err)
			}
			d, err := safetensors.OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			o.Files = 0
			single := t.TempDir()
			if err := Write(single, o); err != nil {
				t.Fatal(err)
			}
			s, err := safetensors.OpenDir(single)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if !slices.Equal(d.Names(), s.Names()) {
				t.Fatal("two-file and single checkpoints name different tensors")
			}
			for _, name := range s.Names() {
				if in, _ := s.Info(name); in.DType == "U8" { // MXFP4 blocks or scales
					a, err := d.ReadU8Rows(name, 0, in.Shape[0])
					if err != nil {
						t.Fatal(err)
					}
					if b, _ := s.ReadU8Rows(name, 0, in.Shape[0]); !bytes.Equal(a, b) {
						t.Errorf("tensor %s: bytes differ from the single file", name)
					}
					continue
				}
				a, err := d.Read(name)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := s.Read(name)
				if a.DType != tensor.BF16 || !bytes.Equal(a.Data, b.Data) {
					t.Errorf("tensor %s: %v, or bytes differ from the single file", name, a.DType)
				}
			}
		})
	}
	if err := Write(t.TempDir(), Options{Arch: "olmoe", Files: 2, MaxShardBytes: 1 << 20}); err == nil {
		t.Error("Files with MaxShardBytes accepted")
	}
}
