package hf_test

import (
	"slices"
	"testing"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// sparseLayers lists the layers that route.
func sparseLayers(c *model.Config) []int {
	var ls []int
	for l := range c.FFN {
		if c.FFN[l].Sparse() {
			ls = append(ls, l)
		}
	}
	return ls
}

func TestLoadSynth(t *testing.T) {
	with := func(arch string, edit func(*synth.Options)) synth.Options {
		o := synth.Default(arch)
		if edit != nil {
			edit(&o)
		}
		return o
	}
	tests := []struct {
		name  string
		opts  synth.Options
		check func(t *testing.T, o synth.Options, c *model.Config)
	}{
		{"llama", with("llama", nil), func(t *testing.T, o synth.Options, c *model.Config) {
			for l := range c.FFN {
				f := c.FFN[l]
				if f.Router != nil || !slices.Equal(f.SharedWidths, []int{o.FFN}) || f.SharedGate {
					t.Errorf("layer %d: %+v, want one ungated shared expert of %d", l, f, o.FFN)
				}
			}
			if c.AttnBias || c.QKNorm != model.QKNormNone || c.TiedOutput {
				t.Errorf("bias %v, qk_norm %q, tied %v", c.AttnBias, c.QKNorm, c.TiedOutput)
			}
		}},
		{"llama tied bf16", with("llama", func(o *synth.Options) { o.TiedOutput, o.DType = true, tensor.BF16 }), func(t *testing.T, o synth.Options, c *model.Config) {
			if !c.TiedOutput {
				t.Error("TiedOutput false")
			}
		}},
		{"mixtral", with("mixtral", nil), func(t *testing.T, o synth.Options, c *model.Config) {
			for l := range c.FFN {
				f := c.FFN[l]
				r := f.Router
				if !slices.Equal(f.ExpertWidths, []int{o.FFN, o.FFN, o.FFN, o.FFN}) || len(f.SharedWidths) != 0 || r == nil ||
					*r != (model.Router{Scoring: model.Softmax, TopK: o.TopK, NormTopK: true, Fallback: 0}) {
					t.Errorf("layer %d: %+v router %+v", l, f, r)
				}
			}
			if c.RopeTheta != 1e6 {
				t.Errorf("rope_theta %v", c.RopeTheta)
			}
		}},
		{"qwen2_moe sparse step", with("qwen2_moe", func(o *synth.Options) {
			o.Layers, o.SparseStep, o.DenseLayers, o.NormTopK = 6, 2, []int{3}, true
		}), func(t *testing.T, o synth.Options, c *model.Config) {
			// (l+1)%2 == 0 gives 1, 3, 5; mlp_only_layers removes 3.
			if got := sparseLayers(c); !slices.Equal(got, []int{1, 5}) {
				t.Errorf("sparse layers %v, want [1 5]", got)
			}
			for l := range c.FFN {
				f := c.FFN[l]
				if !f.Sparse() {
					if !slices.Equal(f.SharedWidths, []int{o.FFN}) || f.SharedGate {
						t.Errorf("dense layer %d: %+v", l, f)
					}
					continue
				}
				if len(f.ExpertWidths) != o.Experts || f.ExpertWidths[0] != o.ExpertFFN || !slices.Equal(f.SharedWidths, []int{o.SharedFFN}) ||
					!f.SharedGate || f.Router.Fallback != model.FallbackShared || !f.Router.NormTopK || f.Router.TopK != o.TopK {
					t.Errorf("sparse layer %d: %+v router %+v", l, f, f.Router)
				}
			}
			if !c.AttnBias {
				t.Error("qwen2_moe without q/k/v biases")
			}
		}},
		{"qwen2_moe sharded f16", with("qwen2_moe", func(o *synth.Options) { o.DType, o.MaxShardBytes = tensor.F16, 64<<10 }), func(t *testing.T, o synth.Options, c *model.Config) {
			if got := sparseLayers(c); len(got) != o.Layers {
				t.Errorf("sparse layers %v, want all %d", got, o.Layers)
			}
		}},
		{"qwen3_moe", with("qwen3_moe", func(o *synth.Options) { o.DenseLayers = []int{0} }), func(t *testing.T, o synth.Options, c *model.Config) {
			if c.QKNorm != model.QKNormHead || c.HeadDim != o.HeadDim || c.QDim() == c.Dim || c.AttnBias {
				t.Errorf("qk_norm %q head_dim %d qdim %d bias %v", c.QKNorm, c.HeadDim, c.QDim(), c.AttnBias)
			}
			if got := sparseLayers(c); !slices.Equal(got, []int{1, 2}) {
				t.Errorf("sparse layers %v", got)
			}
			f := c.FFN[1]
			if f.ExpertWidths[0] != o.ExpertFFN || len(f.SharedWidths) != 0 || f.SharedGate || !f.Router.NormTopK {
				t.Errorf("layer 1: %+v router %+v", f, f.Router)
			}
		}},
		{"olmoe", with("olmoe", nil), func(t *testing.T, o synth.Options, c *model.Config) {
			if c.QKNorm != model.QKNormFull {
				t.Errorf("qk_norm %q", c.QKNorm)
			}
			if r := c.FFN[0].Router; r.NormTopK || r.TopK != o.TopK || len(c.FFN[0].ExpertWidths) != o.Experts {
				t.Errorf("router %+v", r)
			}
		}},
		{"mode", with("mode", nil), func(t *testing.T, o synth.Options, c *model.Config) {
			f := c.FFN[0]
			if !slices.Equal(f.ExpertWidths, []int{32, 96, 64, 16}) || !slices.Equal(f.SharedWidths, []int{32}) || f.Router.TopK != 2 {
				t.Errorf("ffn %+v", f)
			}
		}},
		{"mode sigmoid no shared", with("mode", func(o *synth.Options) {
			o.Scoring, o.SharedFFN, o.ExpertWidths, o.Experts = model.Sigmoid, -1, []int{8, 16, 24}, 3
		}), func(t *testing.T, o synth.Options, c *model.Config) {
			f := c.FFN[1]
			if f.Router.Scoring != model.Sigmoid || len(f.SharedWidths) != 0 || !slices.Equal(f.ExpertWidths, []int{8, 16, 24}) {
				t.Errorf("ffn %+v router %+v", f, f.Router)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := synth.Write(dir, tt.opts); err != nil {
				t.Fatal(err)
			}
			m, err := hf.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Validate(false); err != nil {
				t.Fatal(err)
			}
			c := &m.Config
			o := tt.opts
			wantArch := o.Arch
			if c.Arch != wantArch || c.Dim != o.Dim || c.Layers != o.Layers || c.Heads != o.Heads || c.KVHeads != o.KVHeads ||
				c.Vocab != o.Vocab || c.MaxSeq != o.MaxSeq || c.RopeStyle != model.RopeHalf {
				t.Errorf("config %+v does not match options %+v", c, o)
			}
			if c.BOS != o.Vocab-2 || !slices.Equal(c.EOS, []int{o.Vocab - 1}) {
				t.Errorf("bos %d eos %v, want %d and [%d]", c.BOS, c.EOS, o.Vocab-2, o.Vocab-1)
			}
			for name, w := range m.Weights {
				if w.DType != o.DType || w.Name != name {
					t.Fatalf("tensor %s: dtype %v name %q, want %v", name, w.DType, w.Name, o.DType)
				}
			}
			tt.check(t, o, c)
		})
	}
}
