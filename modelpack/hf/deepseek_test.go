package hf_test

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/refcheck"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// deepSeekConfig is the config.json transformers / modeling_deepseek.py
// would have for a testmodel DeepSeek family, written from
// configuration_deepseek.py's keys.
func deepSeekConfig(family string, c *model.Config) map[string]any {
	f := &c.FFN[1]
	r := f.Router
	m := c.MLA
	s := c.RopeScale
	cfg := map[string]any{
		"model_type": "deepseek_v2", "architectures": []string{"DeepseekV2ForCausalLM"},
		"hidden_size": c.Dim, "intermediate_size": c.FFN[0].SharedWidths[0], "moe_intermediate_size": f.ExpertWidths[0],
		"num_hidden_layers": c.Layers, "num_attention_heads": c.Heads, "num_key_value_heads": c.Heads, "vocab_size": c.Vocab,
		"max_position_embeddings": int(s.Factor) * s.OrigMaxPosition, "rms_norm_eps": c.NormEps, "rope_theta": c.RopeTheta,
		"rope_scaling": map[string]any{"type": "yarn", "factor": s.Factor, "original_max_position_embeddings": s.OrigMaxPosition,
			"beta_fast": s.BetaFast, "beta_slow": s.BetaSlow, "mscale": s.Mscale, "mscale_all_dim": s.MscaleAllDim},
		"q_lora_rank": nil, "kv_lora_rank": m.KVLoraRank, "qk_nope_head_dim": m.NopeDim, "qk_rope_head_dim": m.RopeDim, "v_head_dim": m.VDim,
		"n_routed_experts": len(f.ExpertWidths), "n_shared_experts": f.SharedWidths[0] / f.ExpertWidths[0],
		"first_k_dense_replace": 1, "moe_layer_freq": 1, "num_experts_per_tok": r.TopK, "norm_topk_prob": r.NormTopK,
		"routed_scaling_factor": r.Scale(), "scoring_func": string(r.Scoring), "topk_method": "greedy",
		"tie_word_embeddings": c.TiedOutput, "bos_token_id": 0, "eos_token_id": 1, "torch_dtype": "bfloat16",
	}
	if m.QLoraRank > 0 {
		cfg["q_lora_rank"] = m.QLoraRank
	}
	if r.Groups > 0 {
		cfg["n_group"], cfg["topk_group"] = r.Groups, r.TopKGroups
		cfg["topk_method"] = "group_limited_greedy"
	}
	if family == "deepseek_v3" {
		cfg["model_type"], cfg["architectures"] = "deepseek_v3", []string{"DeepseekV3ForCausalLM"}
		cfg["topk_method"] = "noaux_tc"
	}
	return cfg
}

// writeDeepSeek writes m as a DeepSeek checkpoint in bf16 under
// transformers' tensor names (modeling_deepseek.py's module tree).
func writeDeepSeek(t *testing.T, dir, family string, m *model.Model) {
	t.Helper()
	c := &m.Config
	var ts []*tensor.Tensor
	add := func(name, canon string) {
		v, err := m.Weights[canon].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 2*len(v))
		for i, x := range v {
			b := tensor.F32ToBF16(x)
			data[2*i], data[2*i+1] = byte(b), byte(b>>8)
		}
		ts = append(ts, &tensor.Tensor{Name: name, DType: tensor.BF16, Shape: m.Weights[canon].Shape, Data: data})
	}
	add("model.embed_tokens.weight", model.NameEmbed)
	add("model.norm.weight", model.NameFinalNorm)
	if !c.TiedOutput {
		add("lm_head.weight", model.NameOutput)
	}
	for l := range c.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		n := func(s string) string { return model.LayerName(l, s) }
		add(p+"input_layernorm.weight", n("attn_norm"))
		add(p+"post_attention_layernorm.weight", n("ffn_norm"))
		if c.MLA.QLoraRank > 0 {
			add(p+"self_attn.q_a_proj.weight", n("wq_a"))
			add(p+"self_attn.q_a_layernorm.weight", n("q_a_norm"))
			add(p+"self_attn.q_b_proj.weight", n("wq_b"))
		} else {
			add(p+"self_attn.q_proj.weight", n("wq"))
		}
		add(p+"self_attn.kv_a_proj_with_mqa.weight", n("wkv_a"))
		add(p+"self_attn.kv_a_layernorm.weight", n("kv_a_norm"))
		add(p+"self_attn.kv_b_proj.weight", n("wkv_b"))
		add(p+"self_attn.o_proj.weight", n("wo"))
		f := &c.FFN[l]
		if !f.Sparse() {
			for _, x := range []string{"gate", "up", "down"} {
				add(p+"mlp."+x+"_proj.weight", model.SharedName(l, 0, x))
			}
			continue
		}
		add(p+"mlp.gate.weight", n("router"))
		if f.Router.SelectionBias {
			add(p+"mlp.gate.e_score_correction_bias", n("router_bias"))
		}
		for e := range f.ExpertWidths {
			for _, x := range []string{"gate", "up", "down"} {
				add(fmt.Sprintf("%smlp.experts.%d.%s_proj.weight", p, e, x), model.ExpertName(l, e, x))
			}
		}
		for _, x := range []string{"gate", "up", "down"} {
			add(p+"mlp.shared_experts."+x+"_proj.weight", model.SharedName(l, 0, x))
		}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), nil, ts...); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, dir, deepSeekConfig(family, c))
}

