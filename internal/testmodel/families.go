package testmodel

import (
	"fmt"

	"github.com/moderuntime/mode/runtime/model"
)

// Families names the configs Family builds: each is small (dim 32, 3
// layers, 4 query heads, 2 KV heads, vocab 97) and shaped like one model
// family as the importers map it onto model.Config.
var Families = []string{"llama", "llama-interleaved", "llama3-rope", "linear-rope", "yarn-rope",
	"mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "mode"}

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
	case "mode":
		// heterogeneous widths, sigmoid scoring, selection bias, scaling, shared expert
		for range c.Layers {
			f := sparse([]int{32, 96, 64, 16}, model.Router{Scoring: model.Sigmoid, TopK: 2, NormTopK: true,
				ScalingFactor: 2.5, SelectionBias: true, Fallback: model.FallbackShared})
			f.SharedWidths = []int{20}
			c.FFN = append(c.FFN, f)
		}
	default:
		panic(fmt.Sprintf("testmodel: no family %q", name))
	}
	c.Arch = name
	return c
}
