package hf

import (
	"testing"
)

// FuzzLoadConfig: any config.json either maps to a config that validates
// or gives an error; it never panics.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(`{"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128,"vocab_size":100}`))
	f.Add([]byte(`{"model_type":"mixtral","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":96,"vocab_size":100,"num_local_experts":4,"num_experts_per_tok":2}`))
	f.Add([]byte(`{"model_type":"qwen2_moe","hidden_size":64,"num_hidden_layers":4,"num_attention_heads":4,"intermediate_size":128,"moe_intermediate_size":32,"shared_expert_intermediate_size":48,"vocab_size":100,"num_experts":8,"num_experts_per_tok":2,"decoder_sparse_step":2,"mlp_only_layers":[3]}`))
	f.Add([]byte(`{"model_type":"llama","rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192},"hidden_size":64,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":8,"vocab_size":4}`))
	f.Add([]byte(`{"model_type":"granitemoeshared","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":32,"shared_intermediate_size":48,"vocab_size":100,"num_local_experts":4,"num_experts_per_tok":2,"embedding_multiplier":12,"attention_multiplier":0.0625,"residual_multiplier":0.22,"logits_scaling":6,"rope_scaling":{"rope_type":"yarn","factor":4,"mscale":1,"mscale_all_dim":0.707,"truncate":false}}`))
	f.Add([]byte(`{"model_type":"granitemoe","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":32,"vocab_size":100,"num_local_experts":4,"rope_scaling":{"type":"dynamic","factor":2}}`))
	f.Add([]byte(`{"model_type":"gpt_oss","hidden_size":64,"head_dim":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":64,"vocab_size":100,"num_local_experts":4,"num_experts_per_tok":2,"experts_per_token":2,"sliding_window":8,"layer_types":["sliding_attention","full_attention"],"swiglu_limit":7.0,"quantization_config":{"quant_method":"mxfp4"},"rope_scaling":{"rope_type":"yarn","factor":4,"original_max_position_embeddings":64}}`))
	f.Add([]byte(`{"model_type":"deepseek_v2","hidden_size":64,"num_hidden_layers":3,"num_attention_heads":4,"intermediate_size":128,"moe_intermediate_size":32,"vocab_size":100,"q_lora_rank":null,"kv_lora_rank":32,"qk_nope_head_dim":16,"qk_rope_head_dim":8,"v_head_dim":16,"n_routed_experts":8,"n_shared_experts":2,"first_k_dense_replace":1,"num_experts_per_tok":3,"topk_method":"group_limited_greedy","n_group":4,"topk_group":2,"routed_scaling_factor":1.5,"rope_scaling":{"type":"yarn","factor":4,"original_max_position_embeddings":512,"mscale":0.707,"mscale_all_dim":0.707}}`))
	f.Add([]byte(`{"model_type":"deepseek_v3","hidden_size":64,"num_hidden_layers":3,"num_attention_heads":4,"intermediate_size":128,"moe_intermediate_size":32,"vocab_size":100,"q_lora_rank":48,"kv_lora_rank":32,"qk_nope_head_dim":16,"qk_rope_head_dim":8,"v_head_dim":16,"n_routed_experts":8,"n_shared_experts":1,"first_k_dense_replace":1,"moe_layer_freq":1,"num_experts_per_tok":3,"topk_method":"noaux_tc","scoring_func":"sigmoid","n_group":4,"topk_group":2,"norm_topk_prob":true,"num_nextn_predict_layers":1}`))
	f.Add([]byte(`{"model_type":"mode","mode":{}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, _, err := LoadConfig(b)
		if err == nil {
			if err := cfg.Validate(); err != nil {
				t.Fatalf("LoadConfig accepted an invalid config: %v", err)
			}
		}
	})
}
