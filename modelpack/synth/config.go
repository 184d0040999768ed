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
