package hf

import (
	"encoding/json"
	"math"
	"slices"

	"github.com/moderuntime/mode/runtime/model"
)

// hfConfig holds the config.json keys the supported model types read.
// Pointers distinguish an absent key, which takes the transformers default
// for that model type, from an explicit value.
type hfConfig struct {
	HiddenSize       *int            `json:"hidden_size"`
	IntermediateSize *int            `json:"intermediate_size"`
	NumLayers        *int            `json:"num_hidden_layers"`
	NumHeads         *int            `json:"num_attention_heads"`
	NumKVHeads       *int            `json:"num_key_value_heads"`
	HeadDim          *int            `json:"head_dim"`
	VocabSize        *int            `json:"vocab_size"`
	MaxPositions     *int            `json:"max_position_embeddings"`
	RMSNormEps       *float64        `json:"rms_norm_eps"`
	RopeTheta        *float64        `json:"rope_theta"`
	RopeScaling      json.RawMessage `json:"rope_scaling"`
	RopeParameters   json.RawMessage `json:"rope_parameters"` // transformers v5 form
	HiddenAct        *string         `json:"hidden_act"`
	AttentionBias    *bool           `json:"attention_bias"`
	QKVBias          *bool           `json:"qkv_bias"`
	MLPBias          *bool           `json:"mlp_bias"`
	TieEmbeddings    *bool           `json:"tie_word_embeddings"`
	BOS              json.RawMessage `json:"bos_token_id"`
	EOS              json.RawMessage `json:"eos_token_id"`
	SlidingWindow    *int            `json:"sliding_window"`
	UseSlidingWindow *bool           `json:"use_sliding_window"`
	ClipQKV          *float64        `json:"clip_qkv"`

	NumExperts         *int  `json:"num_experts"`
	NumLocalExperts    *int  `json:"num_local_experts"`
	ExpertsPerToken    *int  `json:"num_experts_per_tok"`
	NormTopKProb       *bool `json:"norm_topk_prob"`
	MoEIntermediate    *int  `json:"moe_intermediate_size"`
	SharedIntermediate *int  `json:"shared_expert_intermediate_size"`
	DecoderSparseStep  *int  `json:"decoder_sparse_step"`
	MLPOnlyLayers      []int `json:"mlp_only_layers"`

	// Granite (GraniteMoeConfig, GraniteMoeSharedConfig)
	EmbeddingMultiplier *float64 `json:"embedding_multiplier"`
	AttentionMultiplier *float64 `json:"attention_multiplier"`
	ResidualMultiplier  *float64 `json:"residual_multiplier"`
	LogitsScaling       *float64 `json:"logits_scaling"`
	SharedIntermediateG *int     `json:"shared_intermediate_size"`
	// gpt_oss
	LayerTypes         []string        `json:"layer_types"`
	SwigluLimit        *float64        `json:"swiglu_limit"`
	ExpertsPerTokenAlt *int            `json:"experts_per_token"` // the original release's spelling
	Quantization       json.RawMessage `json:"quantization_config"`
	// DeepSeek-V2/V3
	DS deepSeekFields `json:"-"`
}

// UnmarshalJSON reads the shared keys and DeepSeek's from one object.
func (h *hfConfig) UnmarshalJSON(raw []byte) error {
	type plain hfConfig // without this method
	if err := json.Unmarshal(raw, (*plain)(h)); err != nil {
		return err
	}
	return json.Unmarshal(raw, &h.DS)
}

func isGranite(arch string) bool { return arch == "granitemoe" || arch == "granitemoeshared" }

// defaults are the transformers config-class defaults that matter when a
// key is absent.
type defaults struct {
	normEps   float64
	maxPos    int
	ropeTheta float64
	topK      int
	bos, eos  string // JSON, "null" for none
}

