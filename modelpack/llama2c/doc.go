// Package llama2c reads checkpoints in the legacy format of llama2.c's
// run.c: a 7-int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len; a negative vocab_size means an untied classifier)
// followed by float32 tensors in a fixed order. It produces a model.Model
// with one shared, ungated expert per layer (the dense FFN) and
// interleaved RoPE, computing exactly what run.c computes.
package llama2c
