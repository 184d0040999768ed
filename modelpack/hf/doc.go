// Package hf loads Hugging Face transformers checkpoints (config.json plus
// safetensors) into the runtime's one model description, model.Model.
//
// It owns the translation from each supported model_type's config keys and
// tensor names, exactly as the transformers implementations define them,
// to model.Config and the canonical tensor names of model.Config.Spec:
//
//	llama      LlamaForCausalLM (dense; rope_scaling linear, llama3, yarn)
//	mixtral    MixtralForCausalLM (sparse MoE in every layer)
//	qwen2_moe  Qwen2MoeForCausalLM (routed + gated shared expert, q/k/v biases)
//	qwen3_moe  Qwen3MoeForCausalLM (routed experts, per-head q/k norm)
//	olmoe      OlmoeForCausalLM (routed experts, full-width q/k norm)
//	mode       the native form: config.json's "mode" object is a model.Config
//	           and tensors carry canonical names
//
// Everything a checkpoint holds must have a place in the model: unknown
// tensors, missing tensors, wrong shapes, non-finite weights and config
// values out of range are errors naming the file, tensor or key. Tensors
// keep their stored dtype. The tokenizer is not read here; FindPaths
// reports where its files are.
package hf
