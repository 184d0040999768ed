package synth

import "github.com/moderuntime/mode/runtime/model"

// hfConfig is config.json for an HF family, with the keys and value types
// transformers writes for that model_type. encoding/json sorts map keys,
// which keeps the file deterministic.
func hfConfig(o *Options, bos, eos int) map[string]any {
	dtype, _ := torchDType(o.DType)
	c := map[string]any{
		"model_type":              o.Arch,
		"hidden_size":             o.Dim,
		"intermediate_size":       o.FFN,
		"num_hidden_layers":       o.Layers,
		"num_attention_heads":     o.Heads,
		"num_key_value_heads":     o.KVHeads,
		"vocab_size":              o.Vocab,
		"max_position_embeddings": o.MaxSeq,
		"hidden_act":              "silu",
		"rms_norm_eps":            1e-6,
		"rope_theta":              10000.0,
		"rope_scaling":            nil,
		"tie_word_embeddings":     o.TiedOutput,
		"bos_token_id":            bos,
		"eos_token_id":            eos,
		"torch_dtype":             dtype,
		"initializer_range":       0.02,
		"attention_dropout":       0.0,
		"use_cache":               true,
	}
	moe := func(expertsKey string) {
		c[expertsKey] = o.Experts
		c["num_experts_per_tok"] = o.TopK
		c["output_router_logits"] = false
		c["router_aux_loss_coef"] = 0.001
	}
	qwen := func() {
		c["moe_intermediate_size"] = o.ExpertFFN
		c["decoder_sparse_step"] = o.SparseStep
		c["mlp_only_layers"] = append([]int{}, o.DenseLayers...) // [] rather than null
		c["norm_topk_prob"] = o.NormTopK
		c["use_sliding_window"] = false
		c["sliding_window"] = nil
		c["max_window_layers"] = o.Layers
	}
	switch o.Arch {
	case "llama":
		c["architectures"] = []string{"LlamaForCausalLM"}
		c["head_dim"] = o.HeadDim
		c["attention_bias"] = false
		c["mlp_bias"] = false
		c["pretraining_tp"] = 1
	case "mixtral":
		c["architectures"] = []string{"MixtralForCausalLM"}
		c["head_dim"] = o.HeadDim
		c["rms_norm_eps"] = 1e-5
		c["rope_theta"] = 1e6
		c["sliding_window"] = nil
		c["router_jitter_noise"] = 0.0
		moe("num_local_experts")
	case "qwen2_moe":
		c["architectures"] = []string{"Qwen2MoeForCausalLM"}
		c["shared_expert_intermediate_size"] = o.SharedFFN
		moe("num_experts")
		qwen()
	case "qwen3_moe":
		c["architectures"] = []string{"Qwen3MoeForCausalLM"}
		c["head_dim"] = o.HeadDim
		c["attention_bias"] = false
		moe("num_experts")
		qwen()
	case "granitemoe", "granitemoeshared":
		// GraniteMoeConfig's keys, with Granite-like multipliers (the
		// 3.0 1b-a400m has 12, 0.015625, 0.22 and 6; attention here is
		// 1/head_dim) so that a reader that ignored one would be caught.
		c["architectures"] = []string{"GraniteMoeForCausalLM"}
		c["attention_bias"] = false
		c["embedding_multiplier"] = 12.0
		c["attention_multiplier"] = 1 / float64(o.HeadDim)
		c["residual_multiplier"] = 0.22
		c["logits_scaling"] = 6.0
		c["pad_token_id"] = 0
		moe("num_local_experts")
		if o.Arch == "granitemoeshared" {
			c["architectures"] = []string{"GraniteMoeSharedForCausalLM"}
			c["shared_intermediate_size"] = o.SharedFFN
		}
	case "gpt_oss":
		// configuration_gpt_oss.py's keys. YaRN as the released models'
		// config.json has it (truncate false), at a small scale.
		c["architectures"] = []string{"GptOssForCausalLM"}
		c["head_dim"] = o.HeadDim
		c["attention_bias"] = true
		c["rms_norm_eps"] = 1e-5
		c["rope_theta"] = 150000.0
		c["rope_scaling"] = map[string]any{"rope_type": "yarn", "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0,
			"original_max_position_embeddings": o.MaxSeq / 4, "truncate": false}
		c["sliding_window"] = o.Window
		var types []string
		for l := range o.Layers {
			if l%2 == 0 {
				types = append(types, "sliding_attention")
			} else {
				types = append(types, "full_attention")
			}
		}
		c["layer_types"] = types
		c["swiglu_limit"] = 7.0
		c["experts_per_token"] = o.TopK
		c["initial_context_length"] = o.MaxSeq / 4
		if o.MXFP4 {
			c["quantization_config"] = map[string]any{"quant_method": "mxfp4",
				"modules_to_not_convert": []string{"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"}}
		}
		moe("num_local_experts")
	case "deepseek_v2", "deepseek_v3":
		// configuration_deepseek.py's keys.
		m := o.MLA
		c["architectures"] = []string{"DeepseekV2ForCausalLM"}
		c["num_key_value_heads"] = o.Heads
		c["attention_bias"] = false
		c["q_lora_rank"] = nil
		if m.QLoraRank > 0 {
			c["q_lora_rank"] = m.QLoraRank
		}
		c["kv_lora_rank"], c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"] = m.KVLoraRank, m.NopeDim, m.RopeDim, m.VDim
		c["moe_intermediate_size"] = o.ExpertFFN
		c["n_routed_experts"] = o.Experts
		c["n_shared_experts"] = o.SharedFFN / o.ExpertFFN
		c["first_k_dense_replace"] = 1
		c["moe_layer_freq"] = 1
		c["num_experts_per_tok"] = o.TopK
		c["norm_topk_prob"] = o.NormTopK
		c["n_group"], c["topk_group"] = o.Groups, o.TopKGroups
		// routed_scaling_factor 1.5, not V3's 2.5: on random experts the
		// factor scales their quantisation error too, and at 2.5 the
		// 4-bit packs fall below the agreement TestQuantizedAgreement
		// holds every family to (RATIONALE.md, "DeepSeek").
		c["topk_method"], c["scoring_func"], c["routed_scaling_factor"] = "group_limited_greedy", "softmax", 1.5
		c["aux_loss_alpha"], c["seq_aux"], c["ep_size"] = 0.001, true, 1
		c["rope_scaling"] = map[string]any{"type": "yarn", "factor": 4.0, "original_max_position_embeddings": o.MaxSeq / 4,
			"beta_fast": 32.0, "beta_slow": 1.0, "mscale": 0.707, "mscale_all_dim": 0.707}
		if o.Arch == "deepseek_v3" {
			c["architectures"] = []string{"DeepseekV3ForCausalLM"}
			c["topk_method"], c["scoring_func"] = "noaux_tc", "sigmoid"
			c["num_nextn_predict_layers"] = 0
			c["rope_scaling"] = map[string]any{"type": "yarn", "factor": 4.0, "original_max_position_embeddings": o.MaxSeq / 4,
				"beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 0.8}
		}
	case "olmoe":
		c["architectures"] = []string{"OlmoeForCausalLM"}
		c["rms_norm_eps"] = 1e-5
		c["attention_bias"] = false
		c["clip_qkv"] = nil
		c["norm_topk_prob"] = o.NormTopK
		c["pad_token_id"] = nil
		moe("num_experts")
	}
	return c
}

// modeFile is config.json for the native form: the model.Config verbatim
// under "mode".
type modeFile struct {
	Architectures []string     `json:"architectures"`
	ModelType     string       `json:"model_type"`
	TorchDType    string       `json:"torch_dtype"`
	Mode          model.Config `json:"mode"`
}
