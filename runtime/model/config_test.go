package model

import (
	"math"
	"strings"
	"testing"
)

func base() Config {
	return Config{Arch: "t", Dim: 8, Layers: 2, Heads: 2, KVHeads: 1, HeadDim: 4, Vocab: 10, MaxSeq: 16,
		NormEps: 1e-5, RopeTheta: 10000, RopeStyle: RopeHalf, BOS: 0, EOS: []int{1},
		FFN: []FFN{{SharedWidths: []int{12}}, {ExpertWidths: []int{4, 12, 8}, Router: &Router{Scoring: Softmax, TopK: 2, Fallback: 0}}}}
}

func TestValidate(t *testing.T) {
	if c := base(); c.Validate() != nil {
		t.Fatalf("base config: %v", c.Validate())
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"zero dim", func(c *Config) { c.Dim = 0 }, "dim must be positive"},
		{"heads vs kv", func(c *Config) { c.KVHeads = 3 }, "not a multiple of n_kv_heads"},
		{"odd head dim", func(c *Config) { c.HeadDim = 3 }, "must be even"},
		{"huge vocab", func(c *Config) { c.Vocab = 1 << 30 }, "out of range"},
		{"eps", func(c *Config) { c.NormEps = 0 }, "norm_eps"},
		{"theta NaN", func(c *Config) { c.RopeTheta = math.NaN() }, "rope_theta"},
		{"rope style", func(c *Config) { c.RopeStyle = "spiral" }, "rope_style"},
		{"rope type", func(c *Config) { c.RopeScale = &RopeScaling{Type: "longrope", Factor: 2} }, `rope_scaling type "longrope" is not supported (linear, llama3, yarn, dynamic)`},
		{"dynamic without original context", func(c *Config) { c.RopeScale = &RopeScaling{Type: "dynamic", Factor: 2} }, `dynamic rope_scaling needs original_max_position_embeddings > 0`},
		{"yarn negative mscale", func(c *Config) { c.RopeScale = &RopeScaling{Type: "yarn", Factor: 2, Mscale: -1} }, `rope_scaling mscale -1 must be a finite number >= 0`},
		{"granite multiplier", func(c *Config) { c.ResidualScale = float32(math.Inf(1)) }, `residual_multiplier +Inf must be a positive finite number`},
		{"rope factor", func(c *Config) { c.RopeScale = &RopeScaling{Type: "linear", Factor: 0.5} }, "factor 0.5"},
		{"llama3 fields", func(c *Config) { c.RopeScale = &RopeScaling{Type: "llama3", Factor: 8} }, "llama3 rope_scaling needs"},
		{"qk norm", func(c *Config) { c.QKNorm = "sideways" }, "qk_norm"},
		{"bos", func(c *Config) { c.BOS = 10 }, "bos_token_id 10"},
		{"eos", func(c *Config) { c.EOS = []int{-2} }, "eos_token_id -2"},
		{"ffn count", func(c *Config) { c.FFN = c.FFN[:1] }, "2 layers but 1 ffn"},
		{"no experts", func(c *Config) { c.FFN[0] = FFN{} }, "layer 0: ffn has no experts"},
		{"zero width", func(c *Config) { c.FFN[1].ExpertWidths[1] = 0 }, "expert width 0"},
		{"top_k", func(c *Config) { c.FFN[1].Router.TopK = 4 }, "top_k 4 out of range 1..3"},
		{"scoring", func(c *Config) { c.FFN[1].Router.Scoring = "argmax" }, "scoring"},
		{"router without experts", func(c *Config) { c.FFN[0].Router = &Router{Scoring: Softmax, TopK: 1} }, "router without routed experts"},
		{"experts without router", func(c *Config) { c.FFN[1].Router = nil }, "no router"},
		{"fallback", func(c *Config) { c.FFN[1].Router.Fallback = 3 }, "fallback expert 3"},
		{"fallback shared without shared", func(c *Config) {
			c.FFN[1].Router.Fallback, c.FFN[1].Router.CapacityFactor = FallbackShared, 1.25
		}, "has none"},
		{"shared gate without shared", func(c *Config) { c.FFN[1].SharedGate = true }, "shared_gate without"},
		{"capacity NaN", func(c *Config) { c.FFN[1].Router.CapacityFactor = math.NaN() }, "capacity_factor"},
		{"too many experts", func(c *Config) { c.FFN[1].ExpertWidths = make([]int, MaxExperts+1) }, "more than the 16384"},
		{"too many shared", func(c *Config) { c.FFN[0].SharedWidths = make([]int, MaxShared+1) }, "65 shared experts"},
		{"n_group does not divide", func(c *Config) {
			c.FFN[1].Router.Groups, c.FFN[1].Router.TopKGroups, c.FFN[1].Router.GroupScore = 2, 1, GroupMax
		}, "n_group 2 does not divide the 3 routed experts"},
		{"topk_group", func(c *Config) {
			c.FFN[1].Router.Groups, c.FFN[1].Router.TopKGroups, c.FFN[1].Router.GroupScore = 3, 4, GroupMax
		}, "topk_group 4 out of range 1..3"},
		{"top_k beyond the groups", func(c *Config) {
			c.FFN[1].Router.Groups, c.FFN[1].Router.TopKGroups, c.FFN[1].Router.GroupScore = 3, 1, GroupMax
		}, "top_k 2 is more than the 1 experts"},
		{"unknown group score", func(c *Config) {
			c.FFN[1].Router.Groups, c.FFN[1].Router.TopKGroups, c.FFN[1].Router.GroupScore = 1, 1, "median"
		}, `group_score "median" is not supported`},
		{"group score without groups", func(c *Config) { c.FFN[1].Router.GroupScore = GroupMax }, "need n_group > 0"},
		{"mla head_dim", func(c *Config) {
			c.KVHeads, c.MLA = 2, &MLA{KVLoraRank: 4, NopeDim: 4, RopeDim: 2, VDim: 4}
		}, "mla head_dim 4 is not qk_nope_head_dim 4 + qk_rope_head_dim 2"},
		{"mla odd rope", func(c *Config) {
			c.KVHeads, c.MLA = 2, &MLA{KVLoraRank: 4, NopeDim: 1, RopeDim: 3, VDim: 4}
		}, "mla qk_rope_head_dim 3 must be even"},
		{"mla kv heads", func(c *Config) { c.MLA = &MLA{KVLoraRank: 4, NopeDim: 2, RopeDim: 2, VDim: 4} }, "mla n_kv_heads 1 must equal n_heads 2"},
		{"mla zero rank", func(c *Config) { c.KVHeads, c.MLA = 2, &MLA{NopeDim: 2, RopeDim: 2, VDim: 4} }, "mla kv_lora_rank 0 out of range"},
		{"mla with biases", func(c *Config) {
			c.KVHeads, c.AttnBias, c.MLA = 2, true, &MLA{KVLoraRank: 4, NopeDim: 2, RopeDim: 2, VDim: 4}
		}, "attention_bias is not supported with multi-head latent attention"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			c.FFN = []FFN{{SharedWidths: []int{12}}, {ExpertWidths: []int{4, 12, 8}, Router: &Router{Scoring: Softmax, TopK: 2}}}
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestRopeFreqs checks the scaling rules on hand-worked values.
func TestRopeFreqs(t *testing.T) {
	c := base()
	c.HeadDim = 8
	plain, af := c.RopeFreqs()
	want := []float64{1, 0.1, 0.01, 0.001} // 10000^(-2i/8)
	for i, w := range want {
		if math.Abs(float64(plain[i])-w)/w > 1e-6 || af != 1 {
			t.Fatalf("plain inv_freq %v, want %v", plain, want)
		}
	}
	c.RopeScale = &RopeScaling{Type: "linear", Factor: 4}
	lin, _ := c.RopeFreqs()
	for i := range lin {
		if math.Abs(float64(lin[i]*4-plain[i])) > 1e-9 {
			t.Fatalf("linear: %v is not plain/4 (%v)", lin, plain)
		}
	}
	// llama3 with original context 100, low 1, high 4: wavelengths 2π/f are
	// 6.28, 62.8, 628, 6283; high_wave = 25, low_wave = 100. The first is
	// kept, the last two are divided by 8, the second (62.8) is blended with
	// smooth = (100/62.83 - 1)/(4 - 1) = 0.19718.
	c.RopeScale = &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OrigMaxPosition: 100}
	l3, _ := c.RopeFreqs()
	smooth := (100/(2*math.Pi/0.1) - 1) / 3
	want = []float64{1, (1-smooth)*0.1/8 + smooth*0.1, 0.01 / 8, 0.001 / 8}
	for i, w := range want {
		if math.Abs(float64(l3[i])-w)/w > 1e-5 {
			t.Fatalf("llama3 inv_freq %v, want %v", l3, want)
		}
	}
	c.RopeScale = &RopeScaling{Type: "yarn", Factor: 4, OrigMaxPosition: 32}
	y, yaf := c.RopeFreqs()
	if math.Abs(float64(yaf)-(0.1*math.Log(4)+1)) > 1e-6 {
		t.Errorf("yarn attention factor %v", yaf)
	}
	// the highest frequency is extrapolated (kept), the lowest interpolated
	if y[0] != plain[0] || math.Abs(float64(y[3]*4-plain[3])) > 1e-9 {
		t.Errorf("yarn inv_freq %v (plain %v)", y, plain)
	}
}

func TestParamsAndSpec(t *testing.T) {
	c := base()
	total, active := c.Params()
	// embed 80, norm 8, output 80; per layer: attn_norm 8, wq 64, wk 32,
	// wv 32, wo 64, ffn_norm 8 = 208; layer 0 dense 3*12*8 = 288; layer 1
	// router 24 + experts 3*8*(4+12+8) = 576.
	if wantTotal := int64(80 + 8 + 80 + 2*208 + 288 + 24 + 576); total != wantTotal {
		t.Errorf("total %d, want %d", total, wantTotal)
	}
	// active: everything but routed experts, plus the two widest (12, 8)
	if wantActive := total - 576 + 3*8*(12+8); active != wantActive {
		t.Errorf("active %d, want %d", active, wantActive)
	}
	names := map[string]bool{}
	for _, sp := range c.Spec() {
		if names[sp.Name] {
			t.Errorf("duplicate %s", sp.Name)
		}
		names[sp.Name] = true
	}
	if !names["layers.1.experts.1.down"] || !names["layers.0.shared.0.gate"] || names["layers.0.router"] {
		t.Errorf("spec names wrong: %v", names)
	}
}

// TestSpecLen checks that the count agrees with the list for every
// combination of the options that add tensors.
func TestSpecLen(t *testing.T) {
	for _, tied := range []bool{false, true} {
		for _, bias := range []bool{false, true} {
			for _, qk := range []QKNorm{QKNormNone, QKNormHead, QKNormFull} {
				for _, sel := range []bool{false, true} {
					c := base()
					c.TiedOutput, c.AttnBias, c.QKNorm = tied, bias, qk
					c.FFN[0].SharedGate = true
					c.FFN[1].Router.SelectionBias = sel
					if got, want := c.SpecLen(), len(c.Spec()); got != want {
						t.Errorf("tied %v bias %v qk %q selection bias %v: SpecLen %d, len(Spec) %d", tied, bias, qk, sel, got, want)
					}
				}
			}
		}
	}
}
