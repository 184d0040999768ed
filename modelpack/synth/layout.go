package synth

import (
	"fmt"
	"strings"

	"github.com/moderuntime/mode/runtime/model"
)

// initKind says how a tensor is initialised.
type initKind int

const (
	initLinear initKind = iota // N(0, 1/fan_in): unit-variance outputs for unit-variance inputs
	initOut                    // a projection back into the residual stream: initLinear scaled down by depth
	initEmbed                  // N(0, 1)
	initNorm                   // 1 + N(0, 0.05): near identity, but not exactly, so mistakes show
	initBias                   // N(0, 0.02)
	initRouter                 // like initLinear: router logits of unit spread give varied routing
)

// tensorSpec is one tensor to generate.
type tensorSpec struct {
	name  string
	shape []int
	init  initKind
}

// hfLayout lists the tensors of an HF-family model as the transformers
// implementation names them.
func hfLayout(o *Options) []tensorSpec {
	var s []tensorSpec
	add := func(init initKind, name string, shape ...int) {
		s = append(s, tensorSpec{name, shape, init})
	}
	qDim, kvDim := o.Heads*o.HeadDim, o.KVHeads*o.HeadDim
	add(initEmbed, "model.embed_tokens.weight", o.Vocab, o.Dim)
	add(initNorm, "model.norm.weight", o.Dim)
	if !o.TiedOutput {
		add(initLinear, "lm_head.weight", o.Vocab, o.Dim)
	}
	// swiglu adds a gate/up/down triple under prefix.
	swiglu := func(prefix, gate, up, down string, width int) {
		add(initLinear, prefix+gate+".weight", width, o.Dim)
		add(initLinear, prefix+up+".weight", width, o.Dim)
		add(initOut, prefix+down+".weight", o.Dim, width)
	}
	for l := range o.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(initNorm, p+"input_layernorm.weight", o.Dim)
		add(initNorm, p+"post_attention_layernorm.weight", o.Dim)
		add(initLinear, p+"self_attn.q_proj.weight", qDim, o.Dim)
		add(initLinear, p+"self_attn.k_proj.weight", kvDim, o.Dim)
		add(initLinear, p+"self_attn.v_proj.weight", kvDim, o.Dim)
		add(initOut, p+"self_attn.o_proj.weight", o.Dim, qDim)
		switch o.Arch {
		case "qwen2_moe": // Qwen2 attention always has q/k/v biases
			add(initBias, p+"self_attn.q_proj.bias", qDim)
			add(initBias, p+"self_attn.k_proj.bias", kvDim)
			add(initBias, p+"self_attn.v_proj.bias", kvDim)
		case "qwen3_moe": // RMSNorm per head
			add(initNorm, p+"self_attn.q_norm.weight", o.HeadDim)
			add(initNorm, p+"self_attn.k_norm.weight", o.HeadDim)
		case "olmoe": // RMSNorm over the whole projection
			add(initNorm, p+"self_attn.q_norm.weight", qDim)
			add(initNorm, p+"self_attn.k_norm.weight", kvDim)
		}
		if !o.sparse(l) {
			swiglu(p+"mlp.", "gate_proj", "up_proj", "down_proj", o.FFN)
			continue
		}
		switch o.Arch {
		case "mixtral":
			add(initRouter, p+"block_sparse_moe.gate.weight", o.Experts, o.Dim)
			for e := range o.Experts {
				swiglu(fmt.Sprintf("%sblock_sparse_moe.experts.%d.", p, e), "w1", "w3", "w2", o.FFN)
			}
		case "olmoe":
			add(initRouter, p+"mlp.gate.weight", o.Experts, o.Dim)
			for e := range o.Experts {
				swiglu(fmt.Sprintf("%smlp.experts.%d.", p, e), "gate_proj", "up_proj", "down_proj", o.FFN)
			}
		case "qwen2_moe", "qwen3_moe":
			add(initRouter, p+"mlp.gate.weight", o.Experts, o.Dim)
			for e := range o.Experts {
				swiglu(fmt.Sprintf("%smlp.experts.%d.", p, e), "gate_proj", "up_proj", "down_proj", o.ExpertFFN)
			}
			if o.Arch == "qwen2_moe" {
				swiglu(p+"mlp.shared_expert.", "gate_proj", "up_proj", "down_proj", o.SharedFFN)
				add(initLinear, p+"mlp.shared_expert_gate.weight", 1, o.Dim)
			}
		}
	}
	return s
}

// modeConfig is the native model.Config the options describe.
func modeConfig(o *Options, bos, eos int) model.Config {
	c := model.Config{
		Arch: "mode", Dim: o.Dim, Layers: o.Layers, Heads: o.Heads, KVHeads: o.KVHeads, HeadDim: o.HeadDim,
		Vocab: o.Vocab, MaxSeq: o.MaxSeq, NormEps: 1e-5, RopeTheta: 10000, RopeStyle: model.RopeHalf,
		TiedOutput: o.TiedOutput, BOS: bos, EOS: []int{eos},
	}
	for range o.Layers {
		f := model.FFN{
			ExpertWidths: append([]int(nil), o.ExpertWidths...),
			Router:       &model.Router{Scoring: o.Scoring, TopK: o.TopK, NormTopK: o.NormTopK},
		}
		if o.SharedFFN > 0 {
			f.SharedWidths = []int{o.SharedFFN}
			f.Router.Fallback = model.FallbackShared // overflow keeps the shared output
		}
		c.FFN = append(c.FFN, f)
	}
	return c
}

// modeLayout lists the tensors of a native model under canonical names.
func modeLayout(c *model.Config) []tensorSpec {
	var s []tensorSpec
	for _, sp := range c.Spec() {
		s = append(s, tensorSpec{sp.Name, sp.Shape, canonicalInit(sp.Name)})
	}
	return s
}

func canonicalInit(name string) initKind {
	last := name[strings.LastIndexByte(name, '.')+1:]
	switch last {
	case model.NameEmbed:
		return initEmbed
	case model.NameFinalNorm, "attn_norm", "ffn_norm", "q_norm", "k_norm":
		return initNorm
	case "wo", "down":
		return initOut
	case "bq", "bk", "bv", "router_bias":
		return initBias
	case "router":
		return initRouter
	}
	return initLinear
}
