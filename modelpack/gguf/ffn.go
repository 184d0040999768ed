package gguf

import (
	"fmt"

	"github.com/moderuntime/mode/runtime/model"
)

// matrix checks that a tensor is a [rows, cols] matrix (Dims {cols, rows},
// plus experts as a third dimension when stacked) with the given number of
// columns, and returns its rows.
func matrix(f *File, name string, cols, experts int) (int, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return 0, fmt.Errorf("tensor %s is missing", name)
	}
	want := 2
	if experts > 0 {
		want = 3
	}
	if len(t.Dims) != want || t.Dims[0] != cols || (experts > 0 && t.Dims[2] != experts) {
		if experts > 0 {
			return 0, fmt.Errorf("tensor %s: dimensions %v, want [%d width %d]", name, t.Dims, cols, experts)
		}
		return 0, fmt.Errorf("tensor %s: dimensions %v, want [%d width]", name, t.Dims, cols)
	}
	return t.Dims[1], nil
}

// agree checks a width taken from a tensor against a metadata key that
// states it (one integer, or one per layer), when the key is present.
func agree(m meta, key string, layer, width int) error {
	v, ok := m.f.Get(key)
	if !ok {
		return nil
	}
	want, isInt := v.Int()
	if v.Type() == TypeArray {
		xs, isInts := v.Ints()
		if isInt = isInts && layer < len(xs); isInt {
			want = xs[layer]
		}
	}
	if !isInt {
		return keyError(key, "is %s, want an integer or one per layer", v)
	}
	if want != int64(width) {
		return keyError(key, "says %d but layer %d's tensors are %d wide", want, layer, width)
	}
	return nil
}

// feedForward describes each layer's FFN from its tensors: a router
// (ffn_gate_inp) makes the layer sparse, with stacked (ffn_*_exps) or
// per-expert (ffn_*.E, older Mixtral files) routed experts and optional
// shared expert and shared gate; otherwise ffn_gate/up/down is the dense
// FFN, which is the layer's one shared expert.
func feedForward(f *File, m meta, rules archRules, c *model.Config) ([]model.FFN, error) {
	ffn := make([]model.FFN, c.Layers)
	var experts, topK, routed int
	for l := range ffn {
		p := fmt.Sprintf("blk.%d.", l)
		if _, sparse := f.Tensor(p + "ffn_gate_inp.weight"); !sparse {
			w, err := matrix(f, p+"ffn_gate.weight", c.Dim, 0)
			if err != nil {
				return nil, fmt.Errorf("layer %d has no router (ffn_gate_inp.weight) and no dense FFN: %w", l, err)
			}
			if err := agree(m, m.key("feed_forward_length"), l, w); err != nil {
				return nil, err
			}
			ffn[l] = model.FFN{SharedWidths: []int{w}}
			continue
		}
		if experts == 0 {
			var err error
			if experts, err = m.positive(m.key("expert_count")); err != nil {
				return nil, err
			}
			if experts > maxExperts {
				return nil, keyError(m.key("expert_count"), "%d exceeds %d", experts, maxExperts)
			}
			if topK, err = m.positive(m.key("expert_used_count")); err != nil {
				return nil, err
			}
			if topK > experts {
				return nil, keyError(m.key("expert_used_count"), "%d exceeds the %d experts", topK, experts)
			}
		}
		if routed += experts; routed > maxRoutedTotal {
			return nil, fmt.Errorf("more than %d routed experts over all layers", maxRoutedTotal)
		}
		if n, err := matrix(f, p+"ffn_gate_inp.weight", c.Dim, 0); err != nil {
			return nil, err
		} else if n != experts {
			return nil, fmt.Errorf("tensor %sffn_gate_inp.weight routes to %d experts but %s is %d", p, n, m.key("expert_count"), experts)
		}
		var w int
		var err error
		if _, stacked := f.Tensor(p + "ffn_gate_exps.weight"); stacked {
			w, err = matrix(f, p+"ffn_gate_exps.weight", c.Dim, experts)
		} else {
			w, err = matrix(f, p+"ffn_gate.0.weight", c.Dim, 0)
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d: routed experts: %w", l, err)
		}
		widthKey := m.key("expert_feed_forward_length")
		if _, ok := f.Get(widthKey); !ok && (m.arch == "llama" || m.arch == "olmoe" || m.arch == "granitemoe") {
			widthKey = m.key("feed_forward_length") // these state the expert width there
		}
		if err := agree(m, widthKey, l, w); err != nil {
			return nil, err
		}
		layer := model.FFN{
			ExpertWidths: repeat(w, experts),
			Router:       &model.Router{Scoring: model.Softmax, TopK: topK, NormTopK: rules.normTopK},
		}
		if m.arch == "deepseek2" {
			if err := deepSeekRouter(f, m, layer.Router); err != nil {
				return nil, err
			}
		}
		if _, ok := f.Tensor(p + "ffn_gate_shexp.weight"); ok {
			sw, err := matrix(f, p+"ffn_gate_shexp.weight", c.Dim, 0)
			if err != nil {
				return nil, err
			}
			if err := agree(m, m.key("expert_shared_feed_forward_length"), l, sw); err != nil {
				return nil, err
			}
			if n, ok, err := m.int(m.key("expert_shared_count")); err != nil {
				return nil, err
			} else if ok && n*w != sw {
				return nil, keyError(m.key("expert_shared_count"), "%d experts of width %d are not layer %d's shared width %d", n, w, l, sw)
			}
			layer.SharedWidths = []int{sw}
			layer.Router.Fallback = model.FallbackShared
		}
		_, layer.SharedGate = f.Tensor(p + "ffn_gate_inp_shexp.weight")
		if m.arch == "gpt-oss" {
			// llama.cpp's gpt-oss: a biased router, biased experts and
			// ggml_swiglu_oai with the alpha and limit its graph hard-codes
			// (1.702 and 7, GptOssExperts' alpha and swiglu_limit).
			layer.Router.LogitBias, layer.ExpertBias = true, true
			layer.Act, layer.Alpha, layer.Limit = model.ActSwiGLUClamped, gptOssAlpha, gptOssLimit
		}
		ffn[l] = layer
	}
	return ffn, nil
}

// gpt-oss's activation constants, which llama.cpp's graph hard-codes
// rather than reading from the file.
const (
	gptOssAlpha = 1.702
	gptOssLimit = 7
)

func repeat(x, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = x
	}
	return s
}
