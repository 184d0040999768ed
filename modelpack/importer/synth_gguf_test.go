package importer

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/moderuntime/mode/modelpack/gguf"
	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
)

// TestSynthGGUF writes synthetic Mixtral and OLMoE models as GGUF in each
// matrix type and checks the whole path the benchmark takes: the file
// reads back as the model synth.Write describes, holding its values
// (rounded to the type: exactly what gguf.Quantize gives, q and k rows of
// a "llama" file permuted for adjacent-pair RoPE), the pack imported from
// it holds exactly the file's values, and the f32 pack generates the
// HF-layout model's greedy tokens.
func TestSynthGGUF(t *testing.T) {
	all := []gguf.GGMLType{gguf.TypeF32, gguf.TypeQ8_0, gguf.TypeQ4_0}
	// Q4_K needs rows of whole 256-element super-blocks: models 256 wide
	// whose down projections (64 columns) fall back to Q4_0.
	q4k := []gguf.GGMLType{gguf.TypeQ4_K}
	for _, tc := range []struct {
		o     synth.Options
		types []gguf.GGMLType
	}{
		{synth.Options{Arch: "mixtral", Vocab: 300, Seed: 3}, all},
		// llama.cpp's OLMoE has as many kv heads as heads.
		{synth.Options{Arch: "olmoe", Vocab: 300, Heads: 4, KVHeads: 4, FFN: 64, Seed: 3}, all},
		{synth.Options{Arch: "granitemoe", Vocab: 300, FFN: 64, Seed: 3}, all},
		{synth.Options{Arch: "granitemoeshared", Vocab: 300, FFN: 64, Seed: 3}, all},
		{synth.Options{Arch: "mixtral", Vocab: 300, Dim: 256, FFN: 64, Seed: 4}, q4k},
		{synth.Options{Arch: "olmoe", Vocab: 300, Dim: 256, Heads: 4, KVHeads: 4, FFN: 64, Seed: 4}, q4k},
	} {
		o := tc.o
		_, src := synthHF(t, o)
		for _, typ := range tc.types {
			t.Run(fmt.Sprintf("%s/%s", o.Arch, typ), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "m.gguf")
				if err := synth.WriteGGUF(path, o, typ); err != nil {
					t.Fatal(err)
				}
				checkSynthGGUF(t, path, src, typ)
			})
		}
	}
}

// synthHF writes the HF checkpoint synth makes for o and loads it.
func synthHF(t *testing.T, o synth.Options) (dir string, m *model.Model) {
	t.Helper()
	dir = t.TempDir()
	if err := synth.Write(dir, o); err != nil {
		t.Fatal(err)
	}
	m, err := hf.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// matrixType is the type WriteGGUF gives a matrix of cols columns in a
// file of type typ (gguf.ModelOptions.Type).
func matrixType(typ gguf.GGMLType, cols int) gguf.GGMLType {
	if typ == gguf.TypeQ4_K && cols%256 != 0 {
		return gguf.TypeQ4_0
	}
	return typ
}

func checkSynthGGUF(t *testing.T, path string, src *model.Model, typ gguf.GGMLType) {
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := gguf.Config(f)
	if err != nil {
		t.Fatal(err)
	}
	want := src.Config
	permuted := want.QKNorm == model.QKNormNone // written as "llama"
	if permuted {
		want.RopeStyle = model.RopeInterleaved
	}
	// The GGUF has a SentencePiece vocabulary: <s> is 1, </s> 2.
	cfg.Arch, want.Arch, want.BOS, want.EOS = "", "", 1, []int{2}
	if g, w := jsonOf(t, cfg), jsonOf(t, want); g != w {
		t.Fatalf("config read back:\n%s\nwant\n%s", g, w)
	}
	ofType := 0
	for _, tt := range f.Tensors() {
		if len(tt.Dims) < 2 {
			continue
		}
		if want := matrixType(typ, tt.Dims[0]); tt.Type != want {
			t.Errorf("matrix %s is %s, want %s", tt.Name, tt.Type, want)
		}
		if tt.Type == typ {
			ofType++
		}
	}
	if ofType == 0 {
		t.Errorf("no matrix is %s", typ)
	}
	v, err := gguf.Tokenizer(f)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, tok := range v.Tokens {
		if !utf8.ValidString(tok) || seen[tok] || tok == "" {
			t.Fatalf("token %d %q is not valid UTF-8, empty or repeated", i, tok)
		}
		seen[tok] = true
	}
	_, values := reference(t, path)
	for _, sp := range cfg.Spec() {
		w, err := src.Weights[sp.Name].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if permuted && (strings.HasSuffix(sp.Name, ".wq") || strings.HasSuffix(sp.Name, ".wk")) {
			heads := cfg.Heads
			if strings.HasSuffix(sp.Name, ".wk") {
				heads = cfg.KVHeads
			}
			w = permuteHalfToPairs(w, heads, cfg.HeadDim, cfg.Dim)
		}
		if tt := matrixType(typ, sp.Shape[len(sp.Shape)-1]); len(sp.Shape) == 2 && typ != gguf.TypeF32 {
			b, err := gguf.Quantize(tt, w)
			if err != nil {
				t.Fatal(err)
			}
			if w, err = gguf.DequantizeF32(gguf.RawTensor{Name: sp.Name, Type: tt, Dims: []int{sp.Shape[1], sp.Shape[0]}, Data: b}); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(values[sp.Name], w) {
			t.Fatalf("%s: the GGUF's values differ from the synthetic model's", sp.Name)
		}
	}
	_, p := importPack(t, path, pack.Options{})
	for _, sp := range cfg.Spec() {
		got, err := packTensor(t, p, sp).Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, values[sp.Name]) {
			t.Fatalf("%s: the pack's values differ from the GGUF's", sp.Name)
		}
	}
	if typ != gguf.TypeF32 {
		return
	}
	m, err := p.Whole(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int{1, 300 - 1, 17, 42, 260, 5}
	if a, b := greedy(t, src, prompt, 12), greedy(t, m, prompt, 12); !slices.Equal(a, b) {
		t.Fatalf("greedy tokens of the pack from the GGUF %v differ from the synthetic model's %v", b, a)
	}
}

func jsonOf(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// permuteHalfToPairs is convert_hf_to_gguf.py's permute, written
// independently of gguf's: within each head, row i*hd/2+j moves to 2j+i.
func permuteHalfToPairs(w []float32, heads, hd, cols int) []float32 {
	out := make([]float32, len(w))
	for h := range heads {
		for r := range hd {
			i, j := r/(hd/2), r%(hd/2)
			copy(out[(h*hd+2*j+i)*cols:][:cols], w[(h*hd+r)*cols:][:cols])
		}
	}
	return out
}

func greedy(t *testing.T, m *model.Model, prompt []int, n int) []int {
	t.Helper()
	e, err := engine.New(cpu.New(cpu.Options{Threads: 1}), m, engine.Options{MaxSeq: len(prompt) + n})
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	if _, err := e.Generate(context.Background(), prompt, engine.GenerateOptions{MaxTokens: n, Stop: []int{}}, func(tok int) error {
		out = append(out, tok)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
