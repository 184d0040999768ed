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
