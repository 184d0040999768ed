package gguf

import (
	"fmt"
	"io"
	"slices"

	"github.com/moderuntime/mode/runtime/model"
)

// ModelOptions says how WriteModel encodes a model.
type ModelOptions struct {
	// Type is the ggml type of every matrix (F32, F16, BF16, Q8_0, Q4_0
	// or Q4_K; with Q4_K, a matrix whose rows are not whole super-blocks
	// of 256 is Q4_0, the 4-bit type both sides read as it is, where
	// llama.cpp's quantize would pick a 5-bit one); norms are always F32,
	// as llama.cpp requires.
	Type GGMLType
	// Vocab is written under tokenizer.*; llama.cpp refuses a file whose
	// token count differs from the embedding's rows.
	Vocab Vocab
	Name  string // general.name
	// WideExperts writes a gpt-oss model's routed experts in Type. By
	// default they are MXFP4, as llama.cpp's converter writes the released
	// checkpoints: exact for experts whose values are MXFP4 already, a
	// 4-bit quantisation of any others (a dequantised checkpoint's), which
	// WideExperts avoids, as the converter does for those.
	WideExperts bool
	// RoundYaRN writes a gpt-oss model whose YaRN has truncate: false (as
	// the released checkpoints do) although llama.cpp, and Config reading
	// the file back, always round the correction range outwards: the file
	// then computes slightly different rotations. Without it such a model
	// is refused.
	RoundYaRN bool
}

// WriteModel writes cfg's model as a GGUF file llama.cpp loads: Mixtral-
// and Llama-shaped models as architecture "llama" (llama.cpp's name for
// both), OLMoE-shaped ones (q/k norms over the whole projection) as
// "olmoe", Granite's (its four multipliers, optionally one ungated shared
// expert) as "granitemoe", with llama.cpp's tensor names and stacked experts. read returns
// a canonical tensor's row-major values; it is called once per tensor
// while the file is written, so memory holds one stack of experts at a
// time. Config reads the file back as the same model, except that a
// "llama" file rotates adjacent pairs (model.RopeInterleaved): when cfg
// rotates halves, the q and k rows are permuted as llama.cpp's
// convert_hf_to_gguf.py permutes them, which gives the same outputs.
func WriteModel(w io.Writer, cfg model.Config, read func(name string) ([]float32, error), o ModelOptions) error {
	if err := writeModel(w, &cfg, read, &o); err != nil {
		return fmt.Errorf("gguf: write model: %w", err)
	}
	return nil
}

