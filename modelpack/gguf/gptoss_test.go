package gguf

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestMXFP4Block decodes a hand-worked ggml block: scale byte 128 (2^1),
// then byte j holding element j low and element j+16 high, as
// block_mxfp4 does and convert_hf_to_gguf.py's transform_nibble_layout
// produces from a checkpoint's pairs (element 2j low, 2j+1 high).
func TestMXFP4Block(t *testing.T) {
	blk := make([]byte, 17)
	blk[0] = 128
	blk[1] = 0x21  // element 0: code 1 (0.5); element 16: code 2 (1)
	blk[2] = 0x9F  // element 1: code 15 (-6); element 17: code 9 (-0.5)
	blk[16] = 0x70 // element 15: code 0; element 31: code 7 (6)
	raw := RawTensor{Name: "w", Type: TypeMXFP4, Dims: []int{32}, Data: blk}
	got, err := DequantizeF32(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, 32)
	want[0], want[1], want[16], want[17], want[31] = 1, -12, 2, -1, 12
	if !slices.Equal(got, want) {
		t.Fatalf("DequantizeF32 = %v, want %v", got, want)
	}
	scales, blocks, err := MXFP4Blocks(raw)
	if err != nil {
		t.Fatal(err)
	}
	wantBlocks := make([]byte, 16)
	wantBlocks[0] = 0xF1  // elements 0 and 1
	wantBlocks[8] = 0x92  // elements 16 and 17
	wantBlocks[15] = 0x70 // elements 30 and 31
	if !slices.Equal(scales, []byte{128}) || !slices.Equal(blocks, wantBlocks) {
		t.Fatalf("MXFP4Blocks = %x %x, want 80 %x", scales, blocks, wantBlocks)
	}
	if back := mxfp4Encode(scales, blocks); !bytes.Equal(back, blk) {
		t.Fatalf("mxfp4Encode(MXFP4Blocks) = %x, want %x", back, blk)
	}
	// Our pack's tensor from those arrays has the same values.
	m, err := tensor.MXFP4FromBlocks("w", 1, 32, scales, blocks)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Float32s(); !slices.Equal(v, want) {
		t.Fatalf("pack tensor values %v, want %v", v, want)
	}
	// e8m0's NaN scale dequantises to NaN, which importers reject.
	blk[0] = 0xFF
	if got, _ := DequantizeF32(raw); !math.IsNaN(float64(got[0])) {
		t.Fatalf("scale 0xFF gave %v, want NaN", got[0])
	}
}

// TestMXFP4QuantizeExact: values that are MXFP4 already come back
// unchanged through Quantize(TypeMXFP4), whatever scale the block had.
func TestMXFP4QuantizeExact(t *testing.T) {
	v := make([]float32, 96)
	for i := range v {
		// block 0: up to 6·2^-3; block 1: up to 1.5·2^4; block 2: zeros and ±0.5·2^0
		switch i / 32 {
		case 0:
			v[i] = e2m1Values[i%16] / 8
		case 1:
			v[i] = e2m1Values[i%4] * 16
		case 2:
			v[i] = e2m1Values[(i%2)*9]
		}
	}
	b, err := Quantize(TypeMXFP4, v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DequantizeF32(RawTensor{Name: "w", Type: TypeMXFP4, Dims: []int{96}, Data: b})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, v) {
		t.Fatalf("round trip %v, want %v", got, v)
	}
}

// gptOssConfig is a small gpt-oss as the HF reader describes one (YaRN
// already rounded, as llama.cpp computes it).
func gptOssConfig() model.Config {
	c := model.Config{
		Arch: "gpt-oss", Dim: 32, Layers: 2, Heads: 2, KVHeads: 1, HeadDim: 16, Vocab: 8, MaxSeq: 64,
		NormEps: 1e-5, RopeTheta: 150000, RopeStyle: model.RopeHalf, BOS: -1, EOS: []int{2},
		AttnBias: true, AttnOutBias: true, Sinks: true, SlidingWindow: 4,
		LayerTypes: []string{model.LayerSliding, model.LayerFull},
		RopeScale:  &model.RopeScaling{Type: "yarn", Factor: 4, OrigMaxPosition: 16, BetaFast: 32, BetaSlow: 1},
	}
	for range c.Layers {
		c.FFN = append(c.FFN, model.FFN{
			ExpertWidths: []int{32, 32, 32},
			Router:       &model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true, LogitBias: true},
			Act:          model.ActSwiGLUClamped, Alpha: gptOssAlpha, Limit: gptOssLimit, ExpertBias: true,
		})
	}
	return c
}

