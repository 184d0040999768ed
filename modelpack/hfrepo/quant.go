package hfrepo

import (
	"fmt"
	"strings"

	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Quant is the format tensors are converted to as they are loaded. The
// rule is modelpack import's (modelpack/pack, writer.dtypeFor), so a model
// loaded with a Quant computes what a pack of that quantisation does when
// no FFN needed widening: norms, biases, routers and one-row matrices stay
// f32; routed experts take Experts; the matrices every token uses take
// Dense, which defaults to q8_0 when Experts is a 4-bit format and the
// model has routed experts (RATIONALE.md, "Quantisation"), else Experts;
// a 4-bit output head is kept at q8_0; and a matrix whose width a block
// format cannot hold falls back to the next format that can (q4_0 → q8_0 →
// f16). Unlike import, odd FFN widths are not padded, so such a matrix is
// stored in the fallback format.
type Quant struct {
	Experts tensor.DType // tensor.Invalid: keep every tensor as stored
	Dense   tensor.DType // tensor.Invalid: as described above
}

// DefaultQuant is what an hf: location loads as unless told otherwise:
// 4-bit routed experts, q8_0 for the rest, as 4-bit packs are.
var DefaultQuant = Quant{Experts: tensor.Q4_0}

// ParseQuant reads a --quant value: "source" (keep the stored formats), or
// one of f32, f16, q8_0, q4_0, q4_k for the routed experts (and for every
// matrix of a model without them), the dense matrices then following the
// rule Quant describes.
func ParseQuant(s string) (Quant, error) {
	if s == "source" {
		return Quant{}, nil
	}
	d, err := tensor.ParseDType(s)
	switch {
	case err != nil:
	case d == tensor.F32, d == tensor.F16, d == tensor.Q8_0, d == tensor.Q4_0, d == tensor.Q4_K:
		return Quant{Experts: d}, nil
	}
	return Quant{}, fmt.Errorf("quantisation %q: want source, f32, f16, q8_0, q4_0 or q4_k", s)
}

func (q Quant) String() string {
	if q.Experts == tensor.Invalid {
		return "source"
	}
	return q.Experts.String()
}

// Converter returns the conversion of each of cfg's tensors, by canonical
// name, to the format q gives it; nil when q keeps the stored formats.
func (q Quant) Converter(cfg model.Config) func(*tensor.Tensor) (*tensor.Tensor, error) {
	if q.Experts == tensor.Invalid {
		return nil
	}
	formats := q.Formats(cfg)
	return func(t *tensor.Tensor) (*tensor.Tensor, error) {
		d, ok := formats[t.Name]
		if !ok {
			return nil, fmt.Errorf("no format for tensor %s: it is not one of the model's", t.Name)
		}
		if t.DType == d || t.DType == tensor.MXFP4 {
			// MXFP4 experts (gpt-oss as released) are kept as stored, as
			// a pack keeps them (pack.Fixed): already 4-bit, and any
			// other format would only lose precision.
			return t, nil
		}
		if tensor.BlockSize(t.DType) > 1 {
			// a block-format source (a GGUF loaded with --quant): Quantize
			// reads the plain formats, so go through its exact f32 values
			f, err := t.Float32s()
			if err != nil {
				return nil, err
			}
			t = tensor.FromF32(t.Name, t.Shape, f)
		}
		return tensor.Quantize(t, d)
	}
}

// ManifestFormats is Formats for the tensors m lists, with those stored
// MXFP4 kept so (see Converter): what m's tensors load as.
func (q Quant) ManifestFormats(m *manifest.Manifest) map[string]tensor.DType {
	out := q.Formats(m.Model)
	if q.Experts == tensor.Invalid {
		return out
	}
	for _, s := range m.Shards {
		for _, t := range s.Tensors {
			if t.DType == tensor.MXFP4.String() {
				out[t.Name] = tensor.MXFP4
			}
		}
	}
	return out
}

// Formats is the format q gives each of cfg's tensors.
func (q Quant) Formats(cfg model.Config) map[string]tensor.DType {
	dense := q.Dense
	if dense == tensor.Invalid {
		dense = q.Experts
		if cfg.HasRoutedExperts() && (q.Experts == tensor.Q4_0 || q.Experts == tensor.Q4_K) {
			dense = tensor.Q8_0
		}
	}
	out := map[string]tensor.DType{}
	for _, sp := range cfg.Spec() {
		out[sp.Name] = q.format(sp, dense, cfg.TiedOutput)
	}
	return out
}

func (q Quant) format(sp model.TensorSpec, dense tensor.DType, tied bool) tensor.DType {
	if len(sp.Shape) < 2 || sp.Shape[0] == 1 || strings.HasSuffix(sp.Name, ".router") || strings.HasSuffix(sp.Name, "_bias") {
		// norms, routers, biases (gpt-oss's expert biases are [experts,
		// width]): as modelpack import's writer.dtypeFor
		return tensor.F32
	}
	d := q.Experts
	if sp.Expert < 0 {
		d = dense
	}
	head := sp.Name == model.NameOutput || tied && sp.Name == model.NameEmbed
	if (d == tensor.Q4_0 || d == tensor.Q4_K) && head {
		d = tensor.Q8_0
	}
	var fallbacks []tensor.DType
	switch d {
	case tensor.Q4_K:
		fallbacks = []tensor.DType{tensor.Q4_K, tensor.Q4_0, tensor.Q8_0, tensor.F16}
	case tensor.Q4_0:
		fallbacks = []tensor.DType{tensor.Q4_0, tensor.Q8_0, tensor.F16}
	case tensor.Q8_0:
		fallbacks = []tensor.DType{tensor.Q8_0, tensor.F16}
	default:
		return d
	}
	cols := sp.Shape[len(sp.Shape)-1]
	for _, f := range fallbacks {
		if tensor.CanQuantize(f, cols) {
			return f
		}
	}
	return tensor.F32
}
