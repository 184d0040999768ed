// Package hf loads Hugging Face transformers checkpoints (config.json plus
// safetensors) into the runtime's one model description, model.Model.
//
// It owns the translation from each supported model_type's config keys and
// tensor names, exactly as the transformers implementations define them,
// to model.Config and the canonical tensor names of model.Config.Spec:
//
//	llama      LlamaForCausalLM (dense)
//	mixtral    MixtralForCausalLM (sparse MoE in every layer)
//	qwen2_moe  Qwen2MoeForCausalLM (routed + gated shared expert, q/k/v biases)
//	qwen3_moe  Qwen3MoeForCausalLM (routed experts, per-head q/k norm)
//	olmoe      OlmoeForCausalLM (routed experts, full-width q/k norm)
//	granitemoe GraniteMoeForCausalLM (the four multipliers; experts fused
//	           in input_linear/output_linear, read as row slices: Parts)
//	granitemoeshared GraniteMoeSharedForCausalLM (plus an ungated shared_mlp)
//	deepseek_v2, deepseek_v3 DeepseekV2/V3ForCausalLM (multi-head latent
//	           attention, dense first layers, shared experts, MoEGate's
//	           greedy / group_limited_greedy / noaux_tc)
//	gpt_oss    GptOssForCausalLM (sinks, sliding layers, biased experts
//	           fused in gate_up_proj/down_proj, bf16 or MXFP4: an index
//	           sees them as Fused groups, rearranged once fetched)
//	mode       the native form: config.json's "mode" object is a model.Config
//	           and tensors carry canonical names
//
// Every family reads rope_scaling (or rope_parameters) of type linear,
// llama3, yarn (attention_factor, mscale, mscale_all_dim, truncate) or
// dynamic; another type or key is refused naming it.
//
// Everything a checkpoint holds must have a place in the model: unknown
// tensors, missing tensors, wrong shapes, non-finite weights and config
// values out of range are errors naming the file, tensor or key. Tensors
// keep their stored dtype. The tokenizer is not read here; FindPaths
// reports where its files are.
package hf
