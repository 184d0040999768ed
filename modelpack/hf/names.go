package hf

import (
	"fmt"

	"github.com/moderuntime/mode/runtime/model"
)

// hfNames lists every tensor the transformers implementation of arch has
// for cfg, mapped to its canonical name. With graniteParts for Granite's
// fused experts, it covers exactly cfg.Spec().
func hfNames(arch string, c *model.Config) NameMap {
	m := NameMap{
		"model.embed_tokens.weight": model.NameEmbed,
		"model.norm.weight":         model.NameFinalNorm,
	}
	if !c.TiedOutput {
		m["lm_head.weight"] = model.NameOutput
	}
	for l := range c.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		layer := func(hf, suffix string) { m[p+hf] = model.LayerName(l, suffix) }
		layer("input_layernorm.weight", "attn_norm")
		layer("post_attention_layernorm.weight", "ffn_norm")
		if c.MLA != nil {
			deepSeekNames(m, l, c)
			continue
		}
		for _, x := range []string{"q", "k", "v", "o"} {
			layer("self_attn."+x+"_proj.weight", "w"+x)
		}
		if c.AttnBias {
			for _, x := range []string{"q", "k", "v"} {
				layer("self_attn."+x+"_proj.bias", "b"+x)
			}
		}
		if c.AttnOutBias {
			layer("self_attn.o_proj.bias", "bo")
		}
		if c.Sinks {
			layer("self_attn.sinks", "sinks")
		}
		if c.QKNorm != model.QKNormNone {
			layer("self_attn.q_norm.weight", "q_norm")
			layer("self_attn.k_norm.weight", "k_norm")
		}
		f := &c.FFN[l]
		if !f.Sparse() { // a dense MLP is the layer's one shared expert
			mlp(m, p+"mlp.", "%s_proj.weight", func(part string) string { return model.SharedName(l, 0, part) })
			continue
		}
		if isGranite(arch) {
			// the experts are rows of fused tensors: see graniteParts
			layer("block_sparse_moe.router.layer.weight", "router")
			continue
		}
		if arch == "gpt_oss" {
			// The experts' fused tensors are cut up by resolve (gptoss.go).
			layer("mlp.router.weight", "router")
			layer("mlp.router.bias", "router_logit_bias")
			layer("mlp.experts.down_proj_bias", "expert_down_bias")
			continue
		}
		if arch == "mixtral" {
			layer("block_sparse_moe.gate.weight", "router")
			for e := range f.ExpertWidths {
				// Mixtral's w1 is the gate, w3 the up and w2 the down projection.
				prefix := fmt.Sprintf("%sblock_sparse_moe.experts.%d.", p, e)
				m[prefix+"w1.weight"] = model.ExpertName(l, e, "gate")
				m[prefix+"w3.weight"] = model.ExpertName(l, e, "up")
				m[prefix+"w2.weight"] = model.ExpertName(l, e, "down")
			}
			continue
		}
		layer("mlp.gate.weight", "router")
		for e := range f.ExpertWidths {
			mlp(m, fmt.Sprintf("%smlp.experts.%d.", p, e), "%s_proj.weight", func(part string) string { return model.ExpertName(l, e, part) })
		}
		if len(f.SharedWidths) > 0 { // Qwen2-MoE's single shared expert
			mlp(m, p+"mlp.shared_expert.", "%s_proj.weight", func(part string) string { return model.SharedName(l, 0, part) })
		}
		if f.SharedGate {
			layer("mlp.shared_expert_gate.weight", "shared_gate")
		}
	}
	return m
}

// mlp maps a SwiGLU block's gate, up and down projections under prefix.
func mlp(m NameMap, prefix, format string, canonical func(part string) string) {
	for _, part := range []string{"gate", "up", "down"} {
		m[prefix+fmt.Sprintf(format, part)] = canonical(part)
	}
}
