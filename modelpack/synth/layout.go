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
	initSink                   // N(0, 1): attention sinks that take a visible share of each softmax
)

// tensorSpec is one tensor to generate.
type tensorSpec struct {
	name  string
	shape []int
	init  initKind
	// mxfp4 is "blocks" or "scales" for one of the two U8 tensors of
	// MXFP4 experts [E, rows, cols] (shape is then the U8 tensor's);
	// the values are those of init over [E, rows, cols], quantised. With
	// matrix set and mxfp4 empty, the values drawn over matrix are stored
	// transposed ([E, cols, rows], gpt-oss's dequantised layout).
	mxfp4  string
	matrix []int // [E, rows, cols] of an mxfp4 spec
}

// hfLayout lists the tensors of an HF-family model as the transformers
// implementation names them.
func hfLayout(o *Options) []tensorSpec {
	var s []tensorSpec
	add := func(init initKind, name string, shape ...int) {
		s = append(s, tensorSpec{name: name, shape: shape, init: init})
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
		if o.isDeepSeek() {
			// DeepseekV2Attention's projections
			m := o.MLA
			if m.QLoraRank > 0 {
				add(initLinear, p+"self_attn.q_a_proj.weight", m.QLoraRank, o.Dim)
				add(initNorm, p+"self_attn.q_a_layernorm.weight", m.QLoraRank)
				add(initLinear, p+"self_attn.q_b_proj.weight", qDim, m.QLoraRank)
			} else {
				add(initLinear, p+"self_attn.q_proj.weight", qDim, o.Dim)
			}
			add(initLinear, p+"self_attn.kv_a_proj_with_mqa.weight", m.KVLoraRank+m.RopeDim, o.Dim)
			add(initNorm, p+"self_attn.kv_a_layernorm.weight", m.KVLoraRank)
			add(initLinear, p+"self_attn.kv_b_proj.weight", o.Heads*(m.NopeDim+m.VDim), m.KVLoraRank)
			add(initOut, p+"self_attn.o_proj.weight", o.Dim, o.Heads*m.VDim)
		} else {
			add(initLinear, p+"self_attn.q_proj.weight", qDim, o.Dim)
			add(initLinear, p+"self_attn.k_proj.weight", kvDim, o.Dim)
			add(initLinear, p+"self_attn.v_proj.weight", kvDim, o.Dim)
			add(initOut, p+"self_attn.o_proj.weight", o.Dim, qDim)
		}
		switch o.Arch {
		case "qwen2_moe": // Qwen2 attention always has q/k/v biases
			add(initBias, p+"self_attn.q_proj.bias", qDim)
			add(initBias, p+"self_attn.k_proj.bias", kvDim)
			add(initBias, p+"self_attn.v_proj.bias", kvDim)
		case "gpt_oss": // biases on all four projections, and sinks
			add(initBias, p+"self_attn.q_proj.bias", qDim)
			add(initBias, p+"self_attn.k_proj.bias", kvDim)
			add(initBias, p+"self_attn.v_proj.bias", kvDim)
			add(initBias, p+"self_attn.o_proj.bias", o.Dim)
			add(initSink, p+"self_attn.sinks", o.Heads)
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
		case "granitemoe", "granitemoeshared":
			// GraniteMoeParallelExperts: all experts in one tensor, each
			// expert's gate rows then its up rows.
			add(initRouter, p+"block_sparse_moe.router.layer.weight", o.Experts, o.Dim)
			add(initLinear, p+"block_sparse_moe.input_linear.weight", o.Experts, 2*o.FFN, o.Dim)
			add(initOut, p+"block_sparse_moe.output_linear.weight", o.Experts, o.Dim, o.FFN)
			if o.Arch == "granitemoeshared" {
				add(initLinear, p+"shared_mlp.input_linear.weight", 2*o.SharedFFN, o.Dim)
				add(initOut, p+"shared_mlp.output_linear.weight", o.Dim, o.SharedFFN)
			}
		case "gpt_oss":
			add(initRouter, p+"mlp.router.weight", o.Experts, o.Dim)
			add(initBias, p+"mlp.router.bias", o.Experts)
			pe := p + "mlp.experts."
			add(initBias, pe+"gate_up_proj_bias", o.Experts, 2*o.FFN)
			add(initBias, pe+"down_proj_bias", o.Experts, o.Dim)
			if !o.MXFP4 {
				// Input-major, for x @ W: [E, D, 2I] and [E, I, D], the
				// values drawn output-major as for MXFP4 and transposed,
				// so one seed gives both layouts the same experts.
				s = append(s, tensorSpec{name: pe + "gate_up_proj", shape: []int{o.Experts, o.Dim, 2 * o.FFN}, init: initLinear, matrix: []int{o.Experts, 2 * o.FFN, o.Dim}},
					tensorSpec{name: pe + "down_proj", shape: []int{o.Experts, o.FFN, o.Dim}, init: initOut, matrix: []int{o.Experts, o.Dim, o.FFN}})
				continue
			}
			mx := func(init initKind, name string, rows, cols int) {
				m := []int{o.Experts, rows, cols}
				s = append(s, tensorSpec{name + "_blocks", []int{o.Experts, rows, cols / 32, 16}, init, "blocks", m},
					tensorSpec{name + "_scales", []int{o.Experts, rows, cols / 32}, init, "scales", m})
			}
			mx(initLinear, pe+"gate_up_proj", 2*o.FFN, o.Dim)
			mx(initOut, pe+"down_proj", o.Dim, o.FFN)
		case "olmoe":
			add(initRouter, p+"mlp.gate.weight", o.Experts, o.Dim)
			for e := range o.Experts {
				swiglu(fmt.Sprintf("%smlp.experts.%d.", p, e), "gate_proj", "up_proj", "down_proj", o.FFN)
			}
		case "deepseek_v2", "deepseek_v3":
			add(initRouter, p+"mlp.gate.weight", o.Experts, o.Dim)
			if o.Arch == "deepseek_v3" {
				add(initBias, p+"mlp.gate.e_score_correction_bias", o.Experts)
			}
			for e := range o.Experts {
				swiglu(fmt.Sprintf("%smlp.experts.%d.", p, e), "gate_proj", "up_proj", "down_proj", o.ExpertFFN)
			}
			swiglu(p+"mlp.shared_experts.", "gate_proj", "up_proj", "down_proj", o.SharedFFN)
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
			ExpertArch:   append([]model.ExpertArch(nil), o.ExpertArch...),
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
		s = append(s, tensorSpec{name: sp.Name, shape: sp.Shape, init: canonicalInit(sp.Name)})
	}
	return s
}

func canonicalInit(name string) initKind {
	last := name[strings.LastIndexByte(name, '.')+1:]
	switch last {
	case model.NameEmbed:
		return initEmbed
	case model.NameFinalNorm, "attn_norm", "ffn_norm", "q_norm", "k_norm", "q_a_norm", "kv_a_norm":
		return initNorm
	case "wo", "down":
		return initOut
	case "bq", "bk", "bv", "bo", "router_bias", "router_logit_bias", "expert_gate_bias", "expert_up_bias", "expert_down_bias":
		return initBias
	case "sinks":
		return initSink
	case "router":
		return initRouter
	}
	return initLinear
}
