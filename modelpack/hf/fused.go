package hf

import (
	"fmt"
	"path/filepath"

	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Fused is canonical tensors a checkpoint stores inside fused tensors, as
// an index that points into the files sees them. gpt-oss keeps an
// expert's gate and up interleaved in its slice of gate_up_proj
// (input-major, or MXFP4 rows with their scales beside), its down in its
// slice of down_proj, and a layer's gate and up biases interleaved in
// gate_up_proj_bias. The fused tensors are expert-major, so each of an
// expert's sources is one contiguous byte range: Sources. Unfuse turns
// their bytes, concatenated in order, into the tensors Names and Shapes
// describe, laid out as mode stores DType, concatenated in order. The two
// are the same size, so a manifest lists the tensors at their offsets in
// the fetched bytes and the bytes are rearranged once they arrive.
type Fused struct {
	Names   []string
	Shapes  [][]int
	DType   tensor.DType
	Sources []safetensors.Info
	layout  fusedLayout
	// rows and cols are the stored matrix's (one expert's, for experts):
	// [in, out] of an input-major slice, [out, in] of MXFP4, [rows, 2·cols]
	// of the biases.
	rows, cols int
}

type fusedLayout int

const (
	// gate_up_proj [in, 2·out], gate and up in alternate columns.
	interleavedInputMajor fusedLayout = iota
	// down_proj [in, out].
	inputMajor
	// gate_up_proj_bias [experts, 2·width], gate and up alternate.
	interleavedColumns
	// gate_up_proj scales [2·out, G] then blocks [2·out, G, 16], gate and
	// up in alternate rows.
	mxfp4Interleaved
	// down_proj scales [out, G] then blocks [out, G, 16].
	mxfp4Rows
)

// Size is the bytes of the sources, and of the tensors Unfuse makes.
func (f *Fused) Size() int64 {
	var n int64
	for _, s := range f.Sources {
		n += s.Size()
	}
	return n
}

// Unfuse rearranges b, the sources' bytes concatenated, into the tensors'
// bytes concatenated; b is left as it was. Dense values are checked to be
// finite and MXFP4 scales to be valid, as reading the whole file does.
func (f *Fused) Unfuse(b []byte) ([]byte, error) {
	if int64(len(b)) != f.Size() {
		return nil, fmt.Errorf("%s: %d bytes for fused tensors %v of %d", f.file(), len(b), f.Names, f.Size())
	}
	out := make([]byte, 0, len(b))
	es := f.DType.ElemSize()
	part := len(f.Names) // gate and up alternate in a stored row or column
	for i, name := range f.Names {
		var t *tensor.Tensor
		switch f.layout {
		case interleavedInputMajor, inputMajor: // [in, part·n] → [n, in]
			t = &tensor.Tensor{Name: name, DType: f.DType, Shape: f.Shapes[i], Data: transposeColumns(b, es, f.rows, f.cols, i, part)}
		case interleavedColumns: // [rows, part·n] → [rows, n]
			t = &tensor.Tensor{Name: name, DType: f.DType, Shape: f.Shapes[i], Data: pickColumns(b, es, f.rows, f.cols, i, part)}
		case mxfp4Interleaved, mxfp4Rows: // scales [rows, G], blocks [rows, G, 16]
			g := f.cols / 32
			var err error
			if t, err = pickMXFP4Rows(name, b[:f.rows*g], b[f.rows*g:], f.rows, f.cols, i, part); err != nil {
				return nil, fmt.Errorf("%s: tensor %q: %w", f.file(), f.Sources[0].Name, err)
			}
		}
		if j, v, bad := tensor.FirstNonFinite(t); bad { // dense dtypes only
			return nil, fmt.Errorf("%s: tensor %q: %s: element %d is %v", f.file(), f.Sources[0].Name, name, j, v)
		}
		out = append(out, t.Data...)
	}
	if len(out) != len(b) {
		return nil, fmt.Errorf("%s: fused tensors %v: %d bytes made of %d", f.file(), f.Names, len(out), len(b))
	}
	return out, nil
}

func (f *Fused) file() string { return filepath.Base(f.Sources[0].File) }

// expertSlice is expert e's bytes of a tensor whose first dimension
// counts experts, as a tensor info of its own of the given shape.
func expertSlice(in safetensors.Info, e int, shape ...int) safetensors.Info {
	per := in.Size() / int64(in.Shape[0])
	out := in
	out.Shape = shape
	out.FileOffset += int64(e) * per
	out.DataOffsets = [2]int64{in.DataOffsets[0] + int64(e)*per, in.DataOffsets[0] + int64(e+1)*per}
	return out
}

// fusedGroups lists, for a gpt-oss plan resolved against its checkpoint,
// the layers' biases and every expert's tensors as Fused groups.
func (p *plan) fusedGroups(byName map[string]safetensors.Info) ([]Fused, error) {
	c := &p.cfg
	D := c.Dim
	var out []Fused
	for l := range c.Layers {
		f := &c.FFN[l]
		E, I := len(f.ExpertWidths), f.ExpertWidths[0]
		pre := fmt.Sprintf("model.layers.%d.mlp.experts.", l)
		bias := byName[pre+"gate_up_proj_bias"]
		bd, err := bias.TensorDType()
		if err != nil {
			return nil, err
		}
		out = append(out, Fused{
			Names:  []string{model.LayerName(l, "expert_gate_bias"), model.LayerName(l, "expert_up_bias")},
			Shapes: [][]int{{E, I}, {E, I}},
			DType:  bd, Sources: []safetensors.Info{bias}, layout: interleavedColumns, rows: E, cols: 2 * I,
		})
		names := func(e int, parts ...string) []string {
			var ns []string
			for _, pt := range parts {
				ns = append(ns, model.ExpertName(l, e, pt))
			}
			return ns
		}
		if blocks, ok := byName[pre+"gate_up_proj_blocks"]; ok {
			scales, dnB, dnS := byName[pre+"gate_up_proj_scales"], byName[pre+"down_proj_blocks"], byName[pre+"down_proj_scales"]
			for e := range E {
				out = append(out, Fused{
					Names: names(e, "gate", "up"), Shapes: [][]int{{I, D}, {I, D}}, DType: tensor.MXFP4,
					Sources: []safetensors.Info{expertSlice(scales, e, 2*I, D/32), expertSlice(blocks, e, 2*I, D/32, 16)},
					layout:  mxfp4Interleaved, rows: 2 * I, cols: D,
				}, Fused{
					Names: names(e, "down"), Shapes: [][]int{{D, I}}, DType: tensor.MXFP4,
					Sources: []safetensors.Info{expertSlice(dnS, e, D, I/32), expertSlice(dnB, e, D, I/32, 16)},
					layout:  mxfp4Rows, rows: D, cols: I,
				})
			}
			continue
		}
		gu, dn := byName[pre+"gate_up_proj"], byName[pre+"down_proj"]
		gd, err := gu.TensorDType()
		if err != nil {
			return nil, err
		}
		dd, err := dn.TensorDType()
		if err != nil {
			return nil, err
		}
		for e := range E {
			out = append(out, Fused{
				Names: names(e, "gate", "up"), Shapes: [][]int{{I, D}, {I, D}}, DType: gd,
				Sources: []safetensors.Info{expertSlice(gu, e, D, 2*I)}, layout: interleavedInputMajor, rows: D, cols: 2 * I,
			}, Fused{
				Names: names(e, "down"), Shapes: [][]int{{D, I}}, DType: dd,
				Sources: []safetensors.Info{expertSlice(dn, e, I, D)}, layout: inputMajor, rows: I, cols: D,
			})
		}
	}
	return out, nil
}
