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
		{"rope type", func(c *Config) { c.RopeScale = &RopeScaling{Type: "dynamic", Factor: 2} }, `"dynamic" is not supported`},
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