func writeModel(w io.Writer, c *model.Config, read func(string) ([]float32, error), o *ModelOptions) error {
	if err := c.Validate(); err != nil {
		return err
	}
	switch o.Type {
	case TypeF32, TypeF16, TypeBF16, TypeQ8_0, TypeQ4_0, TypeQ4_K:
	default:
		return fmt.Errorf("matrix type %s: want f32, f16, bf16, q8_0, q4_0 or q4_k", o.Type)
	}
	arch, err := exportArch(c)
	if err != nil {
		return err
	}
	if arch == "gpt-oss" && c.RopeScale != nil && c.RopeScale.NoTruncate && !o.RoundYaRN {
		return fmt.Errorf("YaRN with truncate: false has no GGUF spelling (llama.cpp rounds the correction range); set RoundYaRN to write it as llama.cpp computes it")
	}
	if len(o.Vocab.Tokens) != c.Vocab {
		return fmt.Errorf("%d tokens for a vocabulary of %d", len(o.Vocab.Tokens), c.Vocab)
	}
	ffn, experts, topK := 0, 0, 0
	for l, f := range c.FFN {
		w, e, k := 0, 0, 0
		if f.Sparse() {
			w, e, k = f.ExpertWidths[0], len(f.ExpertWidths), f.Router.TopK
		} else {
			w = f.SharedWidths[0]
		}
		if l > 0 && (w != ffn || e != experts || k != topK) {
			return fmt.Errorf("layer %d: FFN width %d, %d experts, top-%d differ from layer 0's; llama.cpp wants them per layer, which this writer does not write", l, w, e, k)
		}
		ffn, experts, topK = w, e, k
	}
	key := func(suffix string) string { return arch + "." + suffix }
	kv := []KV{
		{Key: "general.architecture", Value: Scalar(arch)},
		{Key: "general.name", Value: Scalar(o.Name)},
		{Key: "general.file_type", Value: Scalar(fileType(o.Type))},
		{Key: key("vocab_size"), Value: Scalar(uint32(c.Vocab))},
		{Key: key("context_length"), Value: Scalar(uint32(c.MaxSeq))},
		{Key: key("embedding_length"), Value: Scalar(uint32(c.Dim))},
		{Key: key("block_count"), Value: Scalar(uint32(c.Layers))},
		{Key: key("feed_forward_length"), Value: Scalar(uint32(ffn))},
		{Key: key("attention.head_count"), Value: Scalar(uint32(c.Heads))},
		{Key: key("attention.head_count_kv"), Value: Scalar(uint32(c.KVHeads))},
		{Key: key("attention.key_length"), Value: Scalar(uint32(c.HeadDim))},
		{Key: key("attention.value_length"), Value: Scalar(uint32(c.HeadDim))},
		{Key: key("attention.layer_norm_rms_epsilon"), Value: Scalar(c.NormEps)},
		{Key: key("rope.freq_base"), Value: Scalar(float32(c.RopeTheta))},
		{Key: key("rope.dimension_count"), Value: Scalar(uint32(c.HeadDim))},
	}
	if arch == "granitemoe" {
		kv = append(kv, KV{Key: key("embedding_scale"), Value: Scalar(c.EmbedScale)},
			KV{Key: key("attention.scale"), Value: Scalar(c.AttnScale)},
			KV{Key: key("residual_scale"), Value: Scalar(c.ResidualScale)},
			KV{Key: key("logit_scale"), Value: Scalar(c.LogitScale)})
		if sw := c.FFN[0].SharedWidths; len(sw) == 1 {
			kv = append(kv, KV{Key: key("expert_shared_feed_forward_length"), Value: Scalar(uint32(sw[0]))})
		}
	}
	if experts > 0 {
		kv = append(kv, KV{Key: key("expert_count"), Value: Scalar(uint32(experts))},
			KV{Key: key("expert_used_count"), Value: Scalar(uint32(topK))})
	}
	if arch == "gpt-oss" {
		kv = append(kv, KV{Key: key("expert_feed_forward_length"), Value: Scalar(uint32(ffn))},
			KV{Key: key("attention.sliding_window"), Value: Scalar(uint32(c.SlidingWindow))})
		if r := c.RopeScale; r != nil {
			kv = append(kv, KV{Key: key("rope.scaling.type"), Value: Scalar("yarn")},
				KV{Key: key("rope.scaling.factor"), Value: Scalar(float32(r.Factor))},
				KV{Key: key("rope.scaling.original_context_length"), Value: Scalar(uint32(r.OrigMaxPosition))},
				KV{Key: key("rope.scaling.yarn_beta_fast"), Value: Scalar(float32(r.BetaFast))},
				KV{Key: key("rope.scaling.yarn_beta_slow"), Value: Scalar(float32(r.BetaSlow))})
		}
	}
	// matType is the type of a matrix of cols columns (see Type).
	matType := func(cols int) GGMLType {
		if o.Type == TypeQ4_K && cols%256 != 0 {
			return TypeQ4_0
		}
		return o.Type
	}
	expertType := matType
	if arch == "gpt-oss" && !o.WideExperts {
		expertType = func(int) GGMLType { return TypeMXFP4 }
	}
	kv = append(kv, o.Vocab.kv()...)
	// convert_hf_to_gguf.py permutes llama's q and k so that llama.cpp's
	// adjacent-pair RoPE equals HF's rotate_half.
	permute := (arch == "llama" || arch == "granitemoe") && c.RopeStyle == model.RopeHalf
	matrix := func(name string) func() ([]float32, error) {
		return func() ([]float32, error) {
			v, err := read(name)
			if err != nil {
				return nil, err
			}
			heads := 0
			switch {
			case !permute:
			case name == model.LayerName(layerOf(name), "wq"):
				heads = c.Heads
			case name == model.LayerName(layerOf(name), "wk"):
				heads = c.KVHeads
			}
			if heads > 0 {
				v = permuteRoPE(v, heads, c.HeadDim, c.Dim)
			}
			return v, nil
		}
	}
	var ts []WTensor
	vector := func(gguf, canonical string, n int) {
		ts = append(ts, WTensor{Name: gguf, Type: TypeF32, Dims: []int{n}, Fill: matrix(canonical)})
	}
	mat := func(gguf, canonical string, rows, cols int) {
		ts = append(ts, WTensor{Name: gguf, Type: matType(cols), Dims: []int{cols, rows}, Fill: matrix(canonical)})
	}
	bias2 := func(gguf, canonical string, rows, cols int) { // gpt-oss's [experts, width] biases, in f32
		ts = append(ts, WTensor{Name: gguf, Type: TypeF32, Dims: []int{cols, rows}, Fill: matrix(canonical)})
	}
	mat("token_embd.weight", model.NameEmbed, c.Vocab, c.Dim)
	vector("output_norm.weight", model.NameFinalNorm, c.Dim)
	if !c.TiedOutput {
		mat("output.weight", model.NameOutput, c.Vocab, c.Dim)
	}
	for l := range c.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		name := func(s string) string { return model.LayerName(l, s) }
		vector(p+"attn_norm.weight", name("attn_norm"), c.Dim)
		mat(p+"attn_q.weight", name("wq"), c.QDim(), c.Dim)
		mat(p+"attn_k.weight", name("wk"), c.KVDim(), c.Dim)
		mat(p+"attn_v.weight", name("wv"), c.KVDim(), c.Dim)
		mat(p+"attn_output.weight", name("wo"), c.Dim, c.QDim())
		if c.QKNorm == model.QKNormFull {
			vector(p+"attn_q_norm.weight", name("q_norm"), c.QDim())
			vector(p+"attn_k_norm.weight", name("k_norm"), c.KVDim())
		}
		if arch == "gpt-oss" {
			vector(p+"attn_q.bias", name("bq"), c.QDim())
			vector(p+"attn_k.bias", name("bk"), c.KVDim())
			vector(p+"attn_v.bias", name("bv"), c.KVDim())
			vector(p+"attn_output.bias", name("bo"), c.Dim)
			vector(p+"attn_sinks.weight", name("sinks"), c.Heads)
			vector(p+"post_attention_norm.weight", name("ffn_norm"), c.Dim)
			vector(p+"ffn_gate_inp.bias", name("router_logit_bias"), experts)
			bias2(p+"ffn_gate_exps.bias", name("expert_gate_bias"), experts, ffn)
			bias2(p+"ffn_up_exps.bias", name("expert_up_bias"), experts, ffn)
			bias2(p+"ffn_down_exps.bias", name("expert_down_bias"), experts, c.Dim)
		} else {
			vector(p+"ffn_norm.weight", name("ffn_norm"), c.Dim)
		}
		if !c.FFN[l].Sparse() {
			for _, part := range []string{"gate", "up", "down"} {
				rows, cols := ffn, c.Dim
				if part == "down" {
					rows, cols = cols, rows
				}
				mat(p+"ffn_"+part+".weight", model.SharedName(l, 0, part), rows, cols)
			}
			continue
		}
		mat(p+"ffn_gate_inp.weight", name("router"), experts, c.Dim)
		if sw := c.FFN[l].SharedWidths; len(sw) == 1 { // granitemoe's shared expert
			for _, part := range []string{"gate", "up", "down"} {
				rows, cols := sw[0], c.Dim
				if part == "down" {
					rows, cols = cols, rows
				}
				mat(p+"ffn_"+part+"_shexp.weight", model.SharedName(l, 0, part), rows, cols)
			}
		}
		for _, part := range []string{"gate", "up", "down"} {
			rows, cols := ffn, c.Dim
			if part == "down" {
				rows, cols = cols, rows
			}
			ts = append(ts, WTensor{Name: p + "ffn_" + part + "_exps.weight", Type: expertType(cols), Dims: []int{cols, rows, experts},
				Fill: func() ([]float32, error) {
					// ggml's third dimension is the outermost: the experts'
					// matrices back to back.
					v := make([]float32, 0, experts*rows*cols)
					for e := range experts {
						x, err := read(model.ExpertName(l, e, part))
						if err != nil {
							return nil, err
						}
						if len(x) != rows*cols {
							return nil, fmt.Errorf("%s: %d values, want %d", model.ExpertName(l, e, part), len(x), rows*cols)
						}
						v = append(v, x...)
					}
					return v, nil
				}})
		}
	}
	return write(w, kv, ts)
}

