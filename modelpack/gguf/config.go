package gguf

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/moderuntime/mode/runtime/model"
)

// Limits beyond model.Config.Validate's, checked before per-layer and
// per-expert slices are built from file values.
const (
	maxLayers  = 4096
	maxExperts = 8192
	// maxRoutedTotal bounds experts summed over layers (DeepSeek-V3 has
	// about 16K), so a small hostile file cannot make Spec build millions
	// of names.
	maxRoutedTotal = 1 << 18
)

// Architectures lists the general.architecture values Config understands.
func Architectures() []string {
	return []string{"deepseek2", "gpt-oss", "granitemoe", "llama", "olmoe", "qwen2", "qwen2moe", "qwen3", "qwen3moe"}
}

// archRules is what llama.cpp hard-codes per architecture rather than
// reading from the file.
type archRules struct {
	rope model.RopeStyle
	// normTopK is build_moe_ffn's norm_w: whether the top-k routing
	// weights are renormalised to sum to one.
	normTopK bool
}

func rulesFor(arch string) (archRules, bool) {
	switch arch {
	case "llama":
		// llama.cpp's "normal" RoPE rotates adjacent pairs; the converter
		// permutes HF's q and k rows so that this equals HF's rotate_half.
		return archRules{rope: model.RopeInterleaved, normTopK: true}, true
	case "granitemoe":
		// llama.cpp's granitemoe is llama's graph (adjacent-pair RoPE on
		// permuted q/k) with Granite's four multipliers; its routing
		// softmaxes the top-k logits, which is softmax then renormalise.
		// GraniteMoeShared converts to the same architecture plus
		// ffn_*_shexp tensors.
		return archRules{rope: model.RopeInterleaved, normTopK: true}, true
	case "deepseek2":
		// normal (adjacent-pair) RoPE on the rope dimensions; the router's
		// normalisation is in metadata (deepSeekRouter)
		return archRules{rope: model.RopeInterleaved}, true
	case "qwen2", "qwen3":
		return archRules{rope: model.RopeHalf}, true
	case "qwen2moe", "olmoe":
		return archRules{rope: model.RopeHalf, normTopK: false}, true
	case "qwen3moe":
		return archRules{rope: model.RopeHalf, normTopK: true}, true
	case "gpt-oss":
		// llama.cpp's LLM_ARCH_OPENAI_MOE: NeoX RoPE, and
		// LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT, a softmax over the
		// top-k logits, which is softmax then renormalise.
		return archRules{rope: model.RopeHalf, normTopK: true}, true
	}
	return archRules{}, false
}

// Config reads the model description from f's metadata and tensor shapes.
// Feed-forward widths and the presence of biases, q/k norms, experts and
// an output head are taken from the tensors themselves and cross-checked
// against the metadata keys that state them.
func Config(f *File) (model.Config, error) {
	c, err := config(f)
	if err != nil {
		return model.Config{}, fmt.Errorf("gguf: %s: %w", f.name, err)
	}
	return c, nil
}

func architecture(f *File) (string, archRules, error) {
	arch, ok, err := meta{f: f}.str("general.architecture")
	if err != nil {
		return "", archRules{}, err
	}
	if !ok {
		return "", archRules{}, keyError("general.architecture", "is missing")
	}
	rules, ok := rulesFor(arch)
	if !ok {
		return "", archRules{}, keyError("general.architecture", "%q is not supported (supported: %s)", arch, strings.Join(Architectures(), ", "))
	}
	return arch, rules, nil
}

