package testmodel

import (
	"math"
	"math/rand/v2"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Random fills every tensor cfg.Spec() asks for: matrices ~ N(0, 1/fan_in),
// norm weights near 1, biases small.
func Random(cfg model.Config, seed uint64) *model.Model {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := model.Weights{}
	for _, sp := range cfg.Spec() {
		n := 1
		for _, d := range sp.Shape {
			n *= d
		}
		v := make([]float32, n)
		switch {
		case len(sp.Shape) == 1 && isNorm(sp.Name):
			for i := range v {
				v[i] = float32(1 + 0.1*r.NormFloat64())
			}
		case len(sp.Shape) == 1:
			for i := range v {
				v[i] = float32(0.1 * r.NormFloat64())
			}
		default:
			std := 1 / math.Sqrt(float64(sp.Shape[len(sp.Shape)-1]))
			if sp.Name == model.NameEmbed {
				std = 1
			}
			for i := range v {
				v[i] = float32(std * r.NormFloat64())
			}
		}
		w[sp.Name] = tensor.FromF32(sp.Name, sp.Shape, v)
	}
	return &model.Model{Config: cfg, Weights: w}
}

func isNorm(name string) bool {
	for _, s := range []string{"norm"} {
		if len(name) >= len(s) && name[len(name)-len(s):] == s {
			return true
		}
	}
	return false
}

// Config returns a small config of the given shape; callers adjust FFN.
func Config(dim, layers, heads, kvHeads, vocab int) model.Config {
	return model.Config{
		Arch: "test", Dim: dim, Layers: layers, Heads: heads, KVHeads: kvHeads, HeadDim: dim / heads,
		Vocab: vocab, MaxSeq: 64, NormEps: 1e-5, RopeTheta: 10000, RopeStyle: model.RopeHalf,
		BOS: 0, EOS: []int{1},
	}
}
