package source

import (
	"fmt"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Source yields a model's tensors one at a time by canonical name.
type Source interface {
	Config() model.Config
	// Read returns rows [row0, row0+rows) of tensor name (the whole tensor
	// when rows is 0), in the format it is stored in.
	Read(name string, row0, rows int) (*tensor.Tensor, error)
}

// Tokenizer is what a pack embeds to tokenize: the raw files.
type Tokenizer struct {
	Kind   string // "hf" or "llama2c"
	File   []byte // tokenizer.json or the llama2.c tokenizer .bin
	Config []byte // tokenizer_config.json, may be nil
	AddBOS bool
}

// ModelSource serves an in-memory model.
type ModelSource struct{ M *model.Model }

func (s ModelSource) Config() model.Config { return s.M.Config }

func (s ModelSource) Read(name string, row0, rows int) (*tensor.Tensor, error) {
	t, ok := s.M.Weights[name]
	if !ok {
		return nil, fmt.Errorf("tensor %s: not in the model", name)
	}
	return SliceRows(t, row0, rows)
}

// FixedFormat keeps MXFP4 tensors MXFP4 (Fixed): gpt-oss's experts as
// released, never requantised.
func (s ModelSource) FixedFormat(name string) (tensor.DType, bool) {
	if t, ok := s.M.Weights[name]; ok && t.DType == tensor.MXFP4 {
		return tensor.MXFP4, true
	}
	return tensor.Invalid, false
}

// SliceRows returns rows [row0, row0+rows) of a plain-format tensor, sharing
// its bytes; rows == 0 returns t.
func SliceRows(t *tensor.Tensor, row0, rows int) (*tensor.Tensor, error) {
	if rows == 0 {
		return t, nil
	}
	es := t.DType.ElemSize()
	if es == 0 {
		return nil, fmt.Errorf("tensor %s: cannot slice rows of %v", t.Name, t.DType)
	}
	if len(t.Shape) != 2 || row0 < 0 || row0+rows > t.Shape[0] {
		return nil, fmt.Errorf("tensor %s: rows [%d, %d) outside shape %v", t.Name, row0, row0+rows, t.Shape)
	}
	rb := es * t.Shape[1]
	return &tensor.Tensor{Name: t.Name, DType: t.DType, Shape: []int{rows, t.Shape[1]}, Data: t.Data[row0*rb : (row0+rows)*rb]}, nil
}

// Fixed is implemented by a Source some of whose tensors are kept in the
// format they are stored in whatever the pack's quantisation: gpt-oss's
// MXFP4 experts are held as released, neither widened nor requantised.
type Fixed interface {
	FixedFormat(name string) (tensor.DType, bool)
}

// Formatter is implemented by a Source that knows which format each of its
// tensors is best kept in: a GGUF source keeps its quantised blocks rather
// than having them requantised.
type Formatter interface {
	Format(name string) tensor.DType
}