// gptOssFile writes cfg with WriteModel, every value a small function of
// its index so that MXFP4 holds the expert values exactly.
func gptOssFile(t testing.TB, cfg model.Config, typ GGMLType) []byte {
	t.Helper()
	shapes := map[string][]int{}
	for _, sp := range cfg.Spec() {
		shapes[sp.Name] = sp.Shape
	}
	read := func(name string) ([]float32, error) {
		n := 1
		for _, d := range shapes[name] {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = e2m1Values[(i*7+len(name))%16] / 4
		}
		return v, nil
	}
	toks := []string{"<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"}
	var b bytes.Buffer
	err := WriteModel(&b, cfg, read, ModelOptions{Type: typ, Vocab: Vocab{Model: "llama", Tokens: toks, Scores: make([]float32, len(toks)),
		BOS: -1, EOS: 2, EOT: -1, EOM: -1, UNK: 0, PAD: -1}, Name: "gpt-oss test"})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestGptOssRoundTrip writes a gpt-oss model as llama.cpp names it and
// reads the same config back: the keys and tensors Config and Sources
// need, experts in MXFP4.
func TestGptOssRoundTrip(t *testing.T) {
	cfg := gptOssConfig()
	f := parse(t, gptOssFile(t, cfg, TypeQ8_0))
	for _, name := range []string{"blk.1.attn_sinks.weight", "blk.0.post_attention_norm.weight", "blk.0.ffn_gate_inp.bias", "blk.1.ffn_down_exps.bias", "blk.0.attn_output.bias"} {
		if _, ok := f.Tensor(name); !ok {
			t.Errorf("no tensor %s", name)
		}
	}
	for _, info := range f.Tensors() {
		if strings.HasSuffix(info.Name, "_exps.weight") && info.Type != TypeMXFP4 {
			t.Errorf("%s is %s, want mxfp4", info.Name, info.Type)
		}
	}
	got, err := Config(f)
	if err != nil {
		t.Fatal(err)
	}
	// WideExperts keeps them in Type (a dequantised checkpoint's experts).
	var wide bytes.Buffer
	err = WriteModel(&wide, cfg, func(name string) ([]float32, error) {
		n := 1
		for _, sp := range cfg.Spec() {
			if sp.Name == name {
				for _, d := range sp.Shape {
					n *= d
				}
			}
		}
		return make([]float32, n), nil
	}, ModelOptions{Type: TypeQ8_0, WideExperts: true, Vocab: Vocab{Model: "llama", Tokens: make([]string, cfg.Vocab), BOS: -1, EOS: -1, EOT: -1, EOM: -1, UNK: -1, PAD: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if info, ok := parse(t, wide.Bytes()).Tensor("blk.0.ffn_up_exps.weight"); !ok || info.Type != TypeQ8_0 {
		t.Errorf("WideExperts: up experts %v (%v), want q8_0", info.Type, ok)
	}
	if g, w := jsonString(t, got), jsonString(t, cfg); g != w {
		t.Fatalf("config read back\n%s\nwant\n%s", g, w)
	}
	if _, err := Sources(f, got); err != nil {
		t.Fatal(err)
	}
}

func jsonString(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGptOssRefused: configs llama.cpp's gpt-oss graph would compute
// differently are refused by the writer, and files missing what the
// graph requires by the reader, each naming the problem.
func TestGptOssRefused(t *testing.T) {
	write := []struct {
		name string
		edit func(*model.Config)
		want string
	}{
		{"truncate false", func(c *model.Config) { c.RopeScale.NoTruncate = true }, "RoundYaRN"},
		{"odd layer slides", func(c *model.Config) { c.LayerTypes[1] = model.LayerSliding }, "sliding on even layers"},
		{"limit", func(c *model.Config) { c.FFN[1].Limit = 6 }, "limit 7"},
		{"no router bias", func(c *model.Config) { c.FFN[0].Router.LogitBias = false }, "biased router"},
		{"no output bias", func(c *model.Config) { c.AttnOutBias = false }, "output biases"},
	}
	for _, tc := range write {
		t.Run(tc.name, func(t *testing.T) {
			c := gptOssConfig()
			c.RopeScale = &model.RopeScaling{Type: "yarn", Factor: 4, OrigMaxPosition: 16, BetaFast: 32, BetaSlow: 1}
			c.LayerTypes = slices.Clone(c.LayerTypes)
			tc.edit(&c)
			var b bytes.Buffer
			err := WriteModel(&b, c, func(string) ([]float32, error) { return nil, nil }, ModelOptions{Type: TypeF32})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	data := gptOssFile(t, gptOssConfig(), TypeF32)
	f := parse(t, data)
	var kv []KV
	for _, x := range f.KVs() {
		if x.Key != "gpt-oss.attention.sliding_window" {
			kv = append(kv, x)
		}
	}
	var ts []WTensor
	for _, info := range f.Tensors() {
		r, err := f.ReadRaw(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, WTensor{Name: r.Name, Type: r.Type, Dims: r.Dims, Data: r.Data})
	}
	if _, err := Config(parse(t, encode(t, kv, ts))); err == nil || !strings.Contains(err.Error(), "sliding_window: is missing") {
		t.Fatalf("without the window: %v", err)
	}
	ts = slices.DeleteFunc(ts, func(w WTensor) bool { return w.Name == "blk.0.attn_sinks.weight" })
	if _, err := Config(parse(t, encode(t, f.KVs(), ts))); err == nil || !strings.Contains(err.Error(), "attn_sinks") {
		t.Fatalf("without sinks: %v", err)
	}
}
