package model

import (
	"fmt"
	"slices"

	"github.com/moderuntime/mode/runtime/tensor"
)

// Weights maps canonical tensor names (see Spec) to tensors. Importers fill
// it from whatever names their source format uses; packs store it; backends
// resolve the names once when they upload.
type Weights map[string]*tensor.Tensor

// Model is a config with its weights. Routed-expert tensors may be absent
// from Weights when they are loaded lazily.
type Model struct {
	Config  Config
	Weights Weights
}

// TensorSpec names one tensor the config requires and where it belongs.
type TensorSpec struct {
	Name   string
	Shape  []int
	Layer  int // -1 for the core (embeddings, final norm, output head)
	Expert int // routed expert index, or -1 when the tensor is not a routed expert's
}

// Canonical tensor names. They are the names inside a MoDE pack.
const (
	NameEmbed     = "tok_embeddings"
	NameFinalNorm = "norm"
	NameOutput    = "output"
)

// LayerName returns "layers.L.suffix".
func LayerName(layer int, suffix string) string { return fmt.Sprintf("layers.%d.%s", layer, suffix) }

// ExpertName returns the name of a routed expert's gate, up or down matrix.
func ExpertName(layer, expert int, part string) string {
	return fmt.Sprintf("layers.%d.experts.%d.%s", layer, expert, part)
}

// BlockName returns the name of part ("norm", "gate", "up" or "down") of
// block b (0-based) of a routed expert: block 0 is ExpertName's gate, up
// and down (it has no norm of its own), later blocks are
// "layers.L.experts.E.blocks.B.part".
func BlockName(layer, expert, block int, part string) string {
	if block == 0 {
		return ExpertName(layer, expert, part)
	}
	return fmt.Sprintf("layers.%d.experts.%d.blocks.%d.%s", layer, expert, block, part)
}

// ExpertSpec lists routed expert e of layer l's tensors in the order the
// engine and the backends take them: per block, its norm (blocks after the
// first), gate, up and down.
func (c *Config) ExpertSpec(l, e int) []TensorSpec {
	f := &c.FFN[l]
	var s []TensorSpec
	for b, w := range f.BlockWidths(e) {
		if b > 0 {
			s = append(s, TensorSpec{BlockName(l, e, b, "norm"), []int{c.Dim}, l, e})
		}
		for _, p := range expertParts(c.Dim, w) {
			s = append(s, TensorSpec{BlockName(l, e, b, p.part), p.shape, l, e})
		}
	}
	return s
}

// SharedName returns the name of a shared expert's gate, up or down matrix.
func SharedName(layer, shared int, part string) string {
	return fmt.Sprintf("layers.%d.shared.%d.%s", layer, shared, part)
}

// Spec lists every tensor the config requires, core first, then each layer's
// always-used tensors followed by its routed experts.
func (c *Config) Spec() []TensorSpec {
	var s []TensorSpec
	core := func(name string, shape ...int) { s = append(s, TensorSpec{name, shape, -1, -1}) }
	core(NameEmbed, c.Vocab, c.Dim)
	core(NameFinalNorm, c.Dim)
	if !c.TiedOutput {
		core(NameOutput, c.Vocab, c.Dim)
	}
	for l := 0; l < c.Layers; l++ {
		add := func(suffix string, shape ...int) { s = append(s, TensorSpec{LayerName(l, suffix), shape, l, -1}) }
		add("attn_norm", c.Dim)
		if m := c.MLA; m != nil {
			s = append(s, c.mlaSpec(l)...)
		} else {
			add("wq", c.QDim(), c.Dim)
			add("wk", c.KVDim(), c.Dim)
			add("wv", c.KVDim(), c.Dim)
			add("wo", c.Dim, c.QDim())
		}
		if c.AttnBias {
			add("bq", c.QDim())
			add("bk", c.KVDim())
			add("bv", c.KVDim())
		}
		if c.AttnOutBias {
			add("bo", c.Dim)
		}
		if c.Sinks {
			add("sinks", c.Heads)
		}
		switch c.QKNorm {
		case QKNormHead:
			add("q_norm", c.HeadDim)
			add("k_norm", c.HeadDim)
		case QKNormFull:
			add("q_norm", c.QDim())
			add("k_norm", c.KVDim())
		}
		add("ffn_norm", c.Dim)
		f := &c.FFN[l]
		for i, w := range f.SharedWidths {
			for _, p := range expertParts(c.Dim, w) {
				s = append(s, TensorSpec{SharedName(l, i, p.part), p.shape, l, -1})
			}
		}
		if f.SharedGate {
			add("shared_gate", 1, c.Dim)
		}
		if f.Sparse() {
			add("router", len(f.ExpertWidths), c.Dim)
			if f.Router.SelectionBias {
				add("router_bias", len(f.ExpertWidths))
			}
			if f.Router.LogitBias {
				add("router_logit_bias", len(f.ExpertWidths))
			}
			if f.ExpertBias {
				add("expert_gate_bias", len(f.ExpertWidths), f.ExpertWidths[0])
				add("expert_up_bias", len(f.ExpertWidths), f.ExpertWidths[0])
				add("expert_down_bias", len(f.ExpertWidths), c.Dim)
			}
			for e := range f.ExpertWidths {
				s = append(s, c.ExpertSpec(l, e)...)
			}
		}
	}
	return s
}