// exportArch is the llama.cpp architecture that computes what c does, or
// an error naming what none of them (that this writer knows) would.
func exportArch(c *model.Config) (string, error) {
	if c.MLA != nil {
		return "", fmt.Errorf("multi-head latent attention (deepseek2) is not written")
	}
	if c.Sinks {
		return "gpt-oss", gptOssExport(c)
	}
	if c.AttnOutBias || c.SlidingWindow > 0 {
		return "", fmt.Errorf("an attention output bias or a sliding window without sinks is not written (gpt-oss has all three)")
	}
	if c.AttnBias || c.RopeScale != nil || c.QKNorm == model.QKNormHead {
		return "", fmt.Errorf("attention biases, RoPE scaling and per-head q/k norms are not written (architectures llama and olmoe)")
	}
	arch := "llama"
	granite := c.EmbedScale != 0 || c.AttnScale != 0 || c.ResidualScale != 0 || c.LogitScale != 0
	if granite {
		// llama.cpp's granite graph reads all four multipliers; 0 (the
		// usual value) has no spelling there.
		if c.EmbedScale == 0 || c.AttnScale == 0 || c.ResidualScale == 0 || c.LogitScale == 0 || c.QKNorm != model.QKNormNone {
			return "", fmt.Errorf("granitemoe needs all four multipliers (embedding %v, attention %v, residual %v, logits %v) and no q/k norm",
				c.EmbedScale, c.AttnScale, c.ResidualScale, c.LogitScale)
		}
		arch = "granitemoe"
	}
	if c.QKNorm == model.QKNormFull {
		arch = "olmoe"
		if c.RopeStyle != model.RopeHalf {
			return "", fmt.Errorf("olmoe rotates halves (NeoX RoPE), the config rotates %s pairs", c.RopeStyle)
		}
		if c.KVHeads != c.Heads {
			// llama.cpp creates OLMoE's k norm with n_embd elements.
			return "", fmt.Errorf("olmoe in llama.cpp needs as many kv heads as heads, got %d and %d", c.KVHeads, c.Heads)
		}
	}
	rules, _ := rulesFor(arch)
	for l, f := range c.FFN {
		switch {
		case !f.Sparse():
			if arch == "olmoe" || arch == "granitemoe" || len(f.SharedWidths) != 1 {
				return "", fmt.Errorf("layer %d: a dense layer in %s needs exactly one FFN", l, arch)
			}
		case graniteShared(c, &f):
			return "", fmt.Errorf("layer %d: granitemoe takes one ungated shared expert of the same width in every layer, or none", l)
		case arch != "granitemoe" && (len(f.SharedWidths) > 0 || f.SharedGate):
			return "", fmt.Errorf("layer %d: shared experts are not written (architectures llama and olmoe; granitemoe takes one ungated shared expert in every layer)", l)
		case f.Router.Scoring != model.Softmax || f.Router.SelectionBias || f.Router.CapacityFactor > 0 || f.Router.Scale() != 1:
			return "", fmt.Errorf("layer %d: %s routes with plain softmax top-k", l, arch)
		case f.Router.NormTopK != rules.normTopK:
			return "", fmt.Errorf("layer %d: %s renormalises the top-k weights: %v, the config: %v", l, arch, rules.normTopK, f.Router.NormTopK)
		case slices.ContainsFunc(f.ExpertWidths, func(w int) bool { return w != f.ExpertWidths[0] }):
			return "", fmt.Errorf("layer %d: experts of different widths do not stack", l)
		}
	}
	return arch, nil
}

