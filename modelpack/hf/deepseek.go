package hf

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/moderuntime/mode/runtime/model"
)

// DeepSeek-V2 and V3 (model_type deepseek_v2, deepseek_v3), as the
// checkpoints' own modeling_deepseek.py and configuration_deepseek.py
// define them: multi-head latent attention (model.MLA) with the fused
// projections kept as stored, RoPE on interleaved pairs of the rope
// dimensions, YaRN with DeepSeek's softmax-scale correction; the first
// first_k_dense_replace layers (and those off moe_layer_freq) dense, the
// others MoE with n_shared_experts shared experts (one MLP of
// n_shared·moe_intermediate_size, as DeepseekV2MoE builds it) and a
// MoEGate choosing by topk_method.

func isDeepSeek(arch string) bool { return arch == "deepseek_v2" || arch == "deepseek_v3" }

// deepSeekFields are the config keys only DeepSeek has.
type deepSeekFields struct {
	QLoraRank        json.RawMessage `json:"q_lora_rank"` // null: q_proj
	KVLoraRank       *int            `json:"kv_lora_rank"`
	QKNopeHeadDim    *int            `json:"qk_nope_head_dim"`
	QKRopeHeadDim    *int            `json:"qk_rope_head_dim"`
	VHeadDim         *int            `json:"v_head_dim"`
	NRoutedExperts   *int            `json:"n_routed_experts"`
	NSharedExperts   *int            `json:"n_shared_experts"`
	FirstKDense      *int            `json:"first_k_dense_replace"`
	MoELayerFreq     *int            `json:"moe_layer_freq"`
	RoutedScaling    *float64        `json:"routed_scaling_factor"`
	TopKMethod       *string         `json:"topk_method"`
	NGroup           *int            `json:"n_group"`
	TopKGroup        *int            `json:"topk_group"`
	ScoringFunc      *string         `json:"scoring_func"`
	RopeInterleave   *bool           `json:"rope_interleave"`
	NextNPredictions *int            `json:"num_nextn_predict_layers"`
}

// deepSeekDefaults are DeepseekV2Config's and DeepseekV3Config's values
// for absent keys.
type deepSeekDefaults struct {
	qLoraRank, kvLoraRank, nope, rope, v int
	topKMethod, scoring                  string
	scaling                              float64
	norm                                 bool
	firstDense                           int
}

func deepSeekDefaultsFor(arch string) deepSeekDefaults {
	if arch == "deepseek_v3" {
		return deepSeekDefaults{1536, 512, 128, 64, 128, "noaux_tc", "sigmoid", 2.5, true, 3}
	}
	return deepSeekDefaults{1536, 512, 128, 64, 128, "greedy", "softmax", 1, false, 0}
}

// deepSeek sets the attention parts of a DeepSeek config.
func (h *hfConfig) deepSeek(arch string, c *model.Config) error {
	d := deepSeekDefaultsFor(arch)
	m := &model.MLA{}
	var err error
	switch raw := h.DS.QLoraRank; {
	case len(raw) == 0:
		m.QLoraRank = d.qLoraRank
	case string(raw) == "null":
		m.QLoraRank = 0 // q_proj, as DeepSeek-V2-Lite
	default:
		var v int
		if err := json.Unmarshal(raw, &v); err != nil {
			return keyError("q_lora_rank", "%s is not an integer or null", raw)
		}
		if m.QLoraRank, err = positive("q_lora_rank", v); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		key string
		v   *int
		def int
		dst *int
	}{{"kv_lora_rank", h.DS.KVLoraRank, d.kvLoraRank, &m.KVLoraRank}, {"qk_nope_head_dim", h.DS.QKNopeHeadDim, d.nope, &m.NopeDim},
		{"qk_rope_head_dim", h.DS.QKRopeHeadDim, d.rope, &m.RopeDim}, {"v_head_dim", h.DS.VHeadDim, d.v, &m.VDim}} {
		if *f.dst, err = optional(f.key, f.v, f.def); err != nil {
			return err
		}
	}
	if m.RopeDim%2 != 0 {
		return keyError("qk_rope_head_dim", "%d must be even for rotary embeddings", m.RopeDim)
	}
	if c.AttnBias || (h.AttentionBias != nil && *h.AttentionBias) {
		return keyError("attention_bias", "true is not supported (DeepSeek's q_a_proj/kv_a_proj_with_mqa/o_proj biases)")
	}
	c.MLA = m
	c.HeadDim = m.NopeDim + m.RopeDim
	c.KVHeads = c.Heads // every head has its own k_nope and v
	// modeling_deepseek.py's apply_rotary_pos_emb de-interleaves q_pe and
	// k_pe before rotate_half: RoPE on interleaved pairs. transformers'
	// DeepseekV3Config has rope_interleave (default true) for the same.
	c.RopeStyle = model.RopeInterleaved
	if h.DS.RopeInterleave != nil && !*h.DS.RopeInterleave {
		c.RopeStyle = model.RopeHalf
	}
	return nil
}

