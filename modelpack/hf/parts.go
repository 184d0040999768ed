package hf

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/moderuntime/mode/modelpack/safetensors"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Part is a canonical tensor stored as consecutive rows of a larger
// checkpoint tensor: Granite keeps every expert of a layer in one fused
// tensor, input_linear [experts, 2·width, hidden] (gate rows, then up
// rows: GraniteMoeMoE.forward chunks the product in two and applies the
// activation to the first half) and output_linear [experts, hidden, width].
type Part struct {
	Tensor string // the checkpoint's tensor name
	Shape  []int  // that tensor's whole shape
	// Row0 and Rows select rows of the tensor viewed as a matrix of
	// Shape's last dimension as columns.
	Row0, Rows int
}

// Parts returns the canonical tensors of the model configJSON describes
// that are rows of a fused checkpoint tensor (empty for the families that
// store each matrix whole, whose names LoadConfig maps).
func Parts(configJSON []byte) (map[string]Part, error) {
	p, err := parseConfig(configJSON)
	if err != nil {
		return nil, fmt.Errorf("hf: %w", err)
	}
	return p.parts, nil
}

// graniteParts maps Granite's fused expert tensors onto canonical names.
func graniteParts(c *model.Config) map[string]Part {
	parts := map[string]Part{}
	for l := range c.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		f := &c.FFN[l]
		E := len(f.ExpertWidths)
		for e, w := range f.ExpertWidths {
			in := Part{Tensor: p + "block_sparse_moe.input_linear.weight", Shape: []int{E, 2 * w, c.Dim}}
			gate, up := in, in
			gate.Row0, gate.Rows = e*2*w, w
			up.Row0, up.Rows = e*2*w+w, w
			parts[model.ExpertName(l, e, "gate")] = gate
			parts[model.ExpertName(l, e, "up")] = up
			parts[model.ExpertName(l, e, "down")] = Part{Tensor: p + "block_sparse_moe.output_linear.weight", Shape: []int{E, c.Dim, w}, Row0: e * c.Dim, Rows: c.Dim}
		}
		for s, w := range f.SharedWidths { // GraniteMoeSharedMLP: input_linear [2·width, hidden]
			in := Part{Tensor: p + "shared_mlp.input_linear.weight", Shape: []int{2 * w, c.Dim}}
			gate, up := in, in
			gate.Row0, gate.Rows = 0, w
			up.Row0, up.Rows = w, w
			parts[model.SharedName(l, s, "gate")] = gate
			parts[model.SharedName(l, s, "up")] = up
			parts[model.SharedName(l, s, "down")] = Part{Tensor: p + "shared_mlp.output_linear.weight", Shape: []int{c.Dim, w}, Row0: 0, Rows: c.Dim}
		}
	}
	return parts
}

// sources lists the checkpoint tensors the parts are cut from.
func (p *plan) partSources() map[string][]int {
	src := map[string][]int{}
	for _, pt := range p.parts {
		src[pt.Tensor] = pt.Shape
	}
	return src
}

// sub is the info of rows [row0, row0+rows) of the tensor in, viewed as a
// matrix, as if it were a tensor of its own of the given shape.
func sub(in safetensors.Info, row0, rows int, shape []int) safetensors.Info {
	rowBytes := in.Size() / int64(tensor.MatrixRows(in.Shape))
	off := int64(row0) * rowBytes
	out := in
	out.Shape = slices.Clone(shape)
	out.FileOffset += off
	out.DataOffsets = [2]int64{in.DataOffsets[0] + off, in.DataOffsets[0] + off + int64(rows)*rowBytes}
	return out
}

// readPart reads rows [row0, row0+rows) of part pt (all of it when rows
// is 0) as a tensor named name of [rows, cols].
func (s *Source) readPart(name string, pt Part, row0, rows int) (*tensor.Tensor, error) {
	if rows == 0 {
		row0, rows = 0, pt.Rows
	}
	if row0 < 0 || rows < 0 || row0+rows > pt.Rows {
		return nil, fmt.Errorf("hf: %s: rows [%d, %d) outside the %d of %s", s.dir, row0, row0+rows, pt.Rows, name)
	}
	r0 := pt.Row0 + row0
	// the leading-dimension slabs that hold the rows
	inner := tensor.MatrixRows(pt.Shape) / pt.Shape[0]
	lead0, lead1 := r0/inner, (r0+rows-1)/inner+1
	t, err := s.st.ReadRows(pt.Tensor, lead0, lead1-lead0)
	if err != nil {
		return nil, err
	}
	cols := pt.Shape[len(pt.Shape)-1]
	rowBytes := len(t.Data) / ((lead1 - lead0) * inner)
	b := (r0 - lead0*inner) * rowBytes
	t.Data = t.Data[b : b+rows*rowBytes]
	t.Shape = []int{rows, cols}
	if i, v, bad := tensor.FirstNonFinite(t); bad {
		info, _ := s.st.Info(pt.Tensor)
		return nil, fmt.Errorf("%s: tensor %q: element %d is %v", filepath.Base(info.File), pt.Tensor, i+r0*cols, v)
	}
	t.Name = name
	return t, nil
}
