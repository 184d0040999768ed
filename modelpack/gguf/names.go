package gguf

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/moderuntime/mode/runtime/model"
)

// Source says where one canonical tensor of a config is in a GGUF file.
type Source struct {
	Canonical string // the name in cfg.Spec()
	Shape     []int  // the canonical row-major shape
	Tensor    string // the GGUF tensor holding it
	// Expert is the index into Tensor's stacked experts (its third ggml
	// dimension; see ExpertSlice), or -1 when Tensor is the whole weight.
	Expert int
}

// ExpertWildcard stands for the expert index in the canonical names Names
// gives stacked-experts tensors: "layers.0.experts.*.gate".
const ExpertWildcard = "*"

// Sources lists, in cfg.Spec() order, where each tensor cfg requires is in
// f. It checks every shape and that f has no tensor without a place, so
// that a file with anything the config cannot describe is rejected rather
// than run as a different model.
func Sources(f *File, cfg model.Config) ([]Source, error) {
	s, err := sources(f, &cfg)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", f.name, err)
	}
	return s, nil
}

// Names maps each GGUF tensor cfg uses to its canonical name. A
// stacked-experts tensor maps to the experts' names with ExpertWildcard in
// place of the expert index; it holds experts 0 to Dims[2]-1.
func Names(f *File, cfg model.Config) (map[string]string, error) {
	srcs, err := Sources(f, cfg)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, s := range srcs {
		name := s.Canonical
		if s.Expert >= 0 {
			name = strings.Replace(name, ".experts."+strconv.Itoa(s.Expert)+".", ".experts."+ExpertWildcard+".", 1)
		}
		m[s.Tensor] = name
	}
	return m, nil
}

func sources(f *File, c *model.Config) ([]Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	used := map[string]bool{}
	var out []Source
	for _, sp := range c.Spec() {
		name, expert, err := ggufName(f, c, sp)
		if err != nil {
			return nil, err
		}
		if err := checkShape(f, c, name, expert, sp); err != nil {
			return nil, err
		}
		used[name] = true
		out = append(out, Source{Canonical: sp.Name, Shape: slices.Clone(sp.Shape), Tensor: name, Expert: expert})
	}
	if c.RopeScale != nil && c.RopeScale.Type == "llama3" {
		used[ropeFreqsTensor] = true // Config turned it into RopeScale
	}
	for _, t := range f.tensors {
		if !used[t.Name] {
			return nil, fmt.Errorf("tensor %s has no place in a %s model with this config", t.Name, c.Arch)
		}
	}
	return out, nil
}

// layerSuffix maps a canonical per-layer suffix to the GGUF one; ""
// with ok means the answer depends on the layer (see ggufName).
func layerSuffix(suffix string) (string, bool) {
	switch suffix {
	case "attn_norm":
		return "attn_norm.weight", true
	case "wq":
		return "attn_q.weight", true
	case "wk":
		return "attn_k.weight", true
	case "wv":
		return "attn_v.weight", true
	case "wo":
		return "attn_output.weight", true
	case "bq":
		return "attn_q.bias", true
	case "bk":
		return "attn_k.bias", true
	case "bv":
		return "attn_v.bias", true
	case "bo":
		return "attn_output.bias", true
	case "sinks":
		return "attn_sinks.weight", true // the converter appends .weight
	case "router_logit_bias":
		return "ffn_gate_inp.bias", true
	case "expert_gate_bias":
		return "ffn_gate_exps.bias", true
	case "expert_up_bias":
		return "ffn_up_exps.bias", true
	case "expert_down_bias":
		return "ffn_down_exps.bias", true
	case "q_norm":
		return "attn_q_norm.weight", true
	case "k_norm":
		return "attn_k_norm.weight", true
	case "ffn_norm":
		return "ffn_norm.weight", true
	case "router":
		return "ffn_gate_inp.weight", true
	case "router_bias": // deepseek2's noaux_tc selection bias
		return "exp_probs_b.bias", true
	case "wq_a":
		return "attn_q_a.weight", true
	case "q_a_norm":
		return "attn_q_a_norm.weight", true
	case "wq_b":
		return "attn_q_b.weight", true
	case "wkv_a":
		return "attn_kv_a_mqa.weight", true
	case "kv_a_norm":
		return "attn_kv_a_norm.weight", true
	case "wkv_b":
		return "attn_kv_b.weight", true
	case "shared_gate":
		return "ffn_gate_inp_shexp.weight", true
	case "shared.0.gate", "shared.0.up", "shared.0.down":
		return "", true // depends on whether the layer is sparse
	}
	return "", false
}

