// Package model owns the one in-memory description of a decoder-only
// transformer that every importer produces and every backend runs: dense
// Llama, Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, Granite MoE and the native
// MoDE form are all a Config plus a Weights value.
//
// A dense model is the mixture case with one always-on (shared, ungated)
// expert and no router, so there is a single code path for both. Experts of
// one layer may have different FFN widths.
package model
