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
	Type            string  `json:"type"` // "linear" | "llama3" | "yarn" | "dynamic"
	Factor          float64 `json:"factor"`
	LowFreqFactor   float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor  float64 `json:"high_freq_factor,omitempty"`
	OrigMaxPosition int     `json:"original_max_position_embeddings,omitempty"`
	BetaFast        float64 `json:"beta_fast,omitempty"`
	BetaSlow        float64 `json:"beta_slow,omitempty"`
	// YaRN's attention factor (the scale of cos and sin): AttnFactor when
	// set, else mscale(factor, Mscale)/mscale(factor, MscaleAllDim) when
	// both are set, else mscale(factor, 1), with mscale(s, m) =
	// 0.1·m·ln(s)+1 (transformers' _compute_yarn_parameters).
	AttnFactor   float64 `json:"attention_factor,omitempty"`
	Mscale       float64 `json:"mscale,omitempty"`
	MscaleAllDim float64 `json:"mscale_all_dim,omitempty"`
	// NoTruncate is YaRN's truncate: false (gpt-oss): the correction range
	// is not rounded to whole dimensions.
	NoTruncate bool `json:"no_truncate,omitempty"`
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
	// LogitBias says the router is a linear layer with a bias
	// (router_logit_bias, added to the logits before scoring, so it counts
	// for both choosing and weighting: gpt-oss's GptOssTopKRouter).
	LogitBias bool `json:"logit_bias,omitempty"`
	// CapacityFactor > 0 limits each expert to
	// ceil(CapacityFactor*tokens*TopK/experts) tokens of a prefill batch.
	CapacityFactor float64 `json:"capacity_factor,omitempty"`
	// Fallback is the routed expert that takes overflow, or FallbackShared.
	Fallback int `json:"fallback"`
	// Groups > 0 splits the experts into Groups equal groups in index order
	// and limits each token to the TopKGroups groups of best GroupScore
	// (DeepSeek's n_group and topk_group): topk_method
	// group_limited_greedy (GroupMax) and noaux_tc (GroupTop2Sum).
	Groups     int        `json:"n_group,omitempty"`
	TopKGroups int        `json:"topk_group,omitempty"`
	GroupScore GroupScore `json:"group_score,omitempty"`
}

// GroupScore is how a group of experts is scored for group-limited routing.
type GroupScore string

const (
	// GroupMax is the largest score in the group (DeepSeek-V2's
	// group_limited_greedy, MoEGate in its modeling_deepseek.py).
	GroupMax GroupScore = "max"
	// GroupTop2Sum is the sum of the group's two largest selection scores,
	// the selection bias included (DeepSeek-V3's noaux_tc).
	GroupTop2Sum GroupScore = "top2_sum"
)

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

// Activation is the gate nonlinearity of a gated FFN block:
// down(act(gate·x) ⊙ up·x).
type Activation string

const (
	// ActSwiGLU (the empty value) is down(silu(gate·x) ⊙ up·x): Llama,
	// Mixtral, Qwen, OLMoE; as an expert's activation it reads as ActSiLU.
	ActSwiGLU Activation = ""
	// ActSwiGLUClamped is gpt-oss's variant, a layer-wide FFN.Act,
	// following GptOssExperts.forward in HF transformers'
	// modeling_gpt_oss.py: the gate is clamped above at Limit, the up
	// projection to ±Limit, and the product is (up + 1) · gate · σ(Alpha·gate).
	ActSwiGLUClamped Activation = "swiglu_clamped"
	ActSiLU          Activation = "silu"      // x·sigmoid(x) (SwiGLU); "" reads as silu
	ActGELUTanh      Activation = "gelu_tanh" // GELU's tanh approximation (GeGLU)
	ActReLU2         Activation = "relu2"     // max(x, 0)² (squared-ReLU GLU)
)

// MaxDepth bounds the blocks of one expert.
const MaxDepth = 8

// ExpertArch is a routed expert's architecture beyond its first block's
// width (ExpertWidths). Its zero value is the plain expert: one SwiGLU
// block. An expert of depth d = 1+len(Extra) is a stack of d gated blocks
// with a residual inside the expert: h₀ = x (the layer's FFN-normed
// input), h_j = h_{j-1} + B_j(n_j(h_{j-1})), and the expert's output is
// h_d − h₀ = Σ B_j, summed in block order. Block 1's norm n₁ is the
// layer's ffn_norm (x is already normed, so depth-1 experts are exactly
// the old ones); every later block has its own RMSNorm weight.
type ExpertArch struct {
	Act   Activation `json:"act,omitempty"`          // all of the expert's blocks; "" is silu
	Extra []int      `json:"extra_widths,omitempty"` // widths of blocks 2..d
}