func defaultsFor(arch string) defaults {
	switch arch {
	case "llama":
		return defaults{1e-6, 2048, 10000, 0, "1", "2"}
	case "mixtral":
		return defaults{1e-5, 4096 * 32, 1e6, 2, "1", "2"}
	case "qwen2_moe":
		return defaults{1e-6, 32768, 10000, 4, "null", "null"}
	case "qwen3_moe":
		return defaults{1e-6, 32768, 10000, 8, "null", "null"}
	case "olmoe":
		return defaults{1e-5, 4096, 10000, 8, "null", "50279"}
	case "granitemoe", "granitemoeshared":
		return defaults{1e-6, 2048, 10000, 2, "1", "2"}
	case "gpt_oss": // GptOssConfig
		return defaults{1e-5, 131072, 150000, 4, "null", "null"}
	case "deepseek_v2": // DeepseekV2Config
		return defaults{1e-6, 2048, 10000, 0, "100000", "100001"}
	case "deepseek_v3": // DeepseekV3Config
		return defaults{1e-6, 4096, 10000, 0, "0", "1"}
	}
	panic("hf: no defaults for " + arch) // parseConfig admits only known types
}

// modelConfig builds the model.Config for a model type. Errors name the key.
func (h *hfConfig) modelConfig(arch string) (model.Config, error) {
	d := defaultsFor(arch)
	c := model.Config{Arch: arch, RopeStyle: model.RopeHalf}
	var err error
	if c.Dim, err = required("hidden_size", h.HiddenSize); err != nil {
		return c, err
	}
	if c.Layers, err = required("num_hidden_layers", h.NumLayers); err != nil {
		return c, err
	}
	if c.Layers > maxLayers {
		return c, keyError("num_hidden_layers", "%d exceeds %d", c.Layers, maxLayers)
	}
	if c.Heads, err = required("num_attention_heads", h.NumHeads); err != nil {
		return c, err
	}
	if c.KVHeads, err = optional("num_key_value_heads", h.NumKVHeads, c.Heads); err != nil {
		return c, err
	}
	if c.Heads%c.KVHeads != 0 {
		return c, keyError("num_attention_heads", "%d is not a multiple of num_key_value_heads %d", c.Heads, c.KVHeads)
	}
	if h.HeadDim != nil {
		if c.HeadDim, err = required("head_dim", h.HeadDim); err != nil {
			return c, err
		}
	} else {
		if c.Dim%c.Heads != 0 {
			return c, keyError("hidden_size", "%d is not a multiple of num_attention_heads %d (and head_dim is not set)", c.Dim, c.Heads)
		}
		c.HeadDim = c.Dim / c.Heads
	}
	if c.HeadDim%2 != 0 {
		return c, keyError("head_dim", "%d must be even for rotary embeddings", c.HeadDim)
	}
	if c.Vocab, err = required("vocab_size", h.VocabSize); err != nil {
		return c, err
	}
	if c.MaxSeq, err = optional("max_position_embeddings", h.MaxPositions, d.maxPos); err != nil {
		return c, err
	}
	maxPos := c.MaxSeq // rope scaling reads the configured value, before any window limit
	if err := h.limitToSlidingWindow(arch, &c); err != nil {
		return c, err
	}
	eps := d.normEps
	if h.RMSNormEps != nil {
		eps = *h.RMSNormEps
	}
	if !(eps > 0) || eps > 1 {
		return c, keyError("rms_norm_eps", "%v out of range (0, 1]", eps)
	}
	c.NormEps = float32(eps)
	if c.RopeTheta, c.RopeScale, err = h.rope(d.ropeTheta, maxPos); err != nil {
		return c, err
	}
	if s := c.RopeScale; s != nil && s.Type == "dynamic" && s.Factor > 1 && c.MaxSeq == maxPos {
		// dynamic NTK exists to run past the trained context: allow
		// factor × it (bounded as every context is).
		c.MaxSeq = int(min(s.Factor*float64(s.OrigMaxPosition), 1<<24))
	}
	if h.HiddenAct != nil && *h.HiddenAct != "silu" && *h.HiddenAct != "swish" {
		return c, keyError("hidden_act", "%q is not supported (the feed-forward blocks are SwiGLU: silu)", *h.HiddenAct)
	}
	if h.MLPBias != nil && *h.MLPBias {
		return c, keyError("mlp_bias", "true is not supported (model.Config has no feed-forward biases)")
	}
	if arch == "olmoe" && h.ClipQKV != nil {
		return c, keyError("clip_qkv", "%v is not supported (query/key/value clipping)", *h.ClipQKV)
	}
	if isGranite(arch) {
		if err := h.graniteMultipliers(&c); err != nil {
			return c, err
		}
	}
	c.AttnBias = h.attnBias(arch)
	if arch == "gpt_oss" {
		if err := h.gptOss(&c); err != nil {
			return c, err
		}
	}
	if isDeepSeek(arch) {
		if err := h.deepSeek(arch, &c); err != nil {
			return c, err
		}
	}
	switch arch {
	case "qwen3_moe":
		c.QKNorm = model.QKNormHead
	case "olmoe":
		c.QKNorm = model.QKNormFull
	}
	c.TiedOutput = h.TieEmbeddings != nil && *h.TieEmbeddings
	if c.BOS, c.EOS, err = h.specialTokens(d, c.Vocab); err != nil {
		return c, err
	}
	c.FFN, err = h.ffn(arch, d, c.Layers)
	return c, err
}