// TestDeepSeekHF loads DeepSeek checkpoints (bf16) written under
// transformers' names: the config must be the family's (MLA dims, dense
// first layer, shared experts, the router's method), every tensor the
// original's bf16 rounding, and the engine's logits equal to the float64
// reference at every decode position.
func TestDeepSeekHF(t *testing.T) {
	for _, family := range testmodel.DeepSeekFamilies {
		t.Run(family, func(t *testing.T) {
			orig := testmodel.Random(testmodel.Family(family, false), 5)
			dir := t.TempDir()
			writeDeepSeek(t, dir, family, orig)
			m, err := hf.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			c, w := m.Config, orig.Config
			if !reflect.DeepEqual(c.MLA, w.MLA) || !reflect.DeepEqual(c.FFN, w.FFN) || !reflect.DeepEqual(c.RopeScale, w.RopeScale) ||
				c.RopeStyle != w.RopeStyle || c.HeadDim != w.HeadDim || c.KVHeads != w.KVHeads {
				t.Fatalf("config\n%+v\nwant\n%+v", c, w)
			}
			for _, sp := range c.Spec() {
				got, err := m.Weights[sp.Name].Float32s()
				if err != nil {
					t.Fatal(err)
				}
				want, _ := orig.Weights[sp.Name].Float32s()
				for i := range want {
					if got[i] != math.Float32frombits(uint32(tensor.F32ToBF16(want[i]))<<16) {
						t.Fatalf("%s[%d] = %v, want bf16 of %v", sp.Name, i, got[i], want[i])
					}
				}
			}
			ids := []int{1, 5, 17, 42, 3, 96, 11, 64}
			refcheck.Decode(t, "", m, m, ids)
		})
	}
}

// TestDeepSeekConfigErrors: what the engine does not implement is refused
// at load with a sentence naming the key and the value.
func TestDeepSeekConfigErrors(t *testing.T) {
	base := func() map[string]any {
		c := testmodel.Family("deepseek_v3", false)
		return deepSeekConfig("deepseek_v3", &c)
	}
	for _, tt := range []struct {
		key  string
		v    any
		want string
	}{
		{"topk_method", "random", `topk_method "random" is not supported (greedy, group_limited_greedy, noaux_tc)`},
		{"scoring_func", "relu", `scoring_func "relu" is not supported (softmax, sigmoid)`},
		{"n_group", 3, "n_group 3 does not divide n_routed_experts 8"},
		{"n_group", 8, "n_group 8 leaves groups of one expert"},
		{"topk_group", 5, "topk_group 5 exceeds n_group 4"},
		{"n_group", nil, "n_group is missing (topk_method noaux_tc needs it)"},
		{"attention_bias", true, "attention_bias true is not supported"},
		{"qk_rope_head_dim", 3, "qk_rope_head_dim 3 must be even"},
		{"q_lora_rank", "big", `q_lora_rank "big" is not an integer or null`},
		{"routed_scaling_factor", -1.0, "routed_scaling_factor -1 must be a positive finite number"},
		{"rope_scaling", map[string]any{"type": "longrope", "factor": 2.0}, `rope_scaling type "longrope" is not supported`},
	} {
		c := base()
		c[tt.key] = tt.v
		raw, _ := json.Marshal(c)
		if _, _, err := hf.LoadConfig(raw); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s = %v: error %v, want one containing %q", tt.key, tt.v, err, tt.want)
		}
	}
	// DeepSeek-V2's MoEGate does not scale normalised weights
	c := base()
	c["model_type"], c["norm_topk_prob"], c["routed_scaling_factor"] = "deepseek_v2", true, 16.0
	raw, _ := json.Marshal(c)
	cfg, _, err := hf.LoadConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.FFN[1].Router.Scale(); s != 1 {
		t.Errorf("deepseek_v2 with norm_topk_prob: routed scale %v, want 1", s)
	}
}