// Depth is the number of blocks.
func (a ExpertArch) Depth() int { return 1 + len(a.Extra) }

// Activation returns the activation with "" read as silu.
func (a ExpertArch) Activation() Activation {
	if a.Act == "" {
		return ActSiLU
	}
	return a.Act
}

// Plain reports whether the expert is one SwiGLU block.
func (a ExpertArch) Plain() bool { return len(a.Extra) == 0 && a.Activation() == ActSiLU }

// FFN describes one layer's feed-forward block: routed experts (each with
// its own width, and optionally its own depth and activation) chosen by
// Router, plus shared experts applied to every token. A dense layer has
// one shared expert and no router.
type FFN struct {
	ExpertWidths []int `json:"expert_widths,omitempty"`
	// ExpertArch is empty (every expert plain) or one entry per routed
	// expert; packs written before it existed read as all plain.
	ExpertArch   []ExpertArch `json:"expert_arch,omitempty"`
	SharedWidths []int        `json:"shared_widths,omitempty"`
	SharedGate   bool         `json:"shared_gate,omitempty"` // sigmoid(w·x) scales the shared output (Qwen2-MoE)
	Router       *Router      `json:"router,omitempty"`
	// Act is every expert's activation; Alpha and Limit parametrise
	// ActSwiGLUClamped (gpt-oss: 1.702 and 7).
	Act   Activation `json:"activation,omitempty"`
	Alpha float32    `json:"swiglu_alpha,omitempty"`
	Limit float32    `json:"swiglu_limit,omitempty"`
	// ExpertBias says the routed experts' gate, up and down projections
	// have biases (gpt-oss). They are layer tensors expert_gate_bias and
	// expert_up_bias [experts, width] and expert_down_bias [experts, dim],
	// kept with the layer rather than in each expert's shard: they are
	// small, and the expert sources stay three matrices per expert. It
	// needs every routed expert to have the same width.
	ExpertBias bool `json:"expert_bias,omitempty"`
}

// Arch returns routed expert e's architecture.
func (f *FFN) Arch(e int) ExpertArch {
	if e < len(f.ExpertArch) {
		return f.ExpertArch[e]
	}
	return ExpertArch{}
}

// BlockWidths returns the widths of routed expert e's blocks in order.
func (f *FFN) BlockWidths(e int) []int {
	return append([]int{f.ExpertWidths[e]}, f.Arch(e).Extra...)
}

// Sparse reports whether the layer routes.
func (f *FFN) Sparse() bool { return f.Router != nil && len(f.ExpertWidths) > 0 }

// HasRoutedExperts reports whether any layer routes.
func (c *Config) HasRoutedExperts() bool {
	return slices.ContainsFunc(c.FFN, func(f FFN) bool { return f.Sparse() })
}

// Config is everything about a model except its weights.
type Config struct {
	Arch      string       `json:"arch"` // family the model came from, informational
	Dim       int          `json:"dim"`
	Layers    int          `json:"n_layers"`
	Heads     int          `json:"n_heads"`
	KVHeads   int          `json:"n_kv_heads"`
	HeadDim   int          `json:"head_dim"`
	Vocab     int          `json:"vocab_size"`
	MaxSeq    int          `json:"max_seq_len"`
	NormEps   float32      `json:"norm_eps"`
	RopeTheta float64      `json:"rope_theta"`
	RopeStyle RopeStyle    `json:"rope_style"`
	RopeScale *RopeScaling `json:"rope_scaling,omitempty"`
	QKNorm    QKNorm       `json:"qk_norm,omitempty"`
	AttnBias  bool         `json:"attention_bias,omitempty"` // q, k, v projections have biases (Qwen2)
	// AttnOutBias says the output projection has a bias bo (gpt-oss).
	AttnOutBias bool `json:"attention_out_bias,omitempty"`
	// Sinks says each layer has a learned logit per query head (sinks
	// [n_heads]) that joins every softmax denominator of that head, as
	// eager_attention_forward in HF's modeling_gpt_oss.py computes it:
	// softmax over [scores..., sink] with the sink's share dropped.
	Sinks bool `json:"attention_sinks,omitempty"`
	// SlidingWindow > 0 limits each layer whose LayerTypes entry is
	// "sliding_attention" (every layer when LayerTypes is empty) to the
	// last SlidingWindow positions, the token's own included, as HF's
	// sliding-window causal mask does (kv_idx > q_idx - sliding_window).
	SlidingWindow int      `json:"sliding_window,omitempty"`
	LayerTypes    []string `json:"layer_types,omitempty"`
	// MLA, when set, replaces the q/k/v projections by multi-head latent
	// attention (DeepSeek-V2/V3).
	MLA        *MLA `json:"mla,omitempty"`
	TiedOutput bool `json:"tie_word_embeddings"`
	// Granite's multipliers (GraniteMoeForCausalLM, transformers'
	// modeling_granitemoe.py); 0 means the usual value, so other families
	// and older packs are unchanged.
	EmbedScale    float32 `json:"embedding_multiplier,omitempty"` // embeddings × this (0: 1)
	AttnScale     float32 `json:"attention_multiplier,omitempty"` // q·k × this, instead of 1/√head_dim
	ResidualScale float32 `json:"residual_multiplier,omitempty"`  // attention and FFN outputs × this before each residual add (0: 1)
	LogitScale    float32 `json:"logits_scaling,omitempty"`       // logits ÷ this (0: 1)
	BOS           int     `json:"bos_token_id"`
	EOS           []int   `json:"eos_token_ids"`
	FFN           []FFN   `json:"ffn"` // one per layer
}