// attnBias reports whether q, k and v have biases.
func (h *hfConfig) attnBias(arch string) bool {
	switch arch {
	case "qwen2_moe": // Qwen2 attention: q/k/v biased unless qkv_bias is false
		return h.QKVBias == nil || *h.QKVBias
	case "llama", "qwen3_moe", "olmoe", "granitemoe", "granitemoeshared":
		return h.AttentionBias != nil && *h.AttentionBias
	case "gpt_oss": // GptOssConfig: attention_bias defaults to true
		return h.AttentionBias == nil || *h.AttentionBias
	}
	return false // Mixtral's projections never have biases
}

// outputBias reports whether o_proj has a bias: in Llama, Qwen3-MoE,
// OLMoE and Granite attention_bias applies to all four projections.
func (h *hfConfig) outputBias(arch string) bool {
	switch arch {
	case "llama", "qwen3_moe", "olmoe", "granitemoe", "granitemoeshared":
		return h.AttentionBias != nil && *h.AttentionBias
	}
	return false
}

// graniteMultipliers reads Granite's four multipliers with
// GraniteMoeConfig's defaults of 1.0 — attention_multiplier too, which
// then replaces 1/√head_dim by 1, as GraniteMoeAttention does.
func (h *hfConfig) graniteMultipliers(c *model.Config) error {
	for _, m := range []struct {
		key string
		v   *float64
		dst *float32
	}{{"embedding_multiplier", h.EmbeddingMultiplier, &c.EmbedScale}, {"attention_multiplier", h.AttentionMultiplier, &c.AttnScale},
		{"residual_multiplier", h.ResidualMultiplier, &c.ResidualScale}, {"logits_scaling", h.LogitsScaling, &c.LogitScale}} {
		v := 1.0
		if m.v != nil {
			v = *m.v
		}
		if !(v > 0) || v > math.MaxFloat32 {
			return keyError(m.key, "%v must be a positive finite number", v)
		}
		*m.dst = float32(v)
	}
	return nil
}

// limitToSlidingWindow caps MaxSeq at an active sliding window. Within the
// window, sliding-window attention is full causal attention, so the model
// stays exact for every position it is allowed to reach.
func (h *hfConfig) limitToSlidingWindow(arch string, c *model.Config) error {
	active := false
	switch arch {
	case "mixtral":
		active = h.SlidingWindow != nil
	case "qwen2_moe", "qwen3_moe":
		active = h.UseSlidingWindow != nil && *h.UseSlidingWindow && h.SlidingWindow != nil
	}
	if !active {
		return nil
	}
	if *h.SlidingWindow <= 0 {
		return keyError("sliding_window", "must be positive, got %d", *h.SlidingWindow)
	}
	c.MaxSeq = min(c.MaxSeq, *h.SlidingWindow)
	return nil
}

