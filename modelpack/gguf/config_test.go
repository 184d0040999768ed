package gguf

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/model"
)

func TestConfigAndNames(t *testing.T) {
	tests := []struct {
		name  string
		spec  spec
		check func(t *testing.T, c model.Config)
	}{
		{"llama dense", spec{arch: "llama"}, func(t *testing.T, c model.Config) {
			if c.RopeStyle != model.RopeInterleaved || c.TiedOutput || c.FFN[0].Sparse() || !slices.Equal(c.FFN[1].SharedWidths, []int{tDense}) {
				t.Errorf("config %+v", c)
			}
		}},
		{"llama MoE (Mixtral)", spec{arch: "llama", experts: 4, tied: true}, func(t *testing.T, c model.Config) {
			f := c.FFN[1]
			if !c.TiedOutput || !f.Sparse() || len(f.ExpertWidths) != 4 || f.ExpertWidths[3] != tExpert || f.Router.TopK != 2 || !f.Router.NormTopK || len(f.SharedWidths) != 0 {
				t.Errorf("config %+v, layer 1 %+v", c, f)
			}
		}},
		{"llama MoE per-expert tensors", spec{arch: "llama", experts: 3, legacy: true}, func(t *testing.T, c model.Config) {
			if len(c.FFN[0].ExpertWidths) != 3 {
				t.Errorf("ffn %+v", c.FFN[0])
			}
		}},
		{"qwen2moe", spec{arch: "qwen2moe", experts: 4, shared: true, bias: true}, func(t *testing.T, c model.Config) {
			f := c.FFN[0]
			if c.RopeStyle != model.RopeHalf || !c.AttnBias || !f.SharedGate || !slices.Equal(f.SharedWidths, []int{tShared}) || f.Router.NormTopK || f.Router.Fallback != model.FallbackShared {
				t.Errorf("config %+v, layer 0 %+v %+v", c, f, f.Router)
			}
		}},
		{"qwen3moe", spec{arch: "qwen3moe", experts: 4, qkNorm: model.QKNormHead}, func(t *testing.T, c model.Config) {
			if c.QKNorm != model.QKNormHead || !c.FFN[0].Router.NormTopK || c.RopeStyle != model.RopeHalf {
				t.Errorf("config %+v", c)
			}
		}},
		{"olmoe", spec{arch: "olmoe", experts: 4, qkNorm: model.QKNormFull}, func(t *testing.T, c model.Config) {
			if c.QKNorm != model.QKNormFull || c.FFN[0].Router.NormTopK {
				t.Errorf("config %+v", c)
			}
		}},
		{"qwen2 dense", spec{arch: "qwen2", bias: true, tied: true}, func(t *testing.T, c model.Config) {
			if !c.AttnBias || !c.TiedOutput || c.RopeStyle != model.RopeHalf {
				t.Errorf("config %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := parse(t, tt.spec.model(t))
			c, err := Config(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if c.Arch != tt.spec.arch || c.Dim != tDim || c.Layers != tLayers || c.Heads != tHeads || c.KVHeads != tKV ||
				c.HeadDim != tHead || c.Vocab != tVocab || c.MaxSeq != 64 || c.NormEps != 1e-5 || c.RopeTheta != 10000 ||
				c.BOS != 1 || !slices.Equal(c.EOS, []int{2}) {
				t.Errorf("config %+v", c)
			}
			tt.check(t, c)
			checkCoverage(t, f, c)
		})
	}
}

// checkCoverage checks that Sources and Names cover every canonical name
// of cfg.Spec() exactly once, and that a weight read through its source
// has the canonical shape.
func checkCoverage(t *testing.T, f *File, c model.Config) {
	t.Helper()
	srcs, err := Sources(f, c)
	if err != nil {
		t.Fatal(err)
	}
	spec := c.Spec()
	if len(srcs) != len(spec) {
		t.Fatalf("%d sources for %d spec entries", len(srcs), len(spec))
	}
	for i, s := range srcs {
		if s.Canonical != spec[i].Name {
			t.Fatalf("source %d is %s, spec says %s", i, s.Canonical, spec[i].Name)
		}
		raw, err := f.ReadRaw(s.Tensor)
		if err != nil {
			t.Fatal(err)
		}
		if s.Expert >= 0 {
			if raw, err = ExpertSlice(raw, s.Expert); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(raw.Data) / 4; n != mul(s.Shape) || !slices.Equal(squeeze(raw.Shape()), squeeze(s.Shape)) {
			t.Errorf("%s from %s: shape %v, want %v", s.Canonical, s.Tensor, raw.Shape(), s.Shape)
		}
	}
	names, err := Names(f, c)
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]int{}
	for gg, canon := range names {
		if !strings.Contains(canon, ExpertWildcard) {
			covered[canon]++
			continue
		}
		info, _ := f.Tensor(gg)
		for e := range info.Dims[2] {
			covered[strings.Replace(canon, ExpertWildcard, strconv.Itoa(e), 1)]++
		}
	}
	for _, sp := range spec {
		if covered[sp.Name] != 1 {
			t.Errorf("%s covered %d times", sp.Name, covered[sp.Name])
		}
		delete(covered, sp.Name)
	}
	for name := range covered {
		t.Errorf("Names yields %s, which is not in the spec", name)
	}
	if len(names) != len(f.Tensors()) {
		t.Errorf("Names maps %d of the file's %d tensors", len(names), len(f.Tensors()))
	}
}

func mul(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func TestConfigErrors(t *testing.T) {
	f32 := func(name string, dims ...int) WTensor {
		return WTensor{Name: name, Type: TypeF32, Dims: dims, Values: make([]float32, mul(dims))}
	}
	type kvs = map[string]Value
	tests := []struct {
		name string
		spec spec
		want []string
	}{
		{"unsupported arch", spec{arch: "gemma"}, []string{"general.architecture", `"gemma" is not supported`}},
		{"context type", spec{arch: "llama", set: kvs{"llama.context_length": Scalar("x")}}, []string{"llama.context_length", "is string, want an integer"}},
		{"head count per layer", spec{arch: "llama", set: kvs{"llama.attention.head_count": Array([]uint32{2, 4})}}, []string{"llama.attention.head_count", "layer 1 has 4"}},
		{"kv heads", spec{arch: "llama", set: kvs{"llama.attention.head_count_kv": Scalar(uint32(3))}}, []string{"llama.attention.head_count_kv", "3 does not divide"}},
		{"key length", spec{arch: "llama", set: kvs{"llama.attention.key_length": Scalar(uint32(6))}}, []string{"blk.0.attn_q.weight", "shape [8 8]", "want [12 8]"}},
		{"partial rotary", spec{arch: "llama", set: kvs{"llama.rope.dimension_count": Scalar(uint32(2))}}, []string{"llama.rope.dimension_count", "partial rotary"}},
		{"value length", spec{arch: "llama", set: kvs{"llama.attention.value_length": Scalar(uint32(8))}}, []string{"llama.attention.value_length", "8 differs"}},
		{"vocab size", spec{arch: "llama", set: kvs{"llama.vocab_size": Scalar(uint32(15))}}, []string{"llama.vocab_size", "15 disagrees"}},
		{"eps type", spec{arch: "qwen2moe", experts: 4, shared: true, set: kvs{"qwen2moe.attention.layer_norm_rms_epsilon": Scalar("small")}}, []string{"qwen2moe.attention.layer_norm_rms_epsilon", "want a float"}},
		{"expert count", spec{arch: "qwen3moe", experts: 4, set: kvs{"qwen3moe.expert_count": Scalar(uint32(5))}}, []string{"blk.0.ffn_gate_inp.weight routes to 4 experts", "qwen3moe.expert_count is 5"}},
		{"expert width", spec{arch: "llama", experts: 4, set: kvs{"llama.feed_forward_length": Scalar(uint32(7))}}, []string{"llama.feed_forward_length", "says 7 but layer 0's tensors are 6 wide"}},
		{"shared width", spec{arch: "qwen2moe", experts: 4, shared: true, set: kvs{"qwen2moe.expert_shared_feed_forward_length": Scalar(uint32(11))}}, []string{"qwen2moe.expert_shared_feed_forward_length", "says 11"}},
		{"dense width per layer", spec{arch: "llama", set: kvs{"llama.feed_forward_length": Array([]int32{12, 13})}}, []string{"llama.feed_forward_length", "says 13 but layer 1"}},
		{"no FFN", spec{arch: "llama", dropTensor: "blk.1.ffn_gate.weight"}, []string{"layer 1 has no router", "blk.1.ffn_gate.weight is missing"}},
		{"missing up", spec{arch: "llama", dropTensor: "blk.0.ffn_up.weight"}, []string{"blk.0.ffn_up.weight", "is missing"}},
		{"missing embedding", spec{arch: "llama", dropTensor: "token_embd.weight"}, []string{"token_embd.weight is missing"}},
		{"stray tensor", spec{arch: "llama", extraT: []WTensor{f32("blk.0.attn_output.bias", tDim)}}, []string{"blk.0.attn_output.bias has no place"}},
		{"bias only in layer 1", spec{arch: "qwen2", extraT: []WTensor{f32("blk.1.attn_q.bias", tDim)}}, []string{"blk.1.attn_q.bias has no place"}},
		{"bad q norm", spec{arch: "qwen3", extraT: []WTensor{f32("blk.0.attn_q_norm.weight", 3)}}, []string{"attn_q_norm.weight", "neither"}},
		{"unknown rope type", spec{arch: "llama", set: kvs{"llama.rope.scaling.type": Scalar("longrope")}}, []string{"llama.rope.scaling.type", `"longrope" is not supported`}},
		{"yarn attn factor", spec{arch: "qwen3moe", experts: 4, set: kvs{
			"qwen3moe.rope.scaling.type": Scalar("yarn"), "qwen3moe.rope.scaling.factor": Scalar(float32(4)),
			"qwen3moe.rope.scaling.attn_factor": Scalar(float32(0.5)),
		}}, []string{"qwen3moe.rope.scaling.attn_factor", "not supported"}},
		{"linear without factor", spec{arch: "llama", set: kvs{"llama.rope.scaling.type": Scalar("linear")}}, []string{"rope.scale_linear", "at least 1"}},
		{"eot outside vocab", spec{arch: "qwen2", set: kvs{"tokenizer.ggml.eot_token_id": Scalar(int32(16))}}, []string{"tokenizer.ggml.eot_token_id", "16 outside"}},
		{"granite scale missing", spec{arch: "granitemoe", experts: 4}, []string{"key granitemoe.embedding_scale: is missing"}},
		{"granite scale negative", spec{arch: "granitemoe", experts: 4, set: kvs{
			"granitemoe.embedding_scale": Scalar(float32(12)), "granitemoe.attention.scale": Scalar(float32(0.25)),
			"granitemoe.residual_scale": Scalar(float32(0.22)), "granitemoe.logit_scale": Scalar(float32(-6)),
		}}, []string{"key granitemoe.logit_scale: -6 must be a positive finite number"}},
		{"top k", spec{arch: "olmoe", experts: 1}, []string{"olmoe.expert_used_count", "exceeds the 1 experts"}},
		{"rope freqs", spec{arch: "llama", extraT: []WTensor{{Name: ropeFreqsTensor, Type: TypeF32, Dims: []int{tHead / 2}, Values: []float32{1, 3}}}}, []string{ropeFreqsTensor, "divisor 1 is 3", "not supported"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := parse(t, tt.spec.model(t))
			c, err := Config(f)
			if err == nil {
				_, err = Sources(f, c)
			}
			wantError(t, err, append([]string{"gguf: test.gguf: "}, tt.want...)...)
		})
	}
}

func TestRopeScaling(t *testing.T) {
	type kvs = map[string]Value
	tests := []struct {
		name string
		set  kvs
		want *model.RopeScaling
	}{
		{"none", kvs{"llama.rope.scaling.type": Scalar("none")}, nil},
		{"linear", kvs{"llama.rope.scaling.type": Scalar("linear"), "llama.rope.scaling.factor": Scalar(float32(2))}, &model.RopeScaling{Type: "linear", Factor: 2}},
		{"old linear key", kvs{"llama.rope.scale_linear": Scalar(float32(4))}, &model.RopeScaling{Type: "linear", Factor: 4}},
		{"yarn", kvs{
			"llama.rope.scaling.type": Scalar("yarn"), "llama.rope.scaling.factor": Scalar(float32(4)),
			"llama.rope.scaling.original_context_length": Scalar(uint32(16)), "llama.rope.scaling.yarn_beta_fast": Scalar(float32(16)),
		}, &model.RopeScaling{Type: "yarn", Factor: 4, OrigMaxPosition: 16, BetaFast: 16, BetaSlow: 1}},
		{"yarn default context", kvs{"llama.rope.scaling.type": Scalar("yarn"), "llama.rope.scaling.factor": Scalar(float32(2))},
			&model.RopeScaling{Type: "yarn", Factor: 2, OrigMaxPosition: 64, BetaFast: 32, BetaSlow: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Config(parse(t, spec{arch: "llama", set: tt.set}.model(t)))
			if err != nil {
				t.Fatal(err)
			}
			if (c.RopeScale == nil) != (tt.want == nil) || (tt.want != nil && *c.RopeScale != *tt.want) {
				t.Errorf("rope scaling %+v, want %+v", c.RopeScale, tt.want)
			}
		})
	}
}

// TestLlama3RopeFreqs writes the rope_freqs tensor as llama.cpp's
// converter computes it for Llama 3.1 (factor 8, low 1, high 4, original
// context 8192) and checks that Config recognises the scaling.
func TestLlama3RopeFreqs(t *testing.T) {
	const headDim, theta = 128, 500000.0
	const factor, low, high, orig = 8.0, 1.0, 4.0, 8192.0
	freqs := make([]float32, headDim/2)
	for i := range freqs {
		f := 1 / math.Pow(theta, float64(2*i)/headDim)
		wavelen := 2 * math.Pi / f
		switch {
		case wavelen < orig/high:
			freqs[i] = 1
		case wavelen > orig/low:
			freqs[i] = factor
		default:
			smooth := (orig/wavelen - low) / (high - low)
			freqs[i] = float32(1 / ((1-smooth)/factor + smooth))
		}
	}
	s := spec{arch: "llama", headDim: headDim, set: map[string]Value{
		"llama.attention.key_length": Scalar(uint32(headDim)), "llama.rope.freq_base": Scalar(float32(theta)),
	}, extraT: []WTensor{{Name: ropeFreqsTensor, Type: TypeF32, Dims: []int{headDim / 2}, Values: freqs}}}
	f := parse(t, s.model(t))
	c, err := Config(f)
	if err != nil {
		t.Fatal(err)
	}
	want := model.RopeScaling{Type: "llama3", Factor: factor, LowFreqFactor: low, HighFreqFactor: high, OrigMaxPosition: orig}
	if c.RopeScale == nil || *c.RopeScale != want {
		t.Fatalf("rope scaling %+v, want %+v", c.RopeScale, want)
	}
	if _, err := Sources(f, c); err != nil {
		t.Fatal(err)
	}
}
