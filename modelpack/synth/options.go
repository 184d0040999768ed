package synth

import (
	"fmt"
	"slices"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Options describes the model to write. Zero numeric fields, an empty
// ExpertWidths and an Invalid DType take the arch's defaults (see Default);
// booleans are used as given.
type Options struct {
	Arch string // llama, mixtral, qwen2_moe, qwen3_moe, olmoe, granitemoe, granitemoeshared, gpt_oss, deepseek_v2, deepseek_v3 or mode
	Seed uint64

	Dim     int // hidden_size
	Layers  int
	Heads   int
	KVHeads int
	HeadDim int // 0: Dim/Heads; qwen2_moe and olmoe require exactly that

	FFN       int // intermediate_size: dense layers; mixtral's and olmoe's expert width
	ExpertFFN int // moe_intermediate_size: routed expert width (qwen2_moe, qwen3_moe, deepseek_v2/v3)
	Experts   int // routed experts per sparse layer
	TopK      int // experts chosen per token
	SharedFFN int // shared expert width (qwen2_moe, granitemoeshared; mode: negative for none)
	// ExpertWidths gives each routed expert its own width (mode only).
	ExpertWidths []int
	// ExpertArch gives each routed expert its depth and activation (mode
	// only; empty: every expert plain), the same in every layer.
	ExpertArch  []model.ExpertArch
	SparseStep  int   // decoder_sparse_step (qwen2_moe, qwen3_moe)
	DenseLayers []int // mlp_only_layers (qwen2_moe, qwen3_moe)
	NormTopK    bool  // norm_topk_prob (qwen2_moe, qwen3_moe, olmoe, mode; mixtral always normalises)
	// Scoring is the router's scoring; HF families are all softmax, mode
	// may use sigmoid.
	Scoring    model.Scoring
	TiedOutput bool // tie_word_embeddings: no lm_head.weight
	// Window is gpt_oss's sliding_window (its even layers slide).
	Window int
	// MXFP4 stores gpt_oss's experts as OpenAI releases them
	// (*_blocks and *_scales, U8) instead of dequantised in DType.
	MXFP4 bool
	// MLA is DeepSeek's multi-head latent attention (deepseek_v2,
	// deepseek_v3; HeadDim becomes NopeDim+RopeDim); Groups and
	// TopKGroups its router's n_group and topk_group.
	MLA                model.MLA
	Groups, TopKGroups int

	// Vocab is vocab_size. The tokenizer has this many tokens, or about
	// 880 when more are asked for than the built-in text yields merges;
	// the embedding rows past it are then unused, like a padded vocab.
	Vocab  int
	MaxSeq int // max_position_embeddings
	DType  tensor.DType
	// MaxShardBytes > 0 splits the weights into shards of at most this
	// many bytes (a single tensor larger than that gets a shard of its own)
	// listed by model.safetensors.index.json.
	MaxShardBytes int64
	// Files > 1 splits the weights into that many files of about equal
	// size instead (model-00001-of-0000N.safetensors and the index), the
	// shape of a real sharded checkpoint; it excludes MaxShardBytes.
	Files int
}

// Arches lists the model types Write can produce.
func Arches() []string {
	return []string{"llama", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "granitemoe", "granitemoeshared", "gpt_oss", "deepseek_v2", "deepseek_v3", "mode"}
}

// Default returns the full default options for arch: a model of hidden
// size 64, small enough to run in tests in milliseconds.
func Default(arch string) Options {
	o := Options{Arch: arch, Dim: 64, Heads: 4, KVHeads: 2, Vocab: 512, MaxSeq: 256, DType: tensor.F32}
	switch arch {
	case "llama":
		o.Layers, o.FFN = 2, 128
	case "mixtral":
		o.Layers, o.FFN, o.Experts, o.TopK = 2, 96, 4, 2
	case "qwen2_moe":
		o.Layers, o.FFN, o.ExpertFFN, o.SharedFFN, o.Experts, o.TopK, o.SparseStep = 4, 128, 32, 64, 8, 2, 1
	case "qwen3_moe":
		// head_dim differs from Dim/Heads, as in the real Qwen3-MoE models.
		o.Layers, o.HeadDim, o.FFN, o.ExpertFFN, o.Experts, o.TopK, o.SparseStep = 3, 32, 128, 48, 8, 2, 1
		o.NormTopK = true
	case "olmoe":
		o.Layers, o.FFN, o.Experts, o.TopK = 2, 48, 8, 2
	case "granitemoe":
		o.Layers, o.FFN, o.Experts, o.TopK = 2, 48, 8, 2
	case "granitemoeshared":
		o.Layers, o.FFN, o.Experts, o.TopK, o.SharedFFN = 2, 48, 8, 2, 32
	case "gpt_oss":
		// Widths multiples of 32 for MXFP4; head_dim differs from
		// Dim/Heads as in the real models (64 vs 2880/64); a window of 8
		// so that short prompts pass it.
		o.Layers, o.HeadDim, o.FFN, o.Experts, o.TopK, o.Window, o.MXFP4 = 2, 32, 64, 4, 2, 8, true
	case "deepseek_v2", "deepseek_v3":
		// Every part switched on: a dense first layer
		// (first_k_dense_replace 1), two shared experts (SharedFFN =
		// 2·ExpertFFN), group-limited routing, YaRN with mscale; V2 with
		// q_proj and group_limited_greedy, V3 with the q bottleneck and
		// noaux_tc (sigmoid, e_score_correction_bias).
		o.Layers, o.KVHeads, o.FFN, o.ExpertFFN, o.SharedFFN, o.Experts, o.TopK = 3, 4, 128, 32, 64, 8, 3
		o.MLA = model.MLA{KVLoraRank: 32, NopeDim: 16, RopeDim: 8, VDim: 16}
		o.Groups, o.TopKGroups = 4, 2
		if arch == "deepseek_v3" {
			o.MLA.QLoraRank = 48
			o.NormTopK = true
		}
	case "mode":
		o.Layers, o.FFN, o.TopK, o.SharedFFN = 2, 64, 2, 32
		o.ExpertWidths = []int{32, 96, 64, 16}
		o.Experts = len(o.ExpertWidths)
		o.Scoring = model.Softmax
		o.NormTopK = true
	}
	return o
}

// resolve fills defaults and checks the options.
func (o Options) resolve() (Options, error) {
	if !slices.Contains(Arches(), o.Arch) {
		return o, fmt.Errorf("synth: unknown arch %q (one of %v)", o.Arch, Arches())
	}
	d := Default(o.Arch)
	fill := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&o.Dim, d.Dim)
	fill(&o.Layers, d.Layers)
	fill(&o.Heads, d.Heads)
	fill(&o.KVHeads, d.KVHeads)
	fill(&o.HeadDim, d.HeadDim)
	fill(&o.FFN, d.FFN)
	fill(&o.ExpertFFN, d.ExpertFFN)
	fill(&o.TopK, d.TopK)
	fill(&o.SharedFFN, d.SharedFFN)
	fill(&o.SparseStep, d.SparseStep)
	fill(&o.Vocab, d.Vocab)
	fill(&o.MaxSeq, d.MaxSeq)
	if o.Arch == "mode" {
		switch {
		case len(o.ExpertWidths) == 0 && o.Experts == 0:
			o.ExpertWidths = d.ExpertWidths
		case len(o.ExpertWidths) == 0:
			o.ExpertWidths = repeat(o.FFN, o.Experts)
		}
		if o.Experts == 0 {
			o.Experts = len(o.ExpertWidths)
		}
		if o.Scoring == "" {
			o.Scoring = model.Softmax
		}
	} else {
		fill(&o.Experts, d.Experts)
	}
	if o.DType == tensor.Invalid {
		o.DType = d.DType
	}
	if o.isDeepSeek() {
		if o.MLA == (model.MLA{}) {
			o.MLA = d.MLA
		}
		fill(&o.Groups, d.Groups)
		fill(&o.TopKGroups, d.TopKGroups)
		o.KVHeads = o.Heads
		o.HeadDim = o.MLA.NopeDim + o.MLA.RopeDim
	}
	if o.HeadDim == 0 {
		if o.Heads <= 0 || o.Dim%o.Heads != 0 {
			return o, fmt.Errorf("synth: Dim %d is not a multiple of Heads %d; set HeadDim", o.Dim, o.Heads)
		}
		o.HeadDim = o.Dim / o.Heads
	}
	return o, o.check()
}