// AttnDivisor is what attention divides q·k by: 1/attention_multiplier
// when the config has one, else √head_dim.
func (c *Config) AttnDivisor() float32 {
	if c.AttnScale > 0 {
		return 1 / c.AttnScale
	}
	d := math.Sqrt(float64(c.HeadDim))
	if s := c.RopeScale; c.MLA != nil && s != nil && s.Type == "yarn" && s.MscaleAllDim > 0 {
		// DeepseekV2Attention (modeling_deepseek.py): softmax_scale is
		// q_head_dim^-0.5 · yarn_get_mscale(factor, mscale_all_dim)².
		m := yarnMscale(s.Factor, s.MscaleAllDim)
		d /= m * m
	}
	return float32(d)
}

// Layer types of Config.LayerTypes, as HF's config.json spells them.
const (
	LayerSliding = "sliding_attention"
	LayerFull    = "full_attention"
)

// Window is the number of positions layer l attends to (the token's own
// included), or 0 for the whole context.
func (c *Config) Window(l int) int {
	if c.SlidingWindow <= 0 {
		return 0
	}
	if len(c.LayerTypes) == 0 || (l < len(c.LayerTypes) && c.LayerTypes[l] == LayerSliding) {
		return c.SlidingWindow
	}
	return 0
}

// MLA is DeepSeek-V2/V3's multi-head latent attention, following
// DeepseekV2Attention in modeling_deepseek.py: q is projected directly
// (QLoraRank 0: q_proj) or through a rank-QLoraRank bottleneck with its
// own RMSNorm (q_a_proj, q_a_layernorm, q_b_proj), each head's q splits
// into NopeDim dimensions without RoPE and RopeDim with it; the keys and
// values come from a KVLoraRank latent (kv_a_proj_with_mqa, then
// kv_a_layernorm) expanded per head by kv_b_proj into NopeDim key and VDim
// value dimensions, plus one RopeDim key shared by every head, taken from
// kv_a_proj_with_mqa beside the latent. The KV cache holds the normed
// latent and the rotated shared key: KVLoraRank+RopeDim floats a token.
// Config.HeadDim is NopeDim+RopeDim (q·k's length) and KVHeads equals
// Heads.
type MLA struct {
	QLoraRank  int `json:"q_lora_rank,omitempty"`
	KVLoraRank int `json:"kv_lora_rank"`
	NopeDim    int `json:"qk_nope_head_dim"`
	RopeDim    int `json:"qk_rope_head_dim"`
	VDim       int `json:"v_head_dim"`
}

// RopeDim is the number of dimensions of a head RoPE rotates: HeadDim, or
// MLA's qk_rope_head_dim.
func (c *Config) RopeDim() int {
	if c.MLA != nil {
		return c.MLA.RopeDim
	}
	return c.HeadDim
}

// AttnOutDim is the width of attention's output (o_proj's input).
func (c *Config) AttnOutDim() int {
	if c.MLA != nil {
		return c.Heads * c.MLA.VDim
	}
	return c.QDim()
}