func config(f *File) (model.Config, error) {
	arch, rules, err := architecture(f)
	if err != nil {
		return model.Config{}, err
	}
	m := meta{f, arch}
	c := model.Config{Arch: arch, RopeStyle: rules.rope}
	if c.Dim, err = m.positive(m.key("embedding_length")); err != nil {
		return c, err
	}
	if c.Layers, err = m.positive(m.key("block_count")); err != nil {
		return c, err
	}
	if c.Layers > maxLayers {
		return c, keyError(m.key("block_count"), "%d exceeds %d", c.Layers, maxLayers)
	}
	if arch == "deepseek2" {
		err = deepSeekAttention(f, m, &c)
	} else {
		err = attention(m, &c)
	}
	if err != nil {
		return c, err
	}
	embd, ok := f.Tensor("token_embd.weight")
	if !ok {
		return c, fmt.Errorf("tensor token_embd.weight is missing")
	}
	if len(embd.Dims) != 2 || embd.Dims[0] != c.Dim {
		return c, fmt.Errorf("tensor token_embd.weight: dimensions %v, want [%d vocab]", embd.Dims, c.Dim)
	}
	c.Vocab = embd.Dims[1]
	if v, ok, err := m.int(m.key("vocab_size")); err != nil {
		return c, err
	} else if ok && v != c.Vocab {
		return c, keyError(m.key("vocab_size"), "%d disagrees with token_embd.weight's %d rows", v, c.Vocab)
	}
	if c.MaxSeq, err = m.positive(m.key("context_length")); err != nil {
		return c, err
	}
	eps, ok, err := m.float(m.key("attention.layer_norm_rms_epsilon"))
	if err != nil {
		return c, err
	}
	if !ok {
		return c, keyError(m.key("attention.layer_norm_rms_epsilon"), "is missing")
	}
	c.NormEps = float32(eps)
	if err := rope(f, m, &c); err != nil {
		return c, err
	}
	if err := layerOptions(f, &c); err != nil {
		return c, err
	}
	if arch == "granitemoe" {
		if err := graniteScales(m, &c); err != nil {
			return c, err
		}
	}
	if arch == "gpt-oss" {
		if err := gptOss(f, m, &c); err != nil {
			return c, err
		}
	}
	_, hasOutput := f.Tensor("output.weight")
	c.TiedOutput = !hasOutput
	if c.BOS, c.EOS, err = specialTokens(m, c.Vocab); err != nil {
		return c, err
	}
	if c.FFN, err = feedForward(f, m, rules, &c); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// graniteScales reads the multipliers llama.cpp's granite graph requires
// (llama-model.cpp reads all four with get_key, which fails when one is
// absent): embedding_scale, attention.scale, residual_scale and
// logit_scale, which the converter copies from config.json's
// embedding_multiplier, attention_multiplier, residual_multiplier and
// logits_scaling.
func graniteScales(m meta, c *model.Config) error {
	for _, s := range []struct {
		key string
		dst *float32
	}{{"embedding_scale", &c.EmbedScale}, {"attention.scale", &c.AttnScale}, {"residual_scale", &c.ResidualScale}, {"logit_scale", &c.LogitScale}} {
		v, ok, err := m.float(m.key(s.key))
		if err != nil {
			return err
		}
		if !ok {
			return keyError(m.key(s.key), "is missing")
		}
		if !(v > 0) || math.IsInf(v, 0) || v > math.MaxFloat32 {
			return keyError(m.key(s.key), "%v must be a positive finite number", v)
		}
		*s.dst = float32(v)
	}
	return nil
}

// attention reads head counts and the head size.
func attention(m meta, c *model.Config) error {
	var err error
	var ok bool
	hc := m.key("attention.head_count")
	if c.Heads, ok, err = m.uniform(hc, c.Layers); err != nil {
		return err
	} else if !ok || c.Heads < 1 {
		return keyError(hc, "is missing or zero")
	}
	kvKey := m.key("attention.head_count_kv")
	if c.KVHeads, ok, err = m.uniform(kvKey, c.Layers); err != nil {
		return err
	} else if !ok {
		c.KVHeads = c.Heads
	} else if c.KVHeads < 1 || c.Heads%c.KVHeads != 0 {
		return keyError(kvKey, "%d does not divide the %d heads", c.KVHeads, c.Heads)
	}
	kl := m.key("attention.key_length")
	if c.HeadDim, ok, err = m.int(kl); err != nil {
		return err
	} else if !ok {
		if c.Dim%c.Heads != 0 {
			return keyError(hc, "%d does not divide embedding_length %d (and %s is absent)", c.Heads, c.Dim, kl)
		}
		c.HeadDim = c.Dim / c.Heads
	}
	if v, ok, err := m.int(m.key("attention.value_length")); err != nil {
		return err
	} else if ok && v != c.HeadDim {
		return keyError(m.key("attention.value_length"), "%d differs from the key length %d; unequal q/k and v head sizes are not supported", v, c.HeadDim)
	}
	if r, ok, err := m.int(m.key("rope.dimension_count")); err != nil {
		return err
	} else if ok && r != c.HeadDim {
		return keyError(m.key("rope.dimension_count"), "%d differs from the head size %d; partial rotary embeddings are not supported", r, c.HeadDim)
	}
	return nil
}

// layerOptions reads the attention options that show only as tensors:
// q/k/v biases and q/k norms, judged from layer 0 (Sources then requires
// them in every layer and rejects them anywhere else).
func layerOptions(f *File, c *model.Config) error {
	_, c.AttnBias = f.Tensor("blk.0.attn_q.bias")
	qn, ok := f.Tensor("blk.0.attn_q_norm.weight")
	if !ok {
		return nil
	}
	switch {
	case len(qn.Dims) == 1 && qn.Dims[0] == c.HeadDim:
		c.QKNorm = model.QKNormHead
	case len(qn.Dims) == 1 && qn.Dims[0] == c.QDim():
		c.QKNorm = model.QKNormFull
	default:
		return fmt.Errorf("tensor blk.0.attn_q_norm.weight: dimensions %v are neither the head size %d nor the q width %d", qn.Dims, c.HeadDim, c.QDim())
	}
	return nil
}

// specialTokens reads BOS (-1 when absent) and the end-of-generation ids:
// EOS, and end-of-turn and end-of-message when the file names them.
func specialTokens(m meta, vocab int) (int, []int, error) {
	id := func(name string) (int, bool, error) {
		key := "tokenizer.ggml." + name + "_token_id"
		v, ok, err := m.int(key)
		if err == nil && ok && v >= vocab {
			err = keyError(key, "%d outside the vocabulary of %d", v, vocab)
		}
		return v, ok, err
	}
	bos, ok, err := id("bos")
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		bos = -1
	}
	var eos []int
	for _, name := range []string{"eos", "eot", "eom"} {
		v, ok, err := id(name)
		if err != nil {
			return 0, nil, err
		}
		if ok && !slices.Contains(eos, v) {
			eos = append(eos, v)
		}
	}
	return bos, eos, nil
}

