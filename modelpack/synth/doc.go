// Package synth writes small, deterministic, randomly initialised models
// as Hugging Face directories: config.json in the exact schema of the
// chosen model_type, model.safetensors (or shards with an index), and a
// real byte-level BPE tokenizer (tokenizer.json, tokenizer_config.json)
// trained on a small built-in English text.
//
// It exists so that loaders, tokenizers and engines can be tested end to
// end without downloading weights. The same Options always produce
// byte-identical files. Tensor names and config keys are written from the
// transformers implementations' point of view, independently of package
// hf, so that loading a synth model with hf checks one against the other.
package synth
