package webgpu

import (
	"fmt"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/moderuntime/mode/runtime/tensor"
)

// weight is a tensor on the device. Matrices keep f32, f16, q8_0, q4_0 or
// q4_k (the kernels dequantise in registers); vectors and bf16 become f32.
// A matrix larger than one storage binding is split by rows into pages,
// each a complete matrix in the same format, so every kernel sees an
// ordinary matrix and the ops loop over pages.
type weight struct {
	shape      []int
	rows, cols int
	format     tensor.DType
	pages      []page
	bytes      int64
	// pooled is where a routed expert's matrix lies in the expert pool
	// (one page, at a base word); nil for a weight with buffers of its own.
	pooled *extent
	// host keeps a deeper expert's block norm on the host too: the MoE op
	// gathers a layer's norms of one block into one buffer (moe_norm).
	host []float32
}

// page is rows [row0, row0+rows) of a weight as a matrix of their own,
// from word base of buf.
type page struct {
	buf        *buffer
	row0, rows int
	base       uint32
}

func (w *weight) Shape() []int { return w.shape }
func (w *weight) Bytes() int64 { return w.bytes }

// prepare checks t and returns its weight (with no pages yet) and the
// bytes to store: the data itself, or f32 for vectors and formats the
// kernels do not read.
func prepare(t *tensor.Tensor) (*weight, []byte, error) {
	if err := t.Check(); err != nil {
		return nil, nil, fmt.Errorf("webgpu: upload: %w", err)
	}
	w := &weight{shape: append([]int(nil), t.Shape...), rows: t.Rows(), cols: t.Cols(), format: t.DType}
	keep := w.rows > 1
	switch t.DType {
	case tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K, tensor.MXFP4:
	default:
		keep = false
	}
	if !keep && t.DType != tensor.F32 {
		f, err := t.Float32s()
		if err != nil {
			return nil, nil, fmt.Errorf("webgpu: upload %s: %w", t.Name, err)
		}
		t = tensor.FromF32(t.Name, t.Shape, f)
		w.format = tensor.F32
	}
	return w, t.Data, nil
}

// uploadWeight puts t in buffers of its own, paging it when it exceeds
// MaxBinding.
func (d *Device) uploadWeight(t *tensor.Tensor) (*weight, error) {
	w, data, err := prepare(t)
	if err != nil {
		return nil, err
	}
	perPage := w.rows
	if uint64(len(data)) > d.MaxBinding {
		rowBytes, _ := tensor.ByteSize(w.format, 1, w.cols)
		perPage = int(d.MaxBinding / uint64(rowBytes+4))
		if perPage < 1 {
			return nil, fmt.Errorf("webgpu: upload %s: one row of %d bytes exceeds the %d-byte binding limit", t.Name, rowBytes, d.MaxBinding)
		}
	}
	for r0 := 0; r0 < w.rows; r0 += perPage {
		n := min(perPage, w.rows-r0)
		pd := data
		if n < w.rows {
			pd = rowRange(w.format, data, w.rows, w.cols, r0, n)
		}
		b, err := d.newBuffer(t.Name, uint64(len(pd)), wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc|wgpu.BufferUsageCopyDst)
		if err != nil {
			w.free()
			return nil, err
		}
		if err := d.write(b, 0, pad4(pd)); err != nil {
			b.Release()
			w.free()
			return nil, fmt.Errorf("webgpu: writing %s: %w", t.Name, err)
		}
		w.pages = append(w.pages, page{buf: b, row0: r0, rows: n})
		w.bytes += int64(b.size)
	}
	return w, nil
}

// free releases the buffers of a weight that has its own.
func (w *weight) free() {
	if w.pooled == nil {
		for _, p := range w.pages {
			p.buf.Release()
		}
	}
	w.pages = nil
}

func pad4(b []byte) []byte {
	if len(b)%4 == 0 {
		return b
	}
	return append(append([]byte(nil), b...), make([]byte, 4-len(b)%4)...)
}

func align4(n int) int { return (n + 3) &^ 3 }

// rowRange re-lays rows [r0, r0+n) of a [rows, cols] matrix in format f as
// a matrix of its own: for the block formats that means slicing each of
// the format's arrays (see runtime/tensor/quant.go) and re-padding them.
func rowRange(f tensor.DType, data []byte, rows, cols, r0, n int) []byte {
	switch f {
	case tensor.F32, tensor.F16:
		es := f.ElemSize()
		return data[r0*cols*es : (r0+n)*cols*es]
	case tensor.Q8_0, tensor.Q4_0:
		bpr, nb := cols/32, rows*cols/32
		qb := 32
		if f == tensor.Q4_0 {
			qb = 16
		}
		scales := data[2*r0*bpr : 2*(r0+n)*bpr]
		qs := data[align4(2*nb):]
		out := make([]byte, align4(len(scales)), align4(len(scales))+qb*n*bpr)
		copy(out, scales)
		return append(out, qs[qb*r0*bpr:qb*(r0+n)*bpr]...)
	case tensor.MXFP4:
		bpr, nb := cols/32, rows*cols/32
		scales := data[r0*bpr : (r0+n)*bpr]
		qs := data[align4(nb):]
		out := make([]byte, align4(len(scales)), align4(len(scales))+16*n*bpr)
		copy(out, scales)
		return append(out, qs[16*r0*bpr:16*(r0+n)*bpr]...)
	case tensor.Q4_K:
		spr, ns := cols/256, rows*cols/256
		var out []byte
		for _, a := range []struct{ off, size int }{{0, 4}, {4 * ns, 8}, {12 * ns, 8}, {20 * ns, 128}} {
			out = append(out, data[a.off+a.size*r0*spr:a.off+a.size*(r0+n)*spr]...)
		}
		return out
	}
	panic("webgpu: rowRange of " + f.String())
}
