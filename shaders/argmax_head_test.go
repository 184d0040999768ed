package shaders_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

// TestMatVecArgmax runs head_argmax (MatVecArgmax, and MatVecArgmaxNorm
// with the RMSNorm on the way in) in one workgroup over heads of one to
// several tiles, ragged row counts and the lane counts the backends use,
// on both ways lanes meet where the device has subgroups. Two rows hold
// the same weights, aligned with x so that they are the largest: the
// index must be the first of them (argmax.wgsl's lowest among equals)
// and equal ArgmaxTwin over the values the kernel wrote, and the twin
// (MatVecArgmaxTwin) must find the same row. The values must be main's
// (MatVec or MatVecNorm with the same specialisation) within closeTo's
// 1e-6, and the twin's within TestMatVec's 1e-5; the normalised row is
// MatVecNorm's bit for bit.
func TestMatVecArgmax(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(51, 52))
	for _, f := range shaders.Formats {
		for _, c := range []struct{ rows, cols, L int }{{1, 256, 1}, {37, 256, 1}, {601, 256, 1}, {300, 512, 8}, {70, 512, 4}, {97, 1024, 1}} {
			if c.cols%shaders.MatVecUnit(f) != 0 {
				continue
			}
			for _, norm := range []bool{false, true} {
				for _, sg := range lanePaths(d, c.L) {
					name := fmt.Sprintf("%v/%dx%d/L=%d%s", f, c.rows, c.cols, c.L, pathName(sg))
					if norm {
						name += "/norm"
					}
					t.Run(name, func(t *testing.T) {
						const xOff, nOff, hOff, dstOff, resOff, wBase, eps = 8, 3, 5, 2, 1, 3, 1e-5
						rows, cols := c.rows, c.cols
						x := randn(r, xOff+cols, 2)
						nw := shaders.Bits(append(randn(r, nOff, 1), randn(r, cols, 0.3)...))
						xn := x
						if norm {
							xn = shaders.NormRowTwin(nw, nOff, eps, x, xOff, uint32(cols))
						}
						// Rows first and rows-1 hold the signs of the normalised x:
						// the largest value, the same in both.
						first := rows / 3
						wf := randn(r, rows*cols, 1/math.Sqrt(float64(cols)))
						for _, row := range []int{first, rows - 1} {
							for i := range cols {
								wf[row*cols+i] = float32(0.5 * math.Copysign(1, float64(xn[xOff+i])))
							}
						}
						q, err := tensor.Quantize(tensor.FromF32("w", []int{rows, cols}, wf), f)
						if err != nil {
							t.Fatal(err)
						}
						w := append([]uint32{1, 2, 3}, shaders.Words(q.Data)...)
						spec := shaders.Spec{Format: f, L: c.L, Subgroups: sg, Norm: norm}
						p := shaders.MatMulParams{Rows: uint32(rows), Cols: uint32(cols), T: 1, XOff: xOff, XStride: uint32(cols),
							DstOff: dstOff, DstStride: uint32(rows), WBase: wBase, NX: 1, ResOff: resOff, NOff: nOff, Eps: eps, HOff: hOff}
						got, res, h := make([]uint32, dstOff+rows), make([]uint32, resOff+1), make([]uint32, hOff+cols)
						k, plain := shaders.MatVecArgmax, shaders.MatVec
						args := [][]uint32{w, shaders.Bits(x), got, []uint32{0}, res, []uint32{0}}
						if norm {
							k, plain = shaders.MatVecArgmaxNorm, shaders.MatVecNorm
							args = append(args, nw, h)
						}
						if err := d.Run(k, spec, [3]uint32{1, 1, 1}, p.Words(), args...); err != nil {
							t.Fatal(err)
						}
						idx := shaders.Floats(res)[resOff]
						if idx != float32(first) {
							t.Fatalf("index %v, want %d (the first of two equal largest rows)", idx, first)
						}
						if own := shaders.ArgmaxTwin(shaders.ArgmaxParams{N: uint32(rows), Off: dstOff}, shaders.Floats(got)); own != uint32(first) {
							t.Fatalf("argmax of the values it wrote is %d, it returned %d", own, first)
						}
						// main over the same rows, as many workgroups as it needs.
						per := shaders.MatVecGroupRows(shaders.MatVec, c.L)
						nx, ny := shaders.Grid((rows + per - 1) / per)
						mp := p
						mp.NX = nx
						want, wh := make([]uint32, dstOff+rows), make([]uint32, hOff+cols)
						margs := [][]uint32{w, shaders.Bits(x), want, []uint32{0}, []uint32{0}, []uint32{0}}
						if norm {
							margs = append(margs, nw, wh)
						}
						if err := d.Run(plain, spec, [3]uint32{nx, ny, 1}, mp.Words(), margs...); err != nil {
							t.Fatal(err)
						}
						closeTo(t, "values", got, want)
						if norm {
							same(t, "h", h, wh)
						}
						tw := make([]float32, dstOff+rows)
						if ti := shaders.MatVecArgmaxTwin(f, p, w, xn, tw); ti != uint32(first) {
							t.Fatalf("twin's index %d, want %d", ti, first)
						}
						near(t, "twin", shaders.Floats(got)[dstOff:], tw[dstOff:], 1e-5)
					})
				}
			}
		}
	}
}