// graniteShared reports whether layer f's shared experts are other than
// GraniteMoeShared's (ffn_*_shexp): one ungated shared expert as wide as
// layer 0's, or none in every layer.
func graniteShared(c *model.Config, f *model.FFN) bool {
	if c.EmbedScale == 0 { // not granite: the caller's other cases apply
		return false
	}
	if f.SharedGate || len(f.SharedWidths) != len(c.FFN[0].SharedWidths) || len(f.SharedWidths) > 1 {
		return true
	}
	return len(f.SharedWidths) == 1 && f.SharedWidths[0] != c.FFN[0].SharedWidths[0]
}

// permuteRoPE reorders each head's rows of a q or k projection (rows of
// cols values) from rotate-half order to adjacent pairs: row i*hd/2+j of a
// head moves to 2j+i, as convert_hf_to_gguf.py's permute does.
func permuteRoPE(v []float32, heads, hd, cols int) []float32 {
	out := make([]float32, len(v))
	half := hd / 2
	for h := range heads {
		for i := range 2 {
			for j := range half {
				src := (h*hd + i*half + j) * cols
				dst := (h*hd + 2*j + i) * cols
				copy(out[dst:dst+cols], v[src:src+cols])
			}
		}
	}
	return out
}

// layerOf is the layer of a "layers.L.…" name, or -1.
func layerOf(name string) int {
	var l int
	if _, err := fmt.Sscanf(name, "layers.%d.", &l); err != nil {
		return -1
	}
	return l
}

