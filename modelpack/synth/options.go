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
	Arch string // llama, mixtral, qwen2_moe, qwen3_moe, olmoe or mode
	Seed uint64

	Dim     int // hidden_size
	Layers  int
	Heads   int
	KVHeads int
	HeadDim int // 0: Dim/Heads; qwen2_moe and olmoe require exactly that

	FFN       int // intermediate_size: dense layers; mixtral's and olmoe's expert width
	ExpertFFN int // moe_intermediate_size: routed expert width (qwen2_moe, qwen3_moe)
	Experts   int // routed experts per sparse layer
	TopK      int // experts chosen per token
	SharedFFN int // shared expert width (qwen2_moe; mode: negative for none)
	// ExpertWidths gives each routed expert its own width (mode only).
	ExpertWidths []int
	SparseStep   int   // decoder_sparse_step (qwen2_moe, qwen3_moe)
	DenseLayers  []int // mlp_only_layers (qwen2_moe, qwen3_moe)
	NormTopK     bool  // norm_topk_prob (qwen2_moe, qwen3_moe, olmoe, mode; mixtral always normalises)
	// Scoring is the router's scoring; HF families are all softmax, mode
	// may use sigmoid.
	Scoring    model.Scoring
	TiedOutput bool // tie_word_embeddings: no lm_head.weight

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
}

// Arches lists the model types Write can produce.
func Arches() []string {
	return []string{"llama", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "mode"}
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
	if o.Arch != "mode" && o.Scoring != "" && o.Scoring != model.Softmax {
		return fmt.Errorf("synth: %s routers use softmax scoring, not %q", o.Arch, o.Scoring)
	}
	if o.Arch != "mode" && len(o.ExpertWidths) > 0 {
		return fmt.Errorf("synth: ExpertWidths applies to arch mode only")
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
	if qwen && o.ExpertFFN == 0 || o.Arch == "qwen2_moe" && o.SharedFFN == 0 {
		return fmt.Errorf("synth: %s needs ExpertFFN and (qwen2_moe) SharedFFN", o.Arch)
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
	}
	return true
}

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
