package webgpu

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/cogentcore/webgpu/wgpu"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/shaders"
)

// Argmax returns the index of the largest value of x's first row (the
// lowest among equals), computed on the device: greedy decoding then reads
// back 4 bytes per token instead of the whole logits row
// (backend.Argmaxer).
func (b *Backend) Argmax(x backend.Buf) (int, error) {
	p := x.(*buf)
	out, err := b.s.pool.get("argmax", 4, wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc|wgpu.BufferUsageCopyDst)
	if err != nil {
		return 0, err
	}
	defer b.s.pool.put(out)
	if b.fuseArgmax(p, out) {
		data, err := b.s.read(out, 0, 4)
		if err != nil {
			return 0, err
		}
		f := math.Float32frombits(binary.LittleEndian.Uint32(data))
		if !(f >= 0 && f < float32(p.cols)) || f != float32(int(f)) {
			return 0, fmt.Errorf("webgpu: head_argmax returned %v for %d values", f, p.cols)
		}
		return int(f), nil
	}
	b.s.run(shaders.Argmax, shaders.Spec{}, [3]uint32{1, 1, 1}, shaders.ArgmaxParams{N: u(p.cols), Off: u(p.off)}.Words(),
		bufArg(p.b), bufArg(out))
	data, err := b.s.read(out, 0, 4)
	if err != nil {
		return 0, err
	}
	id := int(binary.LittleEndian.Uint32(data))
	if id < 0 || id >= p.cols {
		return 0, fmt.Errorf("webgpu: argmax returned %d for %d values", id, p.cols)
	}
	return id, nil
}

// headArgmaxMaxGroups is the most workgroups of rows a head may have for
// Argmax to redo it as head_argmax, which computes every row in one
// workgroup and then their argmax: one dispatch instead of two, but one
// workgroup where there were several. stories260K's head (512 rows of 64
// columns, one lane per row) is 2.
const headArgmaxMaxGroups = 2

// fuseArgmax records head_argmax over x by redoing the last dispatch, when
// it is a one-page, one-token matvec main (with or without the RMSNorm
// taken in) that wrote exactly x, with no bias and no residual add, of at
// most headArgmaxMaxGroups workgroups: the rows' values are main's and the
// index argmax.wgsl's over them (shaders.TestMatVecArgmax), written to out
// as an f32. It reports whether it did.
func (b *Backend) fuseArgmax(x *buf, out *buffer) bool {
	l := b.last
	n := len(b.s.ops)
	if b.oldMatVec || b.unfused || b.s.err != nil || n == 0 || l.op != n-1 || l.submits != b.s.submits ||
		l.k.File != shaders.MatVec.File || l.k.Entry != shaders.MatVec.Entry || l.hasBias || l.res || l.dst == nil ||
		*l.dst != *x || x.rows != 1 || l.x.rows != 1 || l.pg.row0 != 0 || l.pg.rows != l.w.rows {
		return false
	}
	lanes := b.matVecLanes(l.w.cols)
	if ceilDiv(l.w.rows, shaders.MatVecGroupRows(shaders.MatVec, lanes)) > headArgmaxMaxGroups {
		return false
	}
	b.s.ops = b.s.ops[:n-1]
	b.s.byFile[l.k.File]--
	pg := l.pg
	p := shaders.MatMulParams{Rows: u(pg.rows), Cols: u(l.w.cols), T: 1, XOff: u(l.x.off), XStride: u(l.x.cols),
		DstOff: u(x.off), DstStride: u(x.cols), WBase: pg.base, NX: 1, W2Base: pg.base}
	k, spec, xb := shaders.MatVecArgmax, b.matVecSpec(l.w.format, lanes), l.x.b
	var extra []arg
	if nm := l.norm; nm != nil {
		k, spec.Norm, xb = shaders.MatVecArgmaxNorm, true, nm.x.b
		p.XOff, p.XStride, p.NOff, p.Eps, p.HOff = u(nm.x.off), u(nm.x.cols), nm.base, nm.eps, u(nm.h.off)
		extra = []arg{bufArg(nm.w), bufArg(nm.h.b)}
	}
	b.s.run(k, spec, [3]uint32{1, 1, 1}, p.Words(),
		append([]arg{bufArg(pg.buf), bufArg(xb), bufArg(x.b), bufArg(b.zero), bufArg(out), bufArg(pg.buf)}, extra...)...)
	b.last = lastMatVec{op: -1}
	return true
}
