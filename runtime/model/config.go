package model

import (
	"fmt"
	"math"
	"slices"
)

// RopeStyle says which pairs of a head's dimensions RoPE rotates together.
type RopeStyle string

const (
	// RopeInterleaved rotates (x[2i], x[2i+1]): llama2.c, GGUF llama.
	RopeInterleaved RopeStyle = "interleaved"
	// RopeHalf rotates (x[i], x[i+d/2]): HF rotate_half, GPT-NeoX.
	RopeHalf RopeStyle = "half"
)

// RopeScaling mirrors HF's rope_scaling for the types the engine applies.
type RopeScaling struct {
	Type            string  `json:"type"` // "linear" | "llama3" | "yarn"
	Factor          float64 `json:"factor"`
	LowFreqFactor   float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor  float64 `json:"high_freq_factor,omitempty"`
	OrigMaxPosition int     `json:"original_max_position_embeddings,omitempty"`
	BetaFast        float64 `json:"beta_fast,omitempty"`
	BetaSlow        float64 `json:"beta_slow,omitempty"`
}

// QKNorm says whether and how q and k are RMS-normalised before RoPE.
type QKNorm string

const (
	QKNormNone QKNorm = ""
	QKNormHead QKNorm = "head" // per head over head_dim (Qwen3)
	QKNormFull QKNorm = "full" // over the whole projection (OLMoE)
)

// Scoring is how router logits become expert scores.
type Scoring string

const (
	Softmax Scoring = "softmax"
	Sigmoid Scoring = "sigmoid"
)

// FallbackShared is the Router.Fallback value that sends capacity overflow to
// the layer's shared experts, i.e. the routed assignment is dropped and the
// token keeps only its shared-expert output.
const FallbackShared = -1

// Router holds a sparse layer's routing rules.
type Router struct {
	Scoring  Scoring `json:"scoring"`
	TopK     int     `json:"top_k"`
	NormTopK bool    `json:"norm_topk_prob"`
	// ScalingFactor multiplies the final routed weights (DeepSeek's
	// routed_scaling_factor); 0 is read as 1.
	ScalingFactor float32 `json:"routed_scaling_factor,omitempty"`
	// SelectionBias says the layer has a per-expert bias that is added to
	// the scores for choosing experts but not for weighting them.
	SelectionBias bool `json:"selection_bias,omitempty"`
	// CapacityFactor > 0 limits each expert to
	// ceil(CapacityFactor*tokens*TopK/experts) tokens of a prefill batch.
	CapacityFactor float64 `json:"capacity_factor,omitempty"`
	// Fallback is the routed expert that takes overflow, or FallbackShared.
	Fallback int `json:"fallback"`
}

// Scale returns the effective routed scaling factor.
func (r *Router) Scale() float32 {
	if r.ScalingFactor == 0 {
		return 1
	}
	return r.ScalingFactor
}

// Capacity returns how many of a batch's tokens one expert may take, or 0
// for no limit. It never limits a single token (decode).
func (r *Router) Capacity(tokens, experts int) int {
	if r.CapacityFactor <= 0 || tokens <= 1 {
		return 0
	}
	return int(math.Ceil(r.CapacityFactor * float64(tokens*r.TopK) / float64(experts)))
}

// FFN describes one layer's feed-forward block: routed experts (each with
// its own width) chosen by Router, plus shared experts applied to every
// token. A dense layer has one shared expert and no router.
type FFN struct {
	ExpertWidths []int   `json:"expert_widths,omitempty"`
	SharedWidths []int   `json:"shared_widths,omitempty"`
	SharedGate   bool    `json:"shared_gate,omitempty"` // sigmoid(w·x) scales the shared output (Qwen2-MoE)
	Router       *Router `json:"router,omitempty"`
}

// Sparse reports whether the layer routes.
func (f *FFN) Sparse() bool { return f.Router != nil && len(f.ExpertWidths) > 0 }

// HasRoutedExperts reports whether any layer routes.
func (c *Config) HasRoutedExperts() bool {
	return slices.ContainsFunc(c.FFN, func(f FFN) bool { return f.Sparse() })
}

// Config is everything about a model except its weights.
type Config struct {
	Arch       string       `json:"arch"` // family the model came from, informational
	Dim        int          `json:"dim"`
	Layers     int          `json:"n_layers"`
	Heads      int          `json:"n_heads"`
	KVHeads    int          `json:"n_kv_heads"`
	HeadDim    int          `json:"head_dim"`
	Vocab      int          `json:"vocab_size"`
	MaxSeq     int          `json:"max_seq_len"`
	NormEps    float32      `json:"norm_eps"`
	RopeTheta  float64      `json:"rope_theta"`
	RopeStyle  RopeStyle    `json:"rope_style"`
	RopeScale  *RopeScaling `json:"rope_scaling,omitempty"`
	QKNorm     QKNorm       `json:"qk_norm,omitempty"`
	AttnBias   bool         `json:"attention_bias,omitempty"` // q, k, v projections have biases (Qwen2)
	TiedOutput bool         `json:"tie_word_embeddings"`
	BOS        int          `json:"bos_token_id"`
	EOS        []int        `json:"eos_token_ids"`
	FFN        []FFN        `json:"ffn"` // one per layer
}

// QDim and KVDim are the widths of the q and of the k/v projections.
func (c *Config) QDim() int  { return c.Heads * c.HeadDim }
func (c *Config) KVDim() int { return c.KVHeads * c.HeadDim }