// SpecLen is len(c.Spec()) computed without building the list, so a caller
// can compare it with what it was given before paying for the names.
func (c *Config) SpecLen() int {
	n := 2 // embeddings, final norm
	if !c.TiedOutput {
		n++
	}
	perLayer := 6 // attn_norm, wq, wk, wv, wo, ffn_norm
	if c.MLA != nil {
		perLayer = 2 + len(c.mlaSpec(0))
	}
	if c.AttnBias {
		perLayer += 3
	}
	if c.QKNorm == QKNormHead || c.QKNorm == QKNormFull {
		perLayer += 2
	}
	if c.AttnOutBias {
		perLayer++
	}
	if c.Sinks {
		perLayer++
	}
	for l := 0; l < c.Layers && l < len(c.FFN); l++ {
		f := &c.FFN[l]
		n += perLayer + 3*len(f.SharedWidths)
		if f.SharedGate {
			n++
		}
		if f.Sparse() {
			n += 1 + 3*len(f.ExpertWidths)
			for _, a := range f.ExpertArch {
				n += 4 * len(a.Extra)
			}
			if f.Router.SelectionBias {
				n++
			}
			if f.Router.LogitBias {
				n++
			}
			if f.ExpertBias {
				n += 3
			}
		}
	}
	return n
}

// mlaSpec lists layer l's multi-head latent attention tensors, fused as
// the checkpoints (HF and GGUF alike) store them: wq (q_proj) or wq_a,
// q_a_norm and wq_b (q_a_proj, q_a_layernorm, q_b_proj), each head's rows
// [nope | rope]; wkv_a (kv_a_proj_with_mqa), rows [latent | shared rope
// key]; kv_a_norm over the latent; wkv_b (kv_b_proj), each head's rows
// [k_nope | v]; wo (o_proj).
func (c *Config) mlaSpec(l int) []TensorSpec {
	m := c.MLA
	var s []TensorSpec
	add := func(suffix string, shape ...int) { s = append(s, TensorSpec{LayerName(l, suffix), shape, l, -1}) }
	if m.QLoraRank > 0 {
		add("wq_a", m.QLoraRank, c.Dim)
		add("q_a_norm", m.QLoraRank)
		add("wq_b", c.Heads*c.HeadDim, m.QLoraRank)
	} else {
		add("wq", c.Heads*c.HeadDim, c.Dim)
	}
	add("wkv_a", m.KVLoraRank+m.RopeDim, c.Dim)
	add("kv_a_norm", m.KVLoraRank)
	add("wkv_b", c.Heads*(m.NopeDim+m.VDim), m.KVLoraRank)
	add("wo", c.Dim, c.Heads*m.VDim)
	return s
}

type part struct {
	part  string
	shape []int
}

// expertParts: gate and up map dim -> width, down maps width -> dim.
func expertParts(dim, width int) []part {
	return []part{{"gate", []int{width, dim}}, {"up", []int{width, dim}}, {"down", []int{dim, width}}}
}

// Validate checks the config, then that every required tensor is present
// with the right shape and a decodable size, and that nothing unexpected is
// there. Routed-expert tensors may be missing when allowLazyExperts is set.
func (m *Model) Validate(allowLazyExperts bool) error {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, sp := range m.Config.Spec() {
		want[sp.Name] = true
		t, ok := m.Weights[sp.Name]
		if !ok || t == nil {
			if sp.Expert >= 0 && allowLazyExperts {
				continue
			}
			return fmt.Errorf("missing tensor %s (shape %v)", sp.Name, sp.Shape)
		}
		if !slices.Equal(squeeze(t.Shape), squeeze(sp.Shape)) {
			return fmt.Errorf("tensor %s: shape %v, want %v", sp.Name, t.Shape, sp.Shape)
		}
		if err := t.Check(); err != nil {
			return err
		}
	}
	for name := range m.Weights {
		if !want[name] {
			return fmt.Errorf("unexpected tensor %s for this config", name)
		}
	}
	return nil
}

// squeeze drops leading 1s so [1, n] and [n] compare equal.
func squeeze(s []int) []int {
	for len(s) > 1 && s[0] == 1 {
		s = s[1:]
	}
	return s
}

// Params counts total parameters and the parameters active for one token
// (shared experts plus the top_k largest routed experts, an upper bound when
// sizes differ).
func (c *Config) Params() (total, active int64) {
	for _, sp := range c.Spec() {
		n := int64(1)
		for _, d := range sp.Shape {
			n *= int64(d)
		}
		total += n
		if sp.Expert < 0 {
			active += n
		}
	}
	if c.TiedOutput { // the head is used but stored once
		active += int64(c.Vocab) * int64(c.Dim)
	}
	for _, f := range c.FFN {
		if !f.Sparse() {
			continue
		}
		w := make([]int64, len(f.ExpertWidths))
		for e := range w {
			for b, x := range f.BlockWidths(e) {
				w[e] += 3 * int64(x) * int64(c.Dim)
				if b > 0 {
					w[e] += int64(c.Dim)
				}
			}
		}
		slices.Sort(w)
		for _, x := range w[len(w)-f.Router.TopK:] {
			active += x
		}
	}
	return total, active
}