// specialTokens reads bos_token_id and eos_token_id, each an int, a list
// or null; absent keys take the model type's default.
func (h *hfConfig) specialTokens(d defaults, vocab int) (bos int, eos []int, err error) {
	bosRaw, eosRaw := h.BOS, h.EOS
	if len(bosRaw) == 0 {
		bosRaw = json.RawMessage(d.bos)
	}
	if len(eosRaw) == 0 {
		eosRaw = json.RawMessage(d.eos)
	}
	bosIDs, err := tokenIDs("bos_token_id", bosRaw, vocab)
	if err != nil {
		return 0, nil, err
	}
	switch len(bosIDs) {
	case 0:
		bos = -1
	case 1:
		bos = bosIDs[0]
	default:
		return 0, nil, keyError("bos_token_id", "%v: want one id", bosIDs)
	}
	eos, err = tokenIDs("eos_token_id", eosRaw, vocab)
	return bos, eos, err
}

// tokenIDs decodes null, an int or a list of ints, each inside the vocab.
func tokenIDs(key string, raw json.RawMessage, vocab int) ([]int, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, keyError(key, "%v", err)
	}
	var ids []int
	switch v.(type) {
	case nil:
		return nil, nil
	case float64:
		var id int
		if err := json.Unmarshal(raw, &id); err != nil {
			return nil, keyError(key, "%s is not a token id", raw)
		}
		ids = []int{id}
	case []any:
		if err := json.Unmarshal(raw, &ids); err != nil {
			return nil, keyError(key, "%s is not a list of token ids", raw)
		}
	default:
		return nil, keyError(key, "%s is not a token id, a list of them, or null", raw)
	}
	for _, id := range ids {
		if id < 0 || id >= vocab {
			return nil, keyError(key, "%d outside vocab_size %d", id, vocab)
		}
	}
	return ids, nil
}