// validateMLA checks MLA's dimensions and refuses the parts no kernel
// combines with it.
func (c *Config) validateMLA() error {
	m := c.MLA
	for _, f := range []struct {
		n string
		v int
	}{{"kv_lora_rank", m.KVLoraRank}, {"qk_nope_head_dim", m.NopeDim}, {"qk_rope_head_dim", m.RopeDim}, {"v_head_dim", m.VDim}} {
		if f.v <= 0 || f.v > 1<<16 {
			return fmt.Errorf("config: mla %s %d out of range 1..65536", f.n, f.v)
		}
	}
	if m.QLoraRank < 0 || m.QLoraRank > 1<<16 {
		return fmt.Errorf("config: mla q_lora_rank %d out of range 0..65536", m.QLoraRank)
	}
	if m.RopeDim%2 != 0 {
		return fmt.Errorf("config: mla qk_rope_head_dim %d must be even for RoPE", m.RopeDim)
	}
	if c.HeadDim != m.NopeDim+m.RopeDim {
		return fmt.Errorf("config: mla head_dim %d is not qk_nope_head_dim %d + qk_rope_head_dim %d", c.HeadDim, m.NopeDim, m.RopeDim)
	}
	if c.KVHeads != c.Heads {
		return fmt.Errorf("config: mla n_kv_heads %d must equal n_heads %d", c.KVHeads, c.Heads)
	}
	for _, f := range []struct {
		n  string
		on bool
	}{{"attention_bias", c.AttnBias}, {"attention_out_bias", c.AttnOutBias}, {"attention_sinks", c.Sinks},
		{"sliding_window", c.SlidingWindow > 0}, {"qk_norm", c.QKNorm != QKNormNone}, {"attention_multiplier", c.AttnScale != 0}} {
		if f.on {
			return fmt.Errorf("config: %s is not supported with multi-head latent attention (mla)", f.n)
		}
	}
	return nil
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
	if c.MLA != nil {
		if err := c.validateMLA(); err != nil {
			return err
		}
	} else if c.HeadDim%2 != 0 {
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
		case "linear", "llama3", "yarn", "dynamic":
		default:
			return fmt.Errorf("config: rope_scaling type %q is not supported (linear, llama3, yarn, dynamic)", s.Type)
		}
		for _, v := range []struct {
			name string
			v    float64
		}{{"attention_factor", s.AttnFactor}, {"mscale", s.Mscale}, {"mscale_all_dim", s.MscaleAllDim}, {"beta_fast", s.BetaFast}, {"beta_slow", s.BetaSlow}} {
			if !(v.v >= 0) || math.IsInf(v.v, 0) {
				return fmt.Errorf("config: rope_scaling %s %v must be a finite number >= 0", v.name, v.v)
			}
		}
		if s.Type == "dynamic" && s.OrigMaxPosition <= 0 {
			return fmt.Errorf("config: dynamic rope_scaling needs original_max_position_embeddings > 0")
		}
		if !(s.Factor >= 1) || math.IsInf(s.Factor, 0) {
			return fmt.Errorf("config: rope_scaling factor %v must be >= 1", s.Factor)
		}
		if s.Type == "llama3" && (!(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || s.OrigMaxPosition <= 0) {
			return fmt.Errorf("config: llama3 rope_scaling needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0")
		}
	}
	for _, m := range []struct {
		name string
		v    float32
	}{{"embedding_multiplier", c.EmbedScale}, {"attention_multiplier", c.AttnScale}, {"residual_multiplier", c.ResidualScale}, {"logits_scaling", c.LogitScale}} {
		if !(m.v >= 0) || math.IsInf(float64(m.v), 0) {
			return fmt.Errorf("config: %s %v must be a positive finite number", m.name, m.v)
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
	return c.validateWindow()
}

// validateWindow checks sliding_window and layer_types.
func (c *Config) validateWindow() error {
	if c.SlidingWindow < 0 || c.SlidingWindow > 1<<24 {
		return fmt.Errorf("config: sliding_window %d out of range", c.SlidingWindow)
	}
	if len(c.LayerTypes) == 0 {
		return nil
	}
	if len(c.LayerTypes) != c.Layers {
		return fmt.Errorf("config: layer_types has %d entries for %d layers", len(c.LayerTypes), c.Layers)
	}
	for l, t := range c.LayerTypes {
		switch t {
		case LayerFull:
		case LayerSliding:
			if c.SlidingWindow == 0 {
				return fmt.Errorf("config: layer_types[%d] is %q but sliding_window is not set", l, t)
			}
		default:
			return fmt.Errorf("config: layer_types[%d] %q is not supported (%q or %q)", l, t, LayerSliding, LayerFull)
		}
	}
	return nil
}

// MaxExperts and MaxShared bound the routed and the shared experts of one
// layer. Real models have at most a few hundred routed experts and a few
// shared ones; the bounds keep a hostile config from making validation or
// Spec build millions of tensor descriptions.
const (
	MaxExperts = 1 << 14
	MaxShared  = 64
)

func (f *FFN) validate() error {
	if len(f.ExpertWidths) > MaxExperts || len(f.SharedWidths) > MaxShared {
		return fmt.Errorf("%d routed and %d shared experts, more than the %d and %d supported",
			len(f.ExpertWidths), len(f.SharedWidths), MaxExperts, MaxShared)
	}
	for _, ws := range [][]int{f.ExpertWidths, f.SharedWidths} {
		for _, w := range ws {
			if w <= 0 || w > 1<<24 {
				return fmt.Errorf("expert width %d out of range", w)
			}
		}
	}
	if len(f.ExpertArch) > 0 && len(f.ExpertArch) != len(f.ExpertWidths) {
		return fmt.Errorf("expert_arch has %d entries for %d routed experts", len(f.ExpertArch), len(f.ExpertWidths))
	}
	for e, a := range f.ExpertArch {
		switch a.Act {
		case "", ActSiLU, ActGELUTanh, ActReLU2:
		default:
			return fmt.Errorf("expert_arch[%d].act %q is not one the kernels implement (%s, %s, %s)", e, a.Act, ActSiLU, ActGELUTanh, ActReLU2)
		}
		if a.Depth() > MaxDepth {
			return fmt.Errorf("expert_arch[%d] has depth %d, more than the %d supported", e, a.Depth(), MaxDepth)
		}
		for _, w := range a.Extra {
			if w <= 0 || w > 1<<24 {
				return fmt.Errorf("expert_arch[%d].extra_widths: width %d out of range", e, w)
			}
		}
	}
	if len(f.ExpertWidths) == 0 && len(f.SharedWidths) == 0 {
		return fmt.Errorf("ffn has no experts")
	}
	if f.SharedGate && len(f.SharedWidths) == 0 {
		return fmt.Errorf("shared_gate without a shared expert")
	}
	switch f.Act {
	case ActSwiGLU:
		if f.Alpha != 0 || f.Limit != 0 {
			return fmt.Errorf("swiglu_alpha and swiglu_limit apply only to activation %q", ActSwiGLUClamped)
		}
	case ActSwiGLUClamped:
		for _, p := range []struct {
			n string
			v float32
		}{{"swiglu_alpha", f.Alpha}, {"swiglu_limit", f.Limit}} {
			if !(p.v > 0) || math.IsInf(float64(p.v), 0) {
				return fmt.Errorf("%s %v must be positive and finite", p.n, p.v)
			}
		}
	default:
		return fmt.Errorf("activation %q is not supported (%q, %q)", f.Act, ActSwiGLU, ActSwiGLUClamped)
	}
	if f.ExpertBias {
		if len(f.ExpertWidths) == 0 {
			return fmt.Errorf("expert_bias without routed experts")
		}
		for _, w := range f.ExpertWidths {
			if w != f.ExpertWidths[0] {
				return fmt.Errorf("expert_bias needs routed experts of one width, got %d and %d", f.ExpertWidths[0], w)
			}
		}
	}
	if f.Act != ActSwiGLU || f.ExpertBias {
		// the clamped activation and the expert biases apply to a plain
		// expert's one block; no kernel combines them with deeper experts
		for e, a := range f.ExpertArch {
			if !a.Plain() {
				return fmt.Errorf("expert_arch[%d]: a layer with activation %q or expert biases takes plain experts only", e, f.Act)
			}
		}
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
	return r.validateGroups(n)
}

// validateGroups checks group-limited routing against n experts.
func (r *Router) validateGroups(n int) error {
	if r.Groups == 0 {
		if r.TopKGroups != 0 || r.GroupScore != "" {
			return fmt.Errorf("topk_group %d and group_score %q need n_group > 0", r.TopKGroups, r.GroupScore)
		}
		return nil
	}
	if r.Groups < 0 || r.Groups > n || n%r.Groups != 0 {
		return fmt.Errorf("n_group %d does not divide the %d routed experts", r.Groups, n)
	}
	if r.TopKGroups < 1 || r.TopKGroups > r.Groups {
		return fmt.Errorf("topk_group %d out of range 1..%d (n_group)", r.TopKGroups, r.Groups)
	}
	size := n / r.Groups
	if r.TopK > r.TopKGroups*size {
		return fmt.Errorf("top_k %d is more than the %d experts in topk_group %d groups of %d", r.TopK, r.TopKGroups*size, r.TopKGroups, size)
	}
	switch r.GroupScore {
	case GroupMax:
	case GroupTop2Sum:
		if size < 2 {
			return fmt.Errorf("group_score %q needs groups of at least 2 experts, got %d", r.GroupScore, size)
		}
	default:
		return fmt.Errorf("group_score %q is not supported (%q, %q)", r.GroupScore, GroupMax, GroupTop2Sum)
	}
	return nil
}