// gptOss reads what llama.cpp's gpt-oss graph adds to attention: the
// output bias and the sinks (required there; Sources checks every layer
// has them), and the sliding window, which llama.cpp applies to the even
// layers (hparams.set_swa_pattern(2): layer il slides when il%2 < 1), as
// GptOssConfig's default layer_types does. The converter writes the
// window under attention.sliding_window; the pattern is not in the file.
func gptOss(f *File, m meta, c *model.Config) error {
	_, c.AttnOutBias = f.Tensor("blk.0.attn_output.bias")
	_, c.Sinks = f.Tensor("blk.0.attn_sinks.weight")
	if !c.AttnBias || !c.AttnOutBias || !c.Sinks {
		return fmt.Errorf("gpt-oss needs attn_q/k/v/output biases and attn_sinks (layer 0 has q bias %v, output bias %v, sinks %v)", c.AttnBias, c.AttnOutBias, c.Sinks)
	}
	w, err := m.positive(m.key("attention.sliding_window"))
	if err != nil {
		return err
	}
	c.SlidingWindow = w
	c.LayerTypes = make([]string, c.Layers)
	for l := range c.LayerTypes {
		c.LayerTypes[l] = model.LayerFull
		if l%2 == 0 {
			c.LayerTypes[l] = model.LayerSliding
		}
	}
	return nil
}
