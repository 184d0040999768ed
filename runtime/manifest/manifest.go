package manifest

import (
	"github.com/moderuntime/mode/runtime/model"
)

// Format and Version identify the schema.
const (
	Format  = "mode-pack"
	Version = 1
)

// Shard kinds.
const (
	KindCore   = "core"   // embeddings, final norm, output head (row chunks when large)
	KindLayer  = "layer"  // one layer's always-used tensors: norms, attention, router, shared experts
	KindExpert = "expert" // one routed expert's gate, up and down
)

// Manifest describes a pack.
type Manifest struct {
	Format  string       `json:"format"`
	Version int          `json:"version"`
	Model   model.Config `json:"model"`
	// Quant is the weight format of the pack's matrices ("f32", "q4_0", ...);
	// norms, biases and routers stay f32.
	Quant string `json:"quant"`
	// DenseQuant, when set, is the format of the matrices every token uses
	// (attention, shared experts, dense FFNs, embeddings) where it differs
	// from Quant, which then names the routed experts' format. Each tensor
	// still names its own dtype; this field only says what was asked for.
	DenseQuant   string    `json:"dense_quant,omitempty"`
	Tokenizer    Tokenizer `json:"tokenizer"`
	ChatTemplate string    `json:"chat_template,omitempty"`
	Shards       []Shard   `json:"shards"`
}

// Tokenizer says how to load the tokenizer: Kind "hf" (tokenizer.json) or
// "llama2c" (tokenizer .bin); the bytes are the file File, relative to the
// manifest, with the given hash.
type Tokenizer struct {
	Kind   string `json:"kind"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Config is the file holding tokenizer_config.json, if any.
	Config       string `json:"config,omitempty"`
	ConfigSHA256 string `json:"config_sha256,omitempty"`
	ConfigSize   int64  `json:"config_size,omitempty"`
	AddBOS       bool   `json:"add_bos"`
}

// Shard is a unit of download: a byte string made of one or more pieces,
// with a sha256 over all its bytes, holding whole tensors.
type Shard struct {
	ID     string `json:"id"` // "core", "core.1", "layer.3", "layer.3.expert.5"
	Kind   string `json:"kind"`
	Layer  int    `json:"layer"`  // -1 for core shards
	Expert int    `json:"expert"` // -1 unless Kind is expert
	SHA256 string `json:"sha256"` // hex
	Size   int64  `json:"size"`
	// Pieces are where the bytes are. A pack has one piece per shard, the
	// whole file named by the hash; a manifest made by `modelpack index`
	// points at byte ranges inside unmodified safetensors files.
	Pieces  []Piece  `json:"pieces"`
	Tensors []Tensor `json:"tensors"`
	// Unverified marks a shard built in memory over files whose bytes no
	// hash covers (an `hf:` repository indexed on load: its pieces' URLs
	// name the commit instead). It is never read from JSON, so no manifest
	// from the network can turn verification off.
	Unverified bool `json:"-"`
}

// Piece is Length bytes of File (a path relative to the manifest, or an
// absolute http(s) URL) starting at Offset.
type Piece struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
}

// Tensor is one tensor inside a shard: its bytes are [Offset, Offset+Length)
// of the shard's bytes (the concatenation of its pieces).
//
// A tensor larger than the shard cap is stored as row chunks in several
// shards: each entry then has the full Shape and says which rows it holds
// (Row0, Rows); Rows == 0 means the whole tensor.
type Tensor struct {
	Name   string `json:"name"`
	DType  string `json:"dtype"`
	Shape  []int  `json:"shape"`
	Row0   int    `json:"row0,omitempty"`
	Rows   int    `json:"rows,omitempty"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	// QuantRMS is the root-mean-square error the storage format introduced,
	// measured against the source at import (0 for a lossless format).
	QuantRMS float64 `json:"quant_rms,omitempty"`
}

// Align is the alignment of tensor offsets inside a pack's shards, so a GPU
// can bind a tensor where it lies (WebGPU's minStorageBufferOffsetAlignment
// is at most 256).
const Align = 256

// QuantSummary names the formats the pack was asked for: Quant, and the
// dense matrices' format when it differs.
func (m *Manifest) QuantSummary() string {
	if m.DenseQuant == "" {
		return m.Quant
	}
	return m.Quant + " experts, " + m.DenseQuant + " dense matrices"
}