// ggufName returns the GGUF tensor and expert index for one spec entry.
func ggufName(f *File, c *model.Config, sp model.TensorSpec) (string, int, error) {
	switch sp.Name {
	case model.NameEmbed:
		return "token_embd.weight", -1, nil
	case model.NameFinalNorm:
		return "output_norm.weight", -1, nil
	case model.NameOutput:
		return "output.weight", -1, nil
	}
	prefix := fmt.Sprintf("blk.%d.", sp.Layer)
	rest, ok := strings.CutPrefix(sp.Name, fmt.Sprintf("layers.%d.", sp.Layer))
	if !ok {
		return "", 0, fmt.Errorf("canonical tensor %s has no GGUF name", sp.Name)
	}
	if sp.Expert >= 0 {
		part := rest[strings.LastIndexByte(rest, '.')+1:]
		stacked := prefix + "ffn_" + part + "_exps.weight"
		if _, ok := f.Tensor(stacked); ok {
			return stacked, sp.Expert, nil
		}
		return fmt.Sprintf("%sffn_%s.%d.weight", prefix, part, sp.Expert), -1, nil
	}
	suffix, ok := layerSuffix(rest)
	if !ok {
		return "", 0, fmt.Errorf("canonical tensor %s has no GGUF name", sp.Name)
	}
	if suffix == "" { // a shared expert: ffn_gate_shexp beside routed experts, plain ffn_gate in a dense layer
		part := strings.TrimPrefix(rest, "shared.0.")
		if c.FFN[sp.Layer].Sparse() {
			return prefix + "ffn_" + part + "_shexp.weight", -1, nil
		}
		return prefix + "ffn_" + part + ".weight", -1, nil
	}
	if suffix == "ffn_norm.weight" && c.Arch == "gpt-oss" {
		// gpt-oss's post_attention_layernorm is llama.cpp's
		// LLM_TENSOR_ATTN_POST_NORM there, not FFN_NORM.
		suffix = "post_attention_norm.weight"
	}
	return prefix + suffix, -1, nil
}

// checkShape compares a GGUF tensor's dimensions with the canonical shape.
func checkShape(f *File, c *model.Config, name string, expert int, sp model.TensorSpec) error {
	t, ok := f.Tensor(name)
	if !ok {
		return fmt.Errorf("tensor %s (for %s) is missing", name, sp.Name)
	}
	dims := t.Dims
	if expert >= 0 {
		if n := len(c.FFN[sp.Layer].ExpertWidths); len(dims) != 3 || dims[2] != n {
			return fmt.Errorf("tensor %s: dimensions %v, want %d stacked experts", name, dims, n)
		}
		dims = dims[:2]
	}
	if !slices.Equal(squeeze(reversed(dims)), squeeze(sp.Shape)) {
		return fmt.Errorf("tensor %s: shape %v (ggml dimensions %v), want %v for %s", name, reversed(dims), t.Dims, sp.Shape, sp.Name)
	}
	return nil
}

// squeeze drops leading 1s, as model.Validate does, so that a [dim]
// shared gate matches the canonical [1, dim].
func squeeze(s []int) []int {
	for len(s) > 1 && s[0] == 1 {
		s = s[1:]
	}
	return s
}