// check rejects options the arch cannot express.
func (o *Options) check() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"Dim", o.Dim}, {"Layers", o.Layers}, {"Heads", o.Heads}, {"KVHeads", o.KVHeads}, {"HeadDim", o.HeadDim}, {"FFN", o.FFN}, {"MaxSeq", o.MaxSeq}, {"SparseStep", o.SparseStep}} {
		if f.v < 0 || (f.v == 0 && f.name != "SparseStep") {
			return fmt.Errorf("synth: %s must be positive, got %d", f.name, f.v)
		}
	}
	if o.Dim > 1<<16 || o.Layers > 1024 || o.Experts > 1024 || o.Vocab > 1<<20 || o.MaxSeq > 1<<24 {
		return fmt.Errorf("synth: Dim %d, Layers %d, Experts %d, Vocab %d or MaxSeq %d out of range", o.Dim, o.Layers, o.Experts, o.Vocab, o.MaxSeq)
	}
	if o.Heads%o.KVHeads != 0 {
		return fmt.Errorf("synth: Heads %d is not a multiple of KVHeads %d", o.Heads, o.KVHeads)
	}
	if o.HeadDim%2 != 0 {
		return fmt.Errorf("synth: HeadDim %d must be even", o.HeadDim)
	}
	if (o.Arch == "qwen2_moe" || o.Arch == "olmoe") && o.HeadDim*o.Heads != o.Dim {
		return fmt.Errorf("synth: %s requires HeadDim = Dim/Heads", o.Arch)
	}
	if o.Vocab < 256+2 {
		return fmt.Errorf("synth: Vocab %d is below the 258 of 256 byte tokens and 2 special tokens", o.Vocab)
	}
	if _, ok := torchDType(o.DType); !ok {
		return fmt.Errorf("synth: DType %v is not f32, f16 or bf16", o.DType)
	}
	if o.Files < 0 || o.Files > 1000 || o.Files > 1 && o.MaxShardBytes > 0 {
		return fmt.Errorf("synth: Files %d must be in 0..1000 and not set with MaxShardBytes", o.Files)
	}
	if o.Arch != "mode" && o.Scoring != "" && o.Scoring != model.Softmax {
		return fmt.Errorf("synth: %s routers use softmax scoring, not %q", o.Arch, o.Scoring)
	}
	if o.Arch != "mode" && (len(o.ExpertWidths) > 0 || len(o.ExpertArch) > 0) {
		return fmt.Errorf("synth: ExpertWidths and ExpertArch apply to arch mode only")
	}
	if len(o.ExpertArch) > 0 && len(o.ExpertArch) != len(o.ExpertWidths) {
		return fmt.Errorf("synth: %d ExpertArch entries for %d experts", len(o.ExpertArch), len(o.ExpertWidths))
	}
	qwen := o.Arch == "qwen2_moe" || o.Arch == "qwen3_moe"
	if !qwen && (len(o.DenseLayers) > 0 || o.SparseStep > 1) {
		return fmt.Errorf("synth: SparseStep and DenseLayers apply to qwen2_moe and qwen3_moe only")
	}
	for _, l := range o.DenseLayers {
		if l < 0 || l >= o.Layers {
			return fmt.Errorf("synth: DenseLayers entry %d outside 0..%d", l, o.Layers-1)
		}
	}
	if o.Arch != "gpt_oss" && (o.Window != 0 || o.MXFP4) {
		return fmt.Errorf("synth: Window and MXFP4 apply to gpt_oss only")
	}
	if o.Arch == "gpt_oss" && (o.Window <= 0 || o.MXFP4 && (o.Dim%32 != 0 || o.FFN%32 != 0)) {
		return fmt.Errorf("synth: gpt_oss needs a positive Window, and for MXFP4 Dim %d and FFN %d multiples of 32", o.Dim, o.FFN)
	}
	if o.Arch == "llama" {
		return nil
	}
	if o.Experts <= 0 || o.TopK <= 0 || o.TopK > o.Experts {
		return fmt.Errorf("synth: TopK %d out of range 1..%d experts", o.TopK, o.Experts)
	}
	if o.Arch == "mode" && len(o.ExpertWidths) != o.Experts {
		return fmt.Errorf("synth: %d ExpertWidths for %d Experts", len(o.ExpertWidths), o.Experts)
	}
	for _, w := range o.ExpertWidths {
		if w <= 0 {
			return fmt.Errorf("synth: expert width %d must be positive", w)
		}
	}
	if o.ExpertFFN < 0 || (o.SharedFFN < 0 && o.Arch != "mode") {
		return fmt.Errorf("synth: ExpertFFN %d and SharedFFN %d must not be negative", o.ExpertFFN, o.SharedFFN)
	}
	if (o.Arch == "mixtral" || o.Arch == "olmoe" || o.Arch == "qwen3_moe" || o.Arch == "granitemoe") && o.SharedFFN != 0 {
		return fmt.Errorf("synth: %s has no shared expert (SharedFFN %d)", o.Arch, o.SharedFFN)
	}
	if qwen && o.ExpertFFN == 0 || (o.Arch == "qwen2_moe" || o.Arch == "granitemoeshared") && o.SharedFFN == 0 {
		return fmt.Errorf("synth: %s needs ExpertFFN and (qwen2_moe) SharedFFN", o.Arch)
	}
	if o.isDeepSeek() {
		if o.ExpertFFN <= 0 || o.SharedFFN%o.ExpertFFN != 0 || o.Layers < 2 || o.Groups <= 0 || o.Experts%o.Groups != 0 ||
			o.TopKGroups <= 0 || o.TopKGroups > o.Groups || o.TopK > o.TopKGroups*(o.Experts/o.Groups) || o.Experts/o.Groups < 2 {
			return fmt.Errorf("synth: %s needs ExpertFFN > 0, SharedFFN a multiple of it, 2 layers or more, Groups of 2 experts or more dividing Experts, and TopK within TopKGroups groups", o.Arch)
		}
		return nil
	}
	if o.MLA != (model.MLA{}) || o.Groups != 0 || o.TopKGroups != 0 {
		return fmt.Errorf("synth: MLA, Groups and TopKGroups apply to deepseek_v2 and deepseek_v3 only")
	}
	if !qwen && o.ExpertFFN != 0 {
		// Mixtral's and OLMoE's configs have no moe_intermediate_size: their
		// experts are FFN wide. Ignoring it would build another model than
		// the one asked for.
		return fmt.Errorf("synth: %s has no separate expert width (ExpertFFN %d): its experts are FFN wide (mode: ExpertWidths)", o.Arch, o.ExpertFFN)
	}
	return nil
}

// sparse reports whether layer l routes, by Qwen-MoE's rule for the qwen
// archs; every layer of the other MoE archs routes.
func (o *Options) sparse(l int) bool {
	switch o.Arch {
	case "llama":
		return false
	case "qwen2_moe", "qwen3_moe":
		return !slices.Contains(o.DenseLayers, l) && (l+1)%o.SparseStep == 0
	case "deepseek_v2", "deepseek_v3":
		return l >= 1 // first_k_dense_replace 1
	}
	return true
}

func (o *Options) isDeepSeek() bool { return o.Arch == "deepseek_v2" || o.Arch == "deepseek_v3" }

func repeat(v, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// torchDType is config.json's torch_dtype for a storage dtype.
func torchDType(d tensor.DType) (string, bool) {
	switch d {
	case tensor.F32:
		return "float32", true
	case tensor.F16:
		return "float16", true
	case tensor.BF16:
		return "bfloat16", true
	}
	return "", false
}