// fileType is general.file_type (llama_ftype) for files whose matrices
// are all of type t.
func fileType(t GGMLType) uint32 {
	switch t {
	case TypeF16:
		return 1
	case TypeQ4_0:
		return 2
	case TypeQ8_0:
		return 7
	case TypeQ4_K:
		return 14 // LLAMA_FTYPE_MOSTLY_Q4_K_S: Q4_K, some matrices in another type
	case TypeBF16:
		return 32
	}
	return 0
}

// kv is the vocabulary as tokenizer.* metadata.
func (v *Vocab) kv() []KV {
	const p = "tokenizer.ggml."
	kv := []KV{
		{Key: p + "model", Value: Scalar(v.Model)},
		{Key: p + "tokens", Value: Array(v.Tokens)},
	}
	if v.Pre != "" {
		kv = append(kv, KV{Key: p + "pre", Value: Scalar(v.Pre)})
	}
	if v.Scores != nil {
		kv = append(kv, KV{Key: p + "scores", Value: Array(v.Scores)})
	}
	if v.TokenTypes != nil {
		kv = append(kv, KV{Key: p + "token_type", Value: Array(v.TokenTypes)})
	}
	if v.Merges != nil {
		kv = append(kv, KV{Key: p + "merges", Value: Array(v.Merges)})
	}
	for _, s := range []struct {
		name string
		id   int
	}{{"bos", v.BOS}, {"eos", v.EOS}, {"eot", v.EOT}, {"eom", v.EOM}, {"unknown", v.UNK}, {"padding", v.PAD}} {
		if s.id >= 0 {
			kv = append(kv, KV{Key: p + s.name + "_token_id", Value: Scalar(uint32(s.id))})
		}
	}
	for _, b := range []struct {
		name string
		v    *bool
	}{{"add_bos_token", v.AddBOS}, {"add_eos_token", v.AddEOS}} {
		if b.v != nil {
			kv = append(kv, KV{Key: p + b.name, Value: Scalar(*b.v)})
		}
	}
	if v.ChatTemplate != "" {
		kv = append(kv, KV{Key: "tokenizer.chat_template", Value: Scalar(v.ChatTemplate)})
	}
	return kv
}