// Validate checks the config for values the engine cannot run, so that bad
// input is reported once, up front, instead of failing mid-forward.
func (c *Config) Validate() error {
	pos := func(name string, v int) error {
		if v <= 0 {
			return fmt.Errorf("config: %s must be positive, got %d", name, v)
		}
		return nil
	}
	for _, f := range []struct {
		n string
		v int
	}{{"dim", c.Dim}, {"n_layers", c.Layers}, {"n_heads", c.Heads}, {"n_kv_heads", c.KVHeads},
		{"head_dim", c.HeadDim}, {"vocab_size", c.Vocab}, {"max_seq_len", c.MaxSeq}} {
		if err := pos(f.n, f.v); err != nil {
			return err
		}
	}
	const limit = 1 << 24 // far above any real model; keeps arithmetic in int range
	if c.Dim > limit || c.Vocab > limit || c.MaxSeq > limit || c.HeadDim > limit || c.Layers > 4096 || c.Heads > 4096 {
		return fmt.Errorf("config: dimensions out of range (dim %d, vocab %d, max_seq_len %d, head_dim %d, layers %d, heads %d)",
			c.Dim, c.Vocab, c.MaxSeq, c.HeadDim, c.Layers, c.Heads)
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("config: n_heads %d is not a multiple of n_kv_heads %d", c.Heads, c.KVHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("config: head_dim %d must be even for RoPE", c.HeadDim)
	}
	if !(c.NormEps > 0) || c.NormEps > 1 {
		return fmt.Errorf("config: norm_eps %v out of range (0, 1]", c.NormEps)
	}
	if !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) {
		return fmt.Errorf("config: rope_theta %v must be positive", c.RopeTheta)
	}
	if c.RopeStyle != RopeInterleaved && c.RopeStyle != RopeHalf {
		return fmt.Errorf("config: rope_style %q is neither %q nor %q", c.RopeStyle, RopeInterleaved, RopeHalf)
	}
	if s := c.RopeScale; s != nil {
		switch s.Type {
		case "linear", "llama3", "yarn":
		default:
			return fmt.Errorf("config: rope_scaling type %q is not supported (linear, llama3, yarn)", s.Type)
		}
		if !(s.Factor >= 1) || math.IsInf(s.Factor, 0) {
			return fmt.Errorf("config: rope_scaling factor %v must be >= 1", s.Factor)
		}
		if s.Type == "llama3" && (!(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || s.OrigMaxPosition <= 0) {
			return fmt.Errorf("config: llama3 rope_scaling needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0")
		}
	}
	switch c.QKNorm {
	case QKNormNone, QKNormHead, QKNormFull:
	default:
		return fmt.Errorf("config: qk_norm %q unknown", c.QKNorm)
	}
	if c.BOS < -1 || c.BOS >= c.Vocab {
		return fmt.Errorf("config: bos_token_id %d outside vocab of %d", c.BOS, c.Vocab)
	}
	for _, e := range c.EOS {
		if e < 0 || e >= c.Vocab {
			return fmt.Errorf("config: eos_token_id %d outside vocab of %d", e, c.Vocab)
		}
	}
	if len(c.FFN) != c.Layers {
		return fmt.Errorf("config: %d layers but %d ffn descriptions", c.Layers, len(c.FFN))
	}
	for i := range c.FFN {
		if err := c.FFN[i].validate(); err != nil {
			return fmt.Errorf("config: layer %d: %w", i, err)
		}
	}
	return nil
}

func (f *FFN) validate() error {
	for _, w := range append(append([]int(nil), f.ExpertWidths...), f.SharedWidths...) {
		if w <= 0 || w > 1<<24 {
			return fmt.Errorf("expert width %d out of range", w)
		}
	}
	if len(f.ExpertWidths) == 0 && len(f.SharedWidths) == 0 {
		return fmt.Errorf("ffn has no experts")
	}
	if f.SharedGate && len(f.SharedWidths) == 0 {
		return fmt.Errorf("shared_gate without a shared expert")
	}
	if len(f.ExpertWidths) > 0 && f.Router == nil {
		return fmt.Errorf("%d routed experts but no router", len(f.ExpertWidths))
	}
	r := f.Router
	if r == nil {
		return nil
	}
	n := len(f.ExpertWidths)
	if n == 0 {
		return fmt.Errorf("router without routed experts")
	}
	if r.TopK < 1 || r.TopK > n {
		return fmt.Errorf("top_k %d out of range 1..%d", r.TopK, n)
	}
	if r.Scoring != Softmax && r.Scoring != Sigmoid {
		return fmt.Errorf("router scoring %q is neither softmax nor sigmoid", r.Scoring)
	}
	if math.IsNaN(float64(r.ScalingFactor)) || math.IsInf(float64(r.ScalingFactor), 0) || r.ScalingFactor < 0 {
		return fmt.Errorf("routed_scaling_factor %v out of range", r.ScalingFactor)
	}
	if math.IsNaN(r.CapacityFactor) || math.IsInf(r.CapacityFactor, 0) || r.CapacityFactor < 0 {
		return fmt.Errorf("capacity_factor %v out of range", r.CapacityFactor)
	}
	if r.Fallback != FallbackShared && (r.Fallback < 0 || r.Fallback >= n) {
		return fmt.Errorf("fallback expert %d out of range (-1 for shared, 0..%d)", r.Fallback, n-1)
	}
	if r.Fallback == FallbackShared && r.CapacityFactor > 0 && len(f.SharedWidths) == 0 {
		return fmt.Errorf("capacity overflow goes to the shared expert but the layer has none; name a fallback expert")
	}
	return nil
}