// ffn describes every layer's feed-forward block.
func (h *hfConfig) ffn(arch string, d defaults, layers int) ([]model.FFN, error) {
	ffn := make([]model.FFN, layers)
	if arch == "llama" {
		width, err := required("intermediate_size", h.IntermediateSize)
		if err != nil {
			return nil, err
		}
		for l := range ffn {
			ffn[l] = model.FFN{SharedWidths: []int{width}}
		}
		return ffn, nil
	}
	if isDeepSeek(arch) {
		return h.deepSeekFFN(arch, layers)
	}
	experts, err := h.expertCount(arch)
	if err != nil {
		return nil, err
	}
	var topK int
	if experts > 0 {
		if topK, err = optional("num_experts_per_tok", h.ExpertsPerToken, d.topK); err != nil {
			return nil, err
		}
		if topK > experts {
			return nil, keyError("num_experts_per_tok", "%d exceeds the %d experts", topK, experts)
		}
	}
	router := func(norm bool, fallback int) *model.Router {
		return &model.Router{Scoring: model.Softmax, TopK: topK, NormTopK: norm, Fallback: fallback}
	}
	norm := h.NormTopKProb != nil && *h.NormTopKProb // false in every config class that has the key
	switch arch {
	case "gpt_oss":
		return h.gptOssFFN(layers, experts, topK)
	case "mixtral", "olmoe", "granitemoe", "granitemoeshared":
		width, err := required("intermediate_size", h.IntermediateSize)
		if err != nil {
			return nil, err
		}
		if arch == "mixtral" || isGranite(arch) {
			// Mixtral always renormalises the top-k weights; Granite's
			// GraniteMoeTopKGating softmaxes the top-k logits, the same.
			norm = true
		}
		shared := 0
		if arch == "granitemoeshared" && h.SharedIntermediateG != nil && *h.SharedIntermediateG != 0 {
			if shared, err = positive("shared_intermediate_size", *h.SharedIntermediateG); err != nil {
				return nil, err
			}
		}
		for l := range ffn {
			ffn[l] = model.FFN{ExpertWidths: repeat(width, experts), Router: router(norm, 0)}
			if shared > 0 { // GraniteMoeSharedMLP, ungated, added to the routed sum
				ffn[l].SharedWidths = []int{shared}
				ffn[l].Router.Fallback = model.FallbackShared
			}
		}
		return ffn, nil
	}
	// qwen2_moe and qwen3_moe: sparse and dense layers by decoder_sparse_step
	// and mlp_only_layers, as Qwen2MoeDecoderLayer decides.
	step, err := optional("decoder_sparse_step", h.DecoderSparseStep, 1)
	if err != nil {
		return nil, err
	}
	for _, l := range h.MLPOnlyLayers {
		if l < 0 || l >= layers {
			return nil, keyError("mlp_only_layers", "entry %d outside layers 0..%d", l, layers-1)
		}
	}
	var moeWidth, sharedWidth, denseWidth int
	for l := range ffn {
		if slices.Contains(h.MLPOnlyLayers, l) || experts == 0 || (l+1)%step != 0 {
			if denseWidth == 0 {
				if denseWidth, err = required("intermediate_size", h.IntermediateSize); err != nil {
					return nil, err
				}
			}
			ffn[l] = model.FFN{SharedWidths: []int{denseWidth}}
			continue
		}
		if moeWidth == 0 {
			if moeWidth, err = required("moe_intermediate_size", h.MoEIntermediate); err != nil {
				return nil, err
			}
		}
		if arch == "qwen3_moe" {
			ffn[l] = model.FFN{ExpertWidths: repeat(moeWidth, experts), Router: router(norm, 0)}
			continue
		}
		if sharedWidth == 0 {
			if sharedWidth, err = required("shared_expert_intermediate_size", h.SharedIntermediate); err != nil {
				return nil, err
			}
		}
		ffn[l] = model.FFN{
			ExpertWidths: repeat(moeWidth, experts),
			SharedWidths: []int{sharedWidth},
			SharedGate:   true,
			Router:       router(norm, model.FallbackShared),
		}
	}
	return ffn, nil
}

// expertCount reads the number of routed experts. Mixtral names it
// num_local_experts, the others num_experts; each config class accepts the
// other spelling as an alias.
func (h *hfConfig) expertCount(arch string) (int, error) {
	key, v, alias, av := "num_experts", h.NumExperts, "num_local_experts", h.NumLocalExperts
	if arch == "mixtral" || arch == "gpt_oss" || isGranite(arch) {
		key, v, alias, av = alias, av, key, v
	}
	if v == nil {
		key, v = alias, av
	} else if av != nil && *av != *v {
		return 0, keyError(key, "%d disagrees with %s %d", *v, alias, *av)
	}
	if v == nil {
		return 0, keyError(key, "is missing")
	}
	n := *v
	switch {
	case n < 0 || (n == 0 && arch != "qwen2_moe" && arch != "qwen3_moe"):
		// Qwen may have no experts (then every layer is dense); the others may not.
		return 0, keyError(key, "must be positive, got %d", n)
	case n > maxExperts:
		return 0, keyError(key, "%d exceeds %d", n, maxExperts)
	}
	return n, nil
}

func repeat(width, n int) []int {
	w := make([]int, n)
	for i := range w {
		w[i] = width
	}
	return w
}

// required reads a positive int that has no usable default.
func required(key string, v *int) (int, error) {
	if v == nil {
		return 0, keyError(key, "is missing")
	}
	return positive(key, *v)
}

// optional reads a positive int, or def when the key is absent or null.
func optional(key string, v *int, def int) (int, error) {
	if v == nil {
		return def, nil
	}
	return positive(key, *v)
}

func positive(key string, v int) (int, error) {
	if v <= 0 {
		return 0, keyError(key, "must be positive, got %d", v)
	}
	if v > 1<<24 { // far beyond any real model; keeps products in range
		return 0, keyError(key, "%d is out of range", v)
	}
	return v, nil
}