// deepSeekFFN describes DeepSeek's dense and MoE layers.
func (h *hfConfig) deepSeekFFN(arch string, layers int) ([]model.FFN, error) {
	d := deepSeekDefaultsFor(arch)
	ffn := make([]model.FFN, layers)
	first, err := optionalNonNeg("first_k_dense_replace", h.DS.FirstKDense, d.firstDense)
	if err != nil {
		return nil, err
	}
	freq, err := optional("moe_layer_freq", h.DS.MoELayerFreq, 1)
	if err != nil {
		return nil, err
	}
	experts := 0
	if h.DS.NRoutedExperts != nil {
		if experts, err = positive("n_routed_experts", *h.DS.NRoutedExperts); err != nil {
			return nil, err
		}
		if experts > maxExperts {
			return nil, keyError("n_routed_experts", "%d exceeds %d", experts, maxExperts)
		}
	}
	var dense, moeWidth, topK int
	var rule *model.Router
	shared := 0
	for l := range ffn {
		if experts == 0 || l < first || l%freq != 0 { // DeepseekV2DecoderLayer's condition
			if dense == 0 {
				if dense, err = required("intermediate_size", h.IntermediateSize); err != nil {
					return nil, err
				}
			}
			ffn[l] = model.FFN{SharedWidths: []int{dense}}
			continue
		}
		if rule == nil {
			if moeWidth, err = required("moe_intermediate_size", h.MoEIntermediate); err != nil {
				return nil, err
			}
			if topK, err = required("num_experts_per_tok", h.ExpertsPerToken); err != nil {
				return nil, err
			}
			if topK > experts {
				return nil, keyError("num_experts_per_tok", "%d exceeds n_routed_experts %d", topK, experts)
			}
			if rule, err = h.deepSeekRouter(arch, d, experts, topK); err != nil {
				return nil, err
			}
			if h.DS.NSharedExperts != nil && *h.DS.NSharedExperts != 0 {
				n, err := positive("n_shared_experts", *h.DS.NSharedExperts)
				if err != nil {
					return nil, err
				}
				if n > 1<<24/moeWidth {
					return nil, keyError("n_shared_experts", "%d is out of range", n)
				}
				shared = n * moeWidth
			}
		}
		r := *rule
		ffn[l] = model.FFN{ExpertWidths: repeat(moeWidth, experts), Router: &r}
		if shared > 0 {
			ffn[l].SharedWidths = []int{shared}
		}
	}
	return ffn, nil
}

