package engine_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
)

// family returns a small config shaped like one model family, as the HF
// importer maps it onto model.Config.
func family(name string, topAll bool) model.Config {
	c := testmodel.Config(32, 3, 4, 2, 97)
	sparse := func(widths []int, r model.Router) model.FFN {
		if topAll {
			r.TopK = len(widths)
			r.NormTopK = true
		}
		return model.FFN{ExpertWidths: widths, Router: &r}
	}
	four := []int{24, 24, 24, 24}
	switch name {
	case "llama":
		c.TiedOutput = true
		for range c.Layers {
			c.FFN = append(c.FFN, model.FFN{SharedWidths: []int{40}})
		}
	case "llama3-rope":
		c.RopeScale = &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OrigMaxPosition: 16}
		c.RopeTheta = 500000
		for range c.Layers {
			c.FFN = append(c.FFN, model.FFN{SharedWidths: []int{40}})
		}
	case "linear-rope", "yarn-rope":
		c.RopeScale = &model.RopeScaling{Type: "linear", Factor: 4}
		if name == "yarn-rope" {
			c.RopeScale = &model.RopeScaling{Type: "yarn", Factor: 4, OrigMaxPosition: 16}
		}
		for range c.Layers {
			c.FFN = append(c.FFN, model.FFN{SharedWidths: []int{40}})
		}
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
		panic(name)
	}
	c.Arch = name
	return c
}

var families = []string{"llama", "llama3-rope", "linear-rope", "yarn-rope", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "mode"}

// TestFamiliesMatchNaive compares the engine's logits with testmodel's
// float64 reference at every position, decoding one token at a time and
// prefilling in batches, for every family; and, with top_k = n_experts and
// renormalisation, against the dense weighted sum over all experts.
func TestFamiliesMatchNaive(t *testing.T) {
	ids := []int{0, 5, 17, 42, 3, 96, 11, 64, 8, 30, 2, 71}
	for _, name := range families {
		for _, topAll := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/topAll=%v", name, topAll), func(t *testing.T) {
				cfg := family(name, topAll)
				m := testmodel.Random(cfg, 7)
				want := testmodel.Logits(m, ids)

				// decode: one token per forward, every position checked
				e, err := engine.New(cpu.New(cpu.Options{}), m, engine.Options{})
				if err != nil {
					t.Fatal(err)
				}
				for p, id := range ids {
					got, err := e.Forward([]int{id})
					if err != nil {
						t.Fatal(err)
					}
					checkClose(t, fmt.Sprintf("decode pos %d", p), got, want[p])
				}
				// prefill: batches of 5 rows, the last row's logits checked
				e2, err := engine.New(cpu.New(cpu.Options{}), m, engine.Options{MaxBatch: 5, LazyExperts: true})
				if err != nil {
					t.Fatal(err)
				}
				got, err := e2.Forward(ids)
				if err != nil {
					t.Fatal(err)
				}
				checkClose(t, "prefill", got, want[len(ids)-1])
			})
		}
	}
}

func checkClose(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	var maxDiff, maxAbs float64
	for i, w := range want {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i])-w))
		maxAbs = math.Max(maxAbs, math.Abs(w))
	}
	if maxDiff > 1e-4*math.Max(1, maxAbs) {
		t.Errorf("%s: logits differ from the naive reference by %.3g (max |logit| %.3g)", what, maxDiff, maxAbs)
	}
}
