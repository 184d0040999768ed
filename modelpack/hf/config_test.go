package hf_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/runtime/model"
)

// configOf returns the synth default config.json of arch, edited.
func configOf(t *testing.T, arch string, edit func(m map[string]any)) []byte {
	t.Helper()
	m := readConfig(t, synthDir(t, arch, nil))
	if edit != nil {
		edit(m)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func set(kv ...any) func(m map[string]any) {
	return func(m map[string]any) {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
	}
}

func del(keys ...string) func(m map[string]any) {
	return func(m map[string]any) {
		for _, k := range keys {
			delete(m, k)
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		arch string
		edit func(m map[string]any)
		want []string
	}{
		{"top_k above experts", "mixtral", set("num_experts_per_tok", 9), []string{"num_experts_per_tok 9 exceeds the 4 experts"}},
		{"negative hidden_size", "llama", set("hidden_size", -64), []string{"hidden_size must be positive, got -64"}},
		{"missing hidden_size", "olmoe", del("hidden_size"), []string{"hidden_size is missing"}},
		{"missing vocab_size", "llama", del("vocab_size"), []string{"vocab_size is missing"}},
		{"kv heads do not divide", "llama", set("num_key_value_heads", 3), []string{"num_attention_heads 4 is not a multiple of num_key_value_heads 3"}},
		{"hidden not divisible by heads", "qwen2_moe", set("hidden_size", 66), []string{"hidden_size 66 is not a multiple of num_attention_heads 4"}},
		{"odd head_dim", "llama", set("head_dim", 15), []string{"head_dim 15 must be even"}},
		{"unknown model_type", "llama", set("model_type", "gpt2"), []string{`model_type "gpt2" is not supported`}},
		{"missing model_type", "llama", del("model_type"), []string{"model_type is missing"}},
		{"not a causal LM", "llama", set("architectures", []string{"LlamaForSequenceClassification"}), []string{"architectures", "ForCausalLM"}},
		{"clip_qkv", "olmoe", set("clip_qkv", 8.0), []string{"clip_qkv 8 is not supported"}},
		{"gelu", "llama", set("hidden_act", "gelu"), []string{`hidden_act "gelu" is not supported`}},
		{"mlp_bias", "llama", set("mlp_bias", true), []string{"mlp_bias true is not supported"}},
		{"eos outside vocab", "qwen3_moe", set("eos_token_id", []int{3, 9999}), []string{"eos_token_id 9999 outside vocab_size 512"}},
		{"two bos", "llama", set("bos_token_id", []int{1, 2}), []string{"bos_token_id [1 2]: want one id"}},
		{"bos not a number", "llama", set("bos_token_id", "one"), []string{"bos_token_id"}},
		{"sparse step zero", "qwen2_moe", set("decoder_sparse_step", 0), []string{"decoder_sparse_step must be positive, got 0"}},
		{"mlp_only_layers out of range", "qwen3_moe", set("mlp_only_layers", []int{7}), []string{"mlp_only_layers entry 7 outside layers 0..2"}},
		{"missing moe width", "qwen3_moe", del("moe_intermediate_size"), []string{"moe_intermediate_size is missing"}},
		{"missing shared width", "qwen2_moe", del("shared_expert_intermediate_size"), []string{"shared_expert_intermediate_size is missing"}},
		{"zero eps", "llama", set("rms_norm_eps", 0), []string{"rms_norm_eps 0 out of range"}},
		{"negative theta", "llama", set("rope_theta", -1), []string{"rope_theta -1 must be positive"}},
		{"unknown rope type", "llama", set("rope_scaling", map[string]any{"type": "longrope", "factor": 2}), []string{`rope_scaling type "longrope" is not supported (linear, llama3, yarn, dynamic)`}},
		{"dynamic without factor", "llama", set("rope_scaling", map[string]any{"type": "dynamic"}), []string{`rope_scaling.factor is missing`}},
		{"yarn factor against positions", "qwen3_moe", set("rope_scaling", map[string]any{"rope_type": "yarn", "factor": 4, "original_max_position_embeddings": 128}), []string{"rope_scaling.factor 4 disagrees with max_position_embeddings/original_max_position_embeddings = 256/128 = 2"}},
		{"yarn truncate not bool", "llama", set("rope_scaling", map[string]any{"rope_type": "yarn", "factor": 4, "truncate": "no"}), []string{`rope_scaling.truncate "no" is not true or false`}},
		{"yarn negative mscale", "llama", set("rope_scaling", map[string]any{"rope_type": "yarn", "factor": 4, "mscale": -1}), []string{"rope_scaling.mscale -1 is out of range"}},
		{"rope factor below 1", "llama", set("rope_scaling", map[string]any{"rope_type": "linear", "factor": 0.5}), []string{"rope_scaling.factor 0.5 must be at least 1"}},
		{"llama3 incomplete", "llama", set("rope_scaling", map[string]any{"rope_type": "llama3", "factor": 8, "high_freq_factor": 4, "original_max_position_embeddings": 8192}), []string{"rope_scaling.low_freq_factor is missing"}},
		{"rope unknown key", "llama", set("rope_scaling", map[string]any{"rope_type": "linear", "factor": 2, "foo": 1}), []string{"rope_scaling.foo is not understood"}},
		{"partial rotary", "llama", set("rope_parameters", map[string]any{"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}), []string{"rope_parameters.partial_rotary_factor 0.5 is not supported"}},
		{"no experts", "mixtral", set("num_local_experts", 0), []string{"num_local_experts must be positive, got 0"}},
		{"expert aliases disagree", "olmoe", set("num_local_experts", 4), []string{"num_experts 8 disagrees with num_local_experts 4"}},
		{"too many layers", "llama", set("num_hidden_layers", 100000), []string{"num_hidden_layers 100000 exceeds 4096"}},
		{"too many experts", "olmoe", set("num_experts", 1<<20), []string{"num_experts"}},
		{"size not an int", "llama", set("vocab_size", "512"), []string{"vocab_size is a JSON string, want int"}},
		{"mode without object", "mode", del("mode"), []string{`"mode" object`}},
		{"mode unknown field", "mode", func(m map[string]any) { m["mode"].(map[string]any)["dimension"] = 3 }, []string{"mode", `unknown field "dimension"`}},
		{"mode top_k above experts", "mode", func(m map[string]any) {
			m["mode"].(map[string]any)["ffn"].([]any)[1].(map[string]any)["router"].(map[string]any)["top_k"] = 5
		}, []string{"mode", "layer 1", "top_k 5 out of range 1..4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := hf.LoadConfig(configOf(t, tt.arch, tt.edit))
			wantErr(t, err, append([]string{"config.json"}, tt.want...)...)
		})
	}
	t.Run("invalid JSON", func(t *testing.T) {
		_, _, err := hf.LoadConfig([]byte(`{"model_type": "llama",`))
		wantErr(t, err, "config.json")
	})
}

func TestLoadConfigValues(t *testing.T) {
	tests := []struct {
		name  string
		arch  string
		edit  func(m map[string]any)
		check func(t *testing.T, c *model.Config)
	}{
		{"bos and eos lists", "llama", set("bos_token_id", []int{5}, "eos_token_id", []int{6, 7}), func(t *testing.T, c *model.Config) {
			if c.BOS != 5 || !slices.Equal(c.EOS, []int{6, 7}) {
				t.Errorf("bos %d eos %v", c.BOS, c.EOS)
			}
		}},
		{"null bos and eos", "llama", set("bos_token_id", nil, "eos_token_id", nil), func(t *testing.T, c *model.Config) {
			if c.BOS != -1 || len(c.EOS) != 0 {
				t.Errorf("bos %d eos %v, want -1 and none", c.BOS, c.EOS)
			}
		}},
		{"llama default ids", "llama", del("bos_token_id", "eos_token_id"), func(t *testing.T, c *model.Config) {
			if c.BOS != 1 || !slices.Equal(c.EOS, []int{2}) {
				t.Errorf("bos %d eos %v, want LlamaConfig's 1 and [2]", c.BOS, c.EOS)
			}
		}},
		{"qwen default ids", "qwen2_moe", del("bos_token_id", "eos_token_id"), func(t *testing.T, c *model.Config) {
			if c.BOS != -1 || len(c.EOS) != 0 {
				t.Errorf("bos %d eos %v, want none", c.BOS, c.EOS)
			}
		}},
		{"defaults for absent keys", "llama", del("num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "max_position_embeddings", "tie_word_embeddings"), func(t *testing.T, c *model.Config) {
			if c.KVHeads != c.Heads || c.HeadDim != c.Dim/c.Heads || c.NormEps != 1e-6 || c.RopeTheta != 10000 || c.MaxSeq != 2048 || c.TiedOutput {
				t.Errorf("config %+v", c)
			}
		}},
		{"linear rope", "llama", set("rope_scaling", map[string]any{"type": "linear", "factor": 2}), func(t *testing.T, c *model.Config) {
			if *c.RopeScale != (model.RopeScaling{Type: "linear", Factor: 2}) {
				t.Errorf("rope %+v", *c.RopeScale)
			}
		}},
		{"llama3 rope", "llama", set("rope_scaling", map[string]any{"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}, "rope_theta", 500000.0), func(t *testing.T, c *model.Config) {
			want := model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OrigMaxPosition: 8192}
			if *c.RopeScale != want || c.RopeTheta != 500000 {
				t.Errorf("rope %+v theta %v", *c.RopeScale, c.RopeTheta)
			}
		}},
		{"yarn defaults", "qwen3_moe", set("rope_scaling", map[string]any{"rope_type": "yarn", "factor": 4, "original_max_position_embeddings": 64}), func(t *testing.T, c *model.Config) {
			want := model.RopeScaling{Type: "yarn", Factor: 4, OrigMaxPosition: 64, BetaFast: 32, BetaSlow: 1}
			if *c.RopeScale != want {
				t.Errorf("rope %+v", *c.RopeScale)
			}
		}},
		{"yarn mscale", "llama", set("rope_scaling", map[string]any{"rope_type": "yarn", "factor": 40, "mscale": 1.0, "mscale_all_dim": 0.707, "beta_fast": 32, "beta_slow": 1, "truncate": false}), func(t *testing.T, c *model.Config) {
			want := model.RopeScaling{Type: "yarn", Factor: 40, OrigMaxPosition: 256, BetaFast: 32, BetaSlow: 1, Mscale: 1, MscaleAllDim: 0.707, NoTruncate: true}
			if *c.RopeScale != want {
				t.Errorf("rope %+v", *c.RopeScale)
			}
		}},
		{"yarn attention_factor", "llama", set("rope_scaling", map[string]any{"rope_type": "yarn", "factor": 4, "attention_factor": 1.2}), func(t *testing.T, c *model.Config) {
			if _, af := c.RopeFreqs(); c.RopeScale.AttnFactor != 1.2 || af != 1.2 {
				t.Errorf("rope %+v, attention factor %v", *c.RopeScale, af)
			}
		}},
		{"dynamic", "llama", set("rope_scaling", map[string]any{"type": "dynamic", "factor": 2}), func(t *testing.T, c *model.Config) {
			want := model.RopeScaling{Type: "dynamic", Factor: 2, OrigMaxPosition: 256}
			if *c.RopeScale != want || c.MaxSeq != 512 {
				t.Errorf("rope %+v, context %d", *c.RopeScale, c.MaxSeq)
			}
		}},
		{"v5 rope_parameters", "mixtral", func(m map[string]any) {
			delete(m, "rope_theta")
			m["rope_parameters"] = map[string]any{"rope_type": "default", "rope_theta": 250000.0}
		}, func(t *testing.T, c *model.Config) {
			if c.RopeScale != nil || c.RopeTheta != 250000 {
				t.Errorf("rope %+v theta %v", c.RopeScale, c.RopeTheta)
			}
		}},
		{"mixtral sliding window", "mixtral", set("sliding_window", 128), func(t *testing.T, c *model.Config) {
			if c.MaxSeq != 128 {
				t.Errorf("MaxSeq %d, want the 128-token window", c.MaxSeq)
			}
		}},
		{"qwen sliding window off", "qwen2_moe", set("sliding_window", 16), func(t *testing.T, c *model.Config) {
			if c.MaxSeq != 256 {
				t.Errorf("MaxSeq %d, want 256 (use_sliding_window is false)", c.MaxSeq)
			}
		}},
		{"qwen2 without qkv bias", "qwen2_moe", set("qkv_bias", false), func(t *testing.T, c *model.Config) {
			if c.AttnBias {
				t.Error("AttnBias with qkv_bias false")
			}
		}},
		{"qwen without experts", "qwen2_moe", set("num_experts", 0), func(t *testing.T, c *model.Config) {
			for l := range c.FFN {
				if c.FFN[l].Sparse() || c.FFN[l].SharedWidths[0] != 128 {
					t.Errorf("layer %d: %+v", l, c.FFN[l])
				}
			}
		}},
		{"llama attention bias", "llama", set("attention_bias", true), func(t *testing.T, c *model.Config) {
			if !c.AttnBias {
				t.Error("AttnBias false")
			}
		}},
		{"tied", "olmoe", set("tie_word_embeddings", true), func(t *testing.T, c *model.Config) {
			if !c.TiedOutput {
				t.Error("TiedOutput false")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := hf.LoadConfig(configOf(t, tt.arch, tt.edit))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, &c)
		})
	}
}

func TestNameMap(t *testing.T) {
	// Spot checks written from the transformers module paths.
	want := map[string]map[string]string{
		"llama": {
			"model.embed_tokens.weight":                      model.NameEmbed,
			"lm_head.weight":                                 model.NameOutput,
			"model.layers.1.self_attn.o_proj.weight":         "layers.1.wo",
			"model.layers.0.mlp.down_proj.weight":            "layers.0.shared.0.down",
			"model.layers.0.post_attention_layernorm.weight": "layers.0.ffn_norm",
		},
		"mixtral": {
			"model.layers.0.block_sparse_moe.gate.weight":         "layers.0.router",
			"model.layers.1.block_sparse_moe.experts.3.w1.weight": "layers.1.experts.3.gate",
			"model.layers.1.block_sparse_moe.experts.3.w3.weight": "layers.1.experts.3.up",
			"model.layers.1.block_sparse_moe.experts.3.w2.weight": "layers.1.experts.3.down",
		},
		"qwen2_moe": {
			"model.layers.0.self_attn.k_proj.bias":              "layers.0.bk",
			"model.layers.2.mlp.gate.weight":                    "layers.2.router",
			"model.layers.2.mlp.experts.7.up_proj.weight":       "layers.2.experts.7.up",
			"model.layers.2.mlp.shared_expert.down_proj.weight": "layers.2.shared.0.down",
			"model.layers.2.mlp.shared_expert_gate.weight":      "layers.2.shared_gate",
		},
		"qwen3_moe": {
			"model.layers.0.self_attn.q_norm.weight":        "layers.0.q_norm",
			"model.layers.2.mlp.experts.0.gate_proj.weight": "layers.2.experts.0.gate",
		},
		"olmoe": {
			"model.layers.1.self_attn.k_norm.weight":        "layers.1.k_norm",
			"model.layers.1.mlp.experts.5.down_proj.weight": "layers.1.experts.5.down",
		},
		"gpt_oss": {
			"model.layers.1.self_attn.sinks":            "layers.1.sinks",
			"model.layers.0.mlp.router.bias":            "layers.0.router_logit_bias",
			"model.layers.0.mlp.experts.down_proj_bias": "layers.0.expert_down_bias",
			"model.layers.1.self_attn.o_proj.bias":      "layers.1.bo",
		},
		"mode": {
			"layers.0.experts.2.up":  "layers.0.experts.2.up",
			"layers.1.shared.0.gate": "layers.1.shared.0.gate",
		},
	}
	for _, arch := range hf.ModelTypes() {
		t.Run(arch, func(t *testing.T) {
			c, names, err := hf.LoadConfig(configOf(t, arch, nil))
			if err != nil {
				t.Fatal(err)
			}
			for h, canon := range want[arch] {
				if names[h] != canon {
					t.Errorf("names[%q] = %q, want %q", h, names[h], canon)
				}
			}
			// The map covers exactly the tensors the config requires, once each.
			var specs, mapped []string
			for _, sp := range c.Spec() {
				// gpt-oss's experts and gate/up biases are cut out of fused
				// tensors at read time, not named one to one.
				if arch == "gpt_oss" && (sp.Expert >= 0 || strings.HasSuffix(sp.Name, "expert_gate_bias") || strings.HasSuffix(sp.Name, "expert_up_bias")) {
					continue
				}
				specs = append(specs, sp.Name)
			}
			for _, canon := range names {
				mapped = append(mapped, canon)
			}
			parts, err := hf.Parts(configOf(t, arch, nil))
			if err != nil {
				t.Fatal(err)
			}
			for canon := range parts { // Granite's experts: rows of fused tensors
				mapped = append(mapped, canon)
			}
			slices.Sort(specs)
			slices.Sort(mapped)
			if !slices.Equal(specs, mapped) {
				t.Errorf("map covers %d names, spec has %d", len(mapped), len(specs))
			}
		})
	}
}

// TestLoadConfigDeep: config.json is refused past the nesting bound.
func TestLoadConfigDeep(t *testing.T) {
	deep := []byte(`{"model_type":"llama","x":` + strings.Repeat("[", 1<<20) + `}`)
	if _, _, err := hf.LoadConfig(deep); err == nil || !strings.Contains(err.Error(), "config.json: JSON nests deeper than 128") {
		t.Fatalf("error %v", err)
	}
}
