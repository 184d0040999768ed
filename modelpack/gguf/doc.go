// Package gguf reads and writes GGUF files, the container llama.cpp uses
// for models: a header of typed metadata key/values and tensor
// descriptions, then aligned tensor data in ggml's block formats.
//
// A File parses and validates only the header when it is opened and reads
// one tensor at a time with ReadAt, so a multi-gigabyte model is never read
// whole. The package owns the ggml block layouts: it dequantises every
// common type to float32 and exposes the scales and quants of Q8_0, Q4_0
// and MXFP4 blocks so that an importer can re-lay them out without
// requantising.
// Write produces GGUF v3 files (for tests and fixtures) with reference
// Q8_0 and Q4_0 quantisers.
//
// Config and Sources map a deepseek2 (with attn_kv_b), gpt-oss, granitemoe,
// llama, qwen2, qwen2moe, qwen3, qwen3moe or olmoe GGUF onto model.Config and its canonical tensor names; Tokenizer parses
// the embedded vocabulary. Every error names the file and the key or tensor
// involved.
package gguf
