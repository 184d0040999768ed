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
		add("wq", c.QDim(), c.Dim)
		add("wk", c.KVDim(), c.Dim)
		add("wv", c.KVDim(), c.Dim)
		add("wo", c.Dim, c.QDim())
		if c.AttnBias {
			add("bq", c.QDim())
			add("bk", c.KVDim())
			add("bv", c.KVDim())
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
			for e, w := range f.ExpertWidths {
				for _, p := range expertParts(c.Dim, w) {
					s = append(s, TensorSpec{ExpertName(l, e, p.part), p.shape, l, e})
				}
			}
		}
	}
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
// (shared experts plus the top_k widest routed experts, an upper bound when
// widths differ).
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
		w := slices.Clone(f.ExpertWidths)
		slices.Sort(w)
		for _, x := range w[len(w)-f.Router.TopK:] {
			active += 3 * int64(x) * int64(c.Dim)
		}
	}
	return total, active
}