// deepSeekRouter is MoEGate's rule.
func (h *hfConfig) deepSeekRouter(arch string, d deepSeekDefaults, experts, topK int) (*model.Router, error) {
	r := &model.Router{TopK: topK}
	scoring := d.scoring
	if h.DS.ScoringFunc != nil {
		scoring = *h.DS.ScoringFunc
	}
	switch scoring {
	case "softmax":
		r.Scoring = model.Softmax
	case "sigmoid":
		r.Scoring = model.Sigmoid
	default:
		return nil, keyError("scoring_func", "%q is not supported (softmax, sigmoid)", scoring)
	}
	r.NormTopK = d.norm
	if h.NormTopKProb != nil {
		r.NormTopK = *h.NormTopKProb
	}
	// MoEGate normalises only when top_k > 1.
	r.NormTopK = r.NormTopK && topK > 1
	scale := d.scaling
	if h.DS.RoutedScaling != nil {
		scale = *h.DS.RoutedScaling
	}
	if !(scale > 0) || scale > math.MaxFloat32 {
		return nil, keyError("routed_scaling_factor", "%v must be a positive finite number", scale)
	}
	if arch == "deepseek_v2" && r.NormTopK {
		// DeepSeek-V2's MoEGate multiplies by routed_scaling_factor only
		// when it does not normalise; V3's does both.
		scale = 1
	}
	r.ScalingFactor = float32(scale)
	method := d.topKMethod
	if h.DS.TopKMethod != nil {
		method = *h.DS.TopKMethod
	}
	switch method {
	case "greedy":
		return r, nil
	case "group_limited_greedy":
		r.GroupScore = model.GroupMax
	case "noaux_tc":
		r.GroupScore = model.GroupTop2Sum
		r.SelectionBias = true // mlp.gate.e_score_correction_bias
	default:
		return nil, keyError("topk_method", "%q is not supported (greedy, group_limited_greedy, noaux_tc)", method)
	}
	var err error
	if r.Groups, err = required("n_group", h.DS.NGroup); err != nil {
		return nil, fmt.Errorf("%w (topk_method %s needs it)", err, method)
	}
	if r.TopKGroups, err = required("topk_group", h.DS.TopKGroup); err != nil {
		return nil, fmt.Errorf("%w (topk_method %s needs it)", err, method)
	}
	if experts%r.Groups != 0 {
		return nil, keyError("n_group", "%d does not divide n_routed_experts %d", r.Groups, experts)
	}
	if r.TopKGroups > r.Groups {
		return nil, keyError("topk_group", "%d exceeds n_group %d", r.TopKGroups, r.Groups)
	}
	if method == "noaux_tc" && experts/r.Groups < 2 {
		return nil, keyError("n_group", "%d leaves groups of one expert; noaux_tc scores a group by its top two", r.Groups)
	}
	if topK > r.TopKGroups*(experts/r.Groups) {
		return nil, keyError("num_experts_per_tok", "%d exceeds the %d experts of topk_group %d groups", topK, r.TopKGroups*(experts/r.Groups), r.TopKGroups)
	}
	return r, nil
}

// optionalNonNeg reads an int >= 0, or def when absent.
func optionalNonNeg(key string, v *int, def int) (int, error) {
	if v == nil {
		return def, nil
	}
	if *v == 0 {
		return 0, nil
	}
	return positive(key, *v)
}

// deepSeekNames maps layer l's attention and FFN tensors.
func deepSeekNames(m NameMap, l int, c *model.Config) {
	p := fmt.Sprintf("model.layers.%d.", l)
	layer := func(hf, suffix string) { m[p+hf] = model.LayerName(l, suffix) }
	if c.MLA.QLoraRank > 0 {
		layer("self_attn.q_a_proj.weight", "wq_a")
		layer("self_attn.q_a_layernorm.weight", "q_a_norm")
		layer("self_attn.q_b_proj.weight", "wq_b")
	} else {
		layer("self_attn.q_proj.weight", "wq")
	}
	layer("self_attn.kv_a_proj_with_mqa.weight", "wkv_a")
	layer("self_attn.kv_a_layernorm.weight", "kv_a_norm")
	layer("self_attn.kv_b_proj.weight", "wkv_b")
	layer("self_attn.o_proj.weight", "wo")
	f := &c.FFN[l]
	if !f.Sparse() {
		mlp(m, p+"mlp.", "%s_proj.weight", func(part string) string { return model.SharedName(l, 0, part) })
		return
	}
	layer("mlp.gate.weight", "router")
	if f.Router.SelectionBias {
		layer("mlp.gate.e_score_correction_bias", "router_bias")
	}
	for e := range f.ExpertWidths {
		mlp(m, fmt.Sprintf("%smlp.experts.%d.", p, e), "%s_proj.weight", func(part string) string { return model.ExpertName(l, e, part) })
	}
	if len(f.SharedWidths) > 0 {
		mlp(m, p+"mlp.shared_experts.", "%s_proj.weight", func(part string) string { return model.SharedName(l, 0, part) })
	}
}