// gptOssExport checks that llama.cpp's gpt-oss graph computes what c
// does: what that graph hard-codes (biases everywhere, sinks, the
// sliding window on even layers, top-k softmax routing with a biased
// router, biased experts and the clamped SwiGLU with alpha 1.702 and
// limit 7, NeoX RoPE with optional plain YaRN) and MXFP4's blocks of 32.
func gptOssExport(c *model.Config) error {
	switch {
	case !c.AttnBias || !c.AttnOutBias:
		return fmt.Errorf("gpt-oss has q/k/v and output biases")
	case c.QKNorm != model.QKNormNone || c.RopeStyle != model.RopeHalf:
		return fmt.Errorf("gpt-oss has no q/k norm and rotates halves (NeoX RoPE)")
	case c.EmbedScale != 0 || c.AttnScale != 0 || c.ResidualScale != 0 || c.LogitScale != 0:
		return fmt.Errorf("gpt-oss has no embedding, attention, residual or logit multipliers")
	case c.SlidingWindow <= 0 || len(c.LayerTypes) != c.Layers:
		return fmt.Errorf("gpt-oss slides a window over its even layers; the config has window %d and %d layer types", c.SlidingWindow, len(c.LayerTypes))
	case c.Dim%32 != 0:
		return fmt.Errorf("gpt-oss's MXFP4 experts need a width that is a multiple of 32, got dim %d", c.Dim)
	}
	for l, t := range c.LayerTypes {
		if want := map[bool]string{true: model.LayerSliding, false: model.LayerFull}[l%2 == 0]; t != want {
			return fmt.Errorf("layer %d is %s; llama.cpp's gpt-oss makes it %s (sliding on even layers)", l, t, want)
		}
	}
	if r := c.RopeScale; r != nil {
		if r.Type != "yarn" || r.Mscale != 0 || r.MscaleAllDim != 0 || r.AttnFactor != 0 {
			return fmt.Errorf("gpt-oss takes plain YaRN rope scaling; the config has %+v", *r)
		}
	}
	for l, f := range c.FFN {
		switch {
		case !f.Sparse() || len(f.SharedWidths) > 0 || f.SharedGate:
			return fmt.Errorf("layer %d: gpt-oss has routed experts only", l)
		case f.Router.Scoring != model.Softmax || !f.Router.NormTopK || !f.Router.LogitBias || f.Router.SelectionBias || f.Router.CapacityFactor > 0 || f.Router.Scale() != 1:
			return fmt.Errorf("layer %d: gpt-oss routes with a biased router and a softmax over the top-k", l)
		case !f.ExpertBias || f.Act != model.ActSwiGLUClamped || f.Alpha != gptOssAlpha || f.Limit != gptOssLimit:
			return fmt.Errorf("layer %d: gpt-oss's experts have biases and the clamped SwiGLU with alpha %v and limit %v (llama.cpp hard-codes them)", l, gptOssAlpha, gptOssLimit)
		case f.ExpertWidths[0]%32 != 0 || slices.ContainsFunc(f.ExpertWidths, func(w int) bool { return w != f.ExpertWidths[0] }):
			return fmt.Errorf("layer %d: gpt-oss's MXFP4 experts stack at one width, a multiple of 32", l)
		}
	}
	return nil
}
