package gguf

import (
	"fmt"
	"math"

	"github.com/moderuntime/mode/runtime/model"
)

// DeepSeek-V2/V3 as llama.cpp's "deepseek2" architecture stores them
// (convert_hf_to_gguf.py's DeepseekV2Model, before llama.cpp split
// attn_kv_b into attn_k_b and attn_v_b): the HF projections under
// attn_q (or attn_q_a, attn_q_a_norm, attn_q_b), attn_kv_a_mqa,
// attn_kv_a_norm, attn_kv_b, attn_output, unpermuted, RoPE on adjacent
// pairs of the rope dimensions (llama.cpp's normal RoPE, which is
// modeling_deepseek.py's), and the MoE router's rules in metadata.

// deepSeekAttention reads the MLA dimensions: key_length is
// qk_nope+qk_rope, value_length v_head_dim, rope.dimension_count
// qk_rope_head_dim.
func deepSeekAttention(f *File, m meta, c *model.Config) error {
	var err error
	var ok bool
	hc := m.key("attention.head_count")
	if c.Heads, ok, err = m.uniform(hc, c.Layers); err != nil {
		return err
	} else if !ok || c.Heads < 1 {
		return keyError(hc, "is missing or zero")
	}
	c.KVHeads = c.Heads
	if _, ok := f.Get(m.key("attention.key_length_mla")); ok {
		return keyError(m.key("attention.key_length_mla"), "is set: files with llama.cpp's split attn_k_b/attn_v_b are not supported (convert with attn_kv_b)")
	}
	if _, ok := f.Tensor("blk.0.attn_k_b.weight"); ok {
		return fmt.Errorf("tensor blk.0.attn_k_b.weight: files with llama.cpp's split attn_k_b/attn_v_b are not supported (convert with attn_kv_b)")
	}
	mla := &model.MLA{}
	for _, k := range []struct {
		key string
		dst *int
	}{{"attention.kv_lora_rank", &mla.KVLoraRank}, {"attention.key_length", &c.HeadDim}, {"attention.value_length", &mla.VDim}, {"rope.dimension_count", &mla.RopeDim}} {
		if *k.dst, err = m.positive(m.key(k.key)); err != nil {
			return err
		}
	}
	if q, ok, err := m.int(m.key("attention.q_lora_rank")); err != nil {
		return err
	} else if ok && q < 0 {
		return keyError(m.key("attention.q_lora_rank"), "%d must not be negative", q)
	} else if ok {
		mla.QLoraRank = q
	}
	if mla.RopeDim%2 != 0 || mla.RopeDim >= c.HeadDim {
		return keyError(m.key("rope.dimension_count"), "%d must be even and below key_length %d", mla.RopeDim, c.HeadDim)
	}
	mla.NopeDim = c.HeadDim - mla.RopeDim
	c.MLA = mla
	return nil
}

// deepSeekRouter sets the router rules llama.cpp's deepseek2 reads from
// metadata: expert_gating_func (1 softmax, 2 sigmoid; absent: softmax),
// expert_weights_norm, expert_weights_scale, exp_probs_b (the selection
// bias), and expert_group_count/expert_group_used_count, whose groups
// llama.cpp's build_moe_ffn scores by the sum of their top two selection
// scores (noaux_tc's rule).
func deepSeekRouter(f *File, m meta, r *model.Router) error {
	if g, ok, err := m.int(m.key("expert_gating_func")); err != nil {
		return err
	} else if ok {
		switch g {
		case 1:
			r.Scoring = model.Softmax
		case 2:
			r.Scoring = model.Sigmoid
		default:
			return keyError(m.key("expert_gating_func"), "%d is not supported (1 softmax, 2 sigmoid)", g)
		}
	}
	if n, ok, err := m.bool(m.key("expert_weights_norm")); err != nil {
		return err
	} else {
		r.NormTopK = ok && n && r.TopK > 1
	}
	if s, ok, err := m.float(m.key("expert_weights_scale")); err != nil {
		return err
	} else if ok {
		if !(s > 0) || s > math.MaxFloat32 {
			return keyError(m.key("expert_weights_scale"), "%v must be a positive finite number", s)
		}
		r.ScalingFactor = float32(s)
	}
	r.SelectionBias = false
	for _, t := range f.Tensors() { // any sparse layer's; Sources then needs it in each
		if len(t.Name) > 4 && t.Name[:4] == "blk." && hasSuffix(t.Name, ".exp_probs_b.bias") {
			r.SelectionBias = true
			break
		}
	}
	groups, ok, err := m.int(m.key("expert_group_count"))
	if err != nil || !ok || groups <= 1 {
		return err
	}
	used, ok, err := m.int(m.key("expert_group_used_count"))
	if err != nil {
		return err
	}
	if !ok || used < 1 || used > groups {
		return keyError(m.key("expert_group_used_count"), "must be 1..%d with expert_group_count %d", groups, groups)
	}
	r.Groups, r.TopKGroups, r.GroupScore = groups, used, model.GroupTop2Sum
	return nil
}

// deepSeekYarn reads rope.scaling.yarn_log_multiplier, 0.1·mscale_all_dim:
// llama.cpp's deepseek2 multiplies the softmax scale by
// (1 + yarn_log_multiplier·ln factor)² and leaves cos and sin unscaled,
// which is DeepSeek's yarn with mscale equal to mscale_all_dim (as every
// released DeepSeek config has).
func deepSeekYarn(m meta, s *model.RopeScaling) error {
	// llama.cpp's deepseek2 sets its attn_factor to cancel YaRN's cos/sin
	// scale whatever the multiplier: the factor is 1.
	s.AttnFactor = 1
	v, ok, err := m.float(m.key("rope.scaling.yarn_log_multiplier"))
	if err != nil || !ok || v == 0 {
		return err
	}
	if !(v > 0) || math.IsInf(v, 0) {
		return keyError(m.key("rope.scaling.yarn_log_multiplier"), "%v must be a positive finite number", v)
	}
	s.Mscale, s.MscaleAllDim = v/0.1, v/0.1
	return nil
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }
