package webgpu

import (
	"fmt"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/moderuntime/mode/runtime/tensor"
)

// checkSubgroups runs one small f32 matvec through the subgroup path and
// reports whether its sums are exact. lanes_sg.wgsl relies on subgroups
// being laid out along the local index, which WebGPU does not promise; on
// a device that lays them out otherwise its butterfly turns the sums into
// 1e38. Checking once at start-up, on integers whose sums are exact in any
// order, lets such a device fall back to workgroup memory instead of
// generating from wrong logits.
func (b *Backend) checkSubgroups() (bool, error) {
	const rows, cols = 16, 4 * shortRow // rows long enough for several lanes
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(i%7 - 3)
	}
	x := make([]float32, cols)
	for i := range x {
		x[i] = float32(i%5 - 2)
	}
	want := make([]float32, rows)
	for r := range rows {
		var s float32
		for c := range cols {
			s += w[r*cols+c] * x[c]
		}
		want[r] = s
	}
	wt, err := b.Upload(tensor.FromF32("subgroup check weights", []int{rows, cols}, w))
	if err != nil {
		return false, err
	}
	defer b.Free(wt)
	xt, err := b.Upload(tensor.FromF32("subgroup check input", []int{1, cols}, x))
	if err != nil {
		return false, err
	}
	defer b.Free(xt)
	usage := wgpu.BufferUsageStorage | wgpu.BufferUsageCopySrc | wgpu.BufferUsageCopyDst
	xb, err := b.d.newBuffer("subgroup check x", 4*cols, usage)
	if err != nil {
		return false, err
	}
	defer xb.Release()
	yb, err := b.d.newBuffer("subgroup check y", 4*rows, usage)
	if err != nil {
		return false, err
	}
	defer yb.Release()
	xv, yv := &buf{b: xb, rows: 1, cols: cols}, &buf{b: yb, rows: 1, cols: rows}
	b.Embed(xv, xt, []int{0})
	b.MatMul(yv, xv, wt, nil)
	got := make([]float32, rows)
	if err := b.Read(yv, got); err != nil {
		return false, fmt.Errorf("webgpu: subgroup check: %w", err)
	}
	for r := range rows {
		if got[r] != want[r] {
			return false, nil
		}
	}
	return true, nil
}
