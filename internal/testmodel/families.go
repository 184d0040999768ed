package testmodel

import (
	"fmt"
	"slices"

	"github.com/moderuntime/mode/runtime/model"
)

// Families names the configs Family builds: each is small (dim 32, 3
// layers, 4 query heads, 2 KV heads, vocab 97) and shaped like one model
// family as the importers map it onto model.Config.
var Families = []string{"llama", "llama-interleaved", "llama3-rope", "linear-rope", "yarn-rope", "yarn-mscale-rope", "yarn-notrunc-rope", "dynamic-rope",
	"mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "granitemoe", "granitemoeshared", "mode", "mode-deep", "mode-tiny"}

// DeepSeekFamilies names the DeepSeek-V2/V3 configs Family builds (every
// part of multi-head latent attention and DeepSeek's routing). They are
// kept apart from Families while not every backend implements them.
var DeepSeekFamilies = []string{"deepseek_v2-lite", "deepseek_v2", "deepseek_v3"}

// GptOssFamilies names the gpt-oss configs Family builds. They are kept
// apart from Families while not every backend implements gpt-oss's ops.
var GptOssFamilies = []string{"gpt_oss", "gpt_oss-window4"}

// Family returns the config of a family (see Families). With topAll every
// sparse layer routes to all its experts with renormalisation, which makes
// the mixture the dense weighted sum over experts.
func Family(name string, topAll bool) model.Config {
	c := Config(32, 3, 4, 2, 97)
	sparse := func(widths []int, r model.Router) model.FFN {
		if topAll {
			r.TopK = len(widths)
			r.NormTopK = true
		}
		return model.FFN{ExpertWidths: widths, Router: &r}
	}
	dense := func() {
		for range c.Layers {
			c.FFN = append(c.FFN, model.FFN{SharedWidths: []int{40}})
		}
	}
	four := []int{24, 24, 24, 24}
	switch name {
	case "llama":
		c.TiedOutput = true
		dense()
	case "llama-interleaved": // llama2.c's RoPE pairs
		c.TiedOutput = true
		c.RopeStyle = model.RopeInterleaved
		dense()
	case "llama3-rope":
		c.RopeScale = &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OrigMaxPosition: 16}
		c.RopeTheta = 500000
		dense()
	case "linear-rope":
		c.RopeScale = &model.RopeScaling{Type: "linear", Factor: 4}
		dense()
	case "yarn-rope":
		c.RopeScale = &model.RopeScaling{Type: "yarn", Factor: 4, OrigMaxPosition: 16}
		dense()
	case "yarn-mscale-rope": // DeepSeek-V2's rope_scaling: attention factor mscale/mscale_all_dim
		c.RopeScale = &model.RopeScaling{Type: "yarn", Factor: 40, OrigMaxPosition: 16, BetaFast: 32, BetaSlow: 1, Mscale: 0.707, MscaleAllDim: 1}
		dense()
	case "yarn-notrunc-rope": // gpt-oss's: truncate false, an explicit attention factor
		c.RopeScale = &model.RopeScaling{Type: "yarn", Factor: 32, OrigMaxPosition: 4096, BetaFast: 32, BetaSlow: 1, NoTruncate: true, AttnFactor: 1.3}
		dense()
	case "dynamic-rope":
		// the original context (6) is passed inside the 12 test positions,
		// so the base grows with each decode step
		c.RopeScale = &model.RopeScaling{Type: "dynamic", Factor: 4, OrigMaxPosition: 6}
		dense()
	case "mixtral":
		for range c.Layers {
			c.FFN = append(c.FFN, sparse(four, model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true}))
		}
	case "qwen2_moe":
		c.AttnBias = true
		// layer 0 is dense (mlp_only_layers), the others sparse with a gated shared expert
		c.FFN = append(c.FFN, model.FFN{SharedWidths: []int{48}})
		for range c.Layers - 1 {
			f := sparse(four, model.Router{Scoring: model.Softmax, TopK: 2, Fallback: model.FallbackShared})
			f.SharedWidths, f.SharedGate = []int{36}, true
			c.FFN = append(c.FFN, f)
		}
	case "qwen3_moe":
		c.QKNorm = model.QKNormHead
		for range c.Layers {
			c.FFN = append(c.FFN, sparse(four, model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true}))
		}
	case "olmoe":
		c.QKNorm = model.QKNormFull
		for range c.Layers {
			c.FFN = append(c.FFN, sparse([]int{16, 16, 16, 16, 16, 16, 16, 16}, model.Router{Scoring: model.Softmax, TopK: 4}))
		}
	case "granitemoe", "granitemoeshared":
		// GraniteMoeForCausalLM: softmax over the top-k logits (= softmax,
		// then renormalised), tied embeddings, and the four multipliers
		// at values unlike 1 (granite-3.0-1b-a400m has 12, 0.015625,
		// 0.22 and 6).
		c.TiedOutput = true
		c.EmbedScale, c.AttnScale, c.ResidualScale, c.LogitScale = 12, 0.09, 0.22, 6
		for range c.Layers {
			f := sparse(four, model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true})
			if name == "granitemoeshared" {
				f.SharedWidths = []int{40} // GraniteMoeSharedMLP: ungated, added to the routed sum
			}
			c.FFN = append(c.FFN, f)
		}
	case "gpt_oss", "gpt_oss-window4":
		// Every gpt-oss part: q/k/v/o biases, sinks, alternating sliding
		// and full layers, a router with a bias, experts with biases and
		// the clamped SwiGLU. The limit is low enough that random weights
		// reach it. gpt_oss's window (16) is larger than the tests'
		// sequences of 12; gpt_oss-window4 makes it bite.
		c.AttnBias, c.AttnOutBias, c.Sinks = true, true, true
		c.SlidingWindow = 16
		if name == "gpt_oss-window4" {
			c.SlidingWindow = 4
		}
		c.LayerTypes = []string{model.LayerSliding, model.LayerFull, model.LayerSliding}
		for range c.Layers {
			// Widths of 32 so the experts can be stored as MXFP4.
			f := sparse([]int{32, 32, 32, 32}, model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true, LogitBias: true})
			f.Act, f.Alpha, f.Limit, f.ExpertBias = model.ActSwiGLUClamped, 1.702, 0.5, true
			c.FFN = append(c.FFN, f)
		}
		c.Arch = "gpt_oss"
		return c
	case "deepseek_v2-lite", "deepseek_v2", "deepseek_v3":
		// DeepseekV2/V3ForCausalLM shapes: MLA with head dims unlike each
		// other (nope 8, rope 4, v 6), a latent of 16; q projected
		// directly (V2-Lite) or through a rank-12 bottleneck; layer 0 dense
		// (first_k_dense_replace 1), then 8 routed experts of width 16 and
		// 2 shared (one expert of width 32, as DeepseekV2MoE builds them);
		// YaRN with mscale and mscale_all_dim, so both the cos/sin factor
		// and the softmax-scale correction differ from 1.
		c.HeadDim, c.KVHeads = 12, c.Heads
		c.RopeStyle = model.RopeInterleaved
		c.MLA = &model.MLA{KVLoraRank: 16, NopeDim: 8, RopeDim: 4, VDim: 6}
		c.RopeScale = &model.RopeScaling{Type: "yarn", Factor: 40, OrigMaxPosition: 16, BetaFast: 32, BetaSlow: 1, Mscale: 0.707, MscaleAllDim: 0.707}
		var r model.Router
		switch name {
		case "deepseek_v2-lite": // greedy softmax, no renormalisation
			r = model.Router{Scoring: model.Softmax, TopK: 3, ScalingFactor: 1.5}
		case "deepseek_v2": // group_limited_greedy
			c.MLA.QLoraRank = 12
			r = model.Router{Scoring: model.Softmax, TopK: 3, ScalingFactor: 1.5, Groups: 4, TopKGroups: 2, GroupScore: model.GroupMax}
		case "deepseek_v3": // noaux_tc: sigmoid, selection bias, top-2-sum groups
			c.MLA.QLoraRank = 12
			c.RopeScale.Mscale, c.RopeScale.MscaleAllDim = 1, 0.8
			r = model.Router{Scoring: model.Sigmoid, TopK: 3, NormTopK: true, ScalingFactor: 2.5, SelectionBias: true,
				Groups: 4, TopKGroups: 2, GroupScore: model.GroupTop2Sum}
		}
		c.FFN = append(c.FFN, model.FFN{SharedWidths: []int{40}})
		for range c.Layers - 1 {
			f := sparse(slices.Repeat([]int{16}, 8), r)
			if topAll && r.Groups > 0 {
				f.Router.TopKGroups = r.Groups
			}
			f.SharedWidths = []int{32}
			c.FFN = append(c.FFN, f)
		}
	case "mode":
		// heterogeneous widths, sigmoid scoring, selection bias, scaling, shared expert
		for range c.Layers {
			f := sparse([]int{32, 96, 64, 16}, model.Router{Scoring: model.Sigmoid, TopK: 2, NormTopK: true,
				ScalingFactor: 2.5, SelectionBias: true, Fallback: model.FallbackShared})
			f.SharedWidths = []int{20}
			c.FFN = append(c.FFN, f)
		}
	case "mode-tiny":
		// mode's layers with tiny experts among wide ones, as
		// `modelpack distill --tiny-experts` makes them (width 1 and 2:
		// a router choice that costs almost nothing), softmax top-3
		for range c.Layers {
			c.FFN = append(c.FFN, sparse([]int{40, 1, 24, 2, 1}, model.Router{Scoring: model.Softmax, TopK: 3, NormTopK: true}))
		}
	case "mode-deep":
		// mode's layers with experts of mixed architecture (model.ExpertArch):
		// depth 2 SiLU, depth 1 GELU-tanh, depth 3 ReLU², plain; layer 1 all plain
		for l := range c.Layers {
			f := sparse([]int{32, 96, 64, 16}, model.Router{Scoring: model.Sigmoid, TopK: 2, NormTopK: true,
				ScalingFactor: 2.5, SelectionBias: true, Fallback: model.FallbackShared})
			f.SharedWidths = []int{20}
			if l != 1 {
				f.ExpertArch = []model.ExpertArch{{Extra: []int{24}}, {Act: model.ActGELUTanh}, {Act: model.ActReLU2, Extra: []int{16, 40}}, {}}
			}
			c.FFN = append(c.FFN, f)
		}
	default:
		panic(fmt.Sprintf("testmodel: no family %q", name))
	}
	c.Arch = name
	return c
}
