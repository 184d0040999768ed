package shaders_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/shaders"
)

// TestMatVecNorm runs the matvec kernels with the RMSNorm fused in
// (MatVecNorm, MatVecGUNorm, MatVecMultiNorm) against rmsnorm's main
// followed by the plain kernel on the device, and against the twins
// (NormRowTwin, then the plain twin) within TestMatVec's bound. xn_on.wgsl
// repeats rmsnorm's arithmetic, so the normalised row MatVecNorm and
// MatVecGUNorm write to h must equal rmsnorm's output bit for bit; the
// products equal the unfused ones bit for bit on lavapipe for f32, f16,
// q8_0 and mxfp4, and within a few ulps for q4_0 and q4_k, whose dot
// products the compiler contracts differently when x comes from registers
// rather than memory: bound 1e-6 relative to max(1, |unfused|). Rows that do not fill a workgroup, several
// workgroups, the lane counts the backend uses (8, and 4 for adapters
// with subgroups of 4), ragged offsets, and both ways lanes meet where the
// device has subgroups (lanePaths; fused and unfused on the same path).
func TestMatVecNorm(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(31, 32))
	for _, f := range shaders.Formats {
		for _, c := range []struct{ rows, cols, L int }{{37, 256, 1}, {300, 512, 8}, {5, 1024, 8}, {70, 512, 4}} {
			if c.cols%shaders.MatVecUnit(f) != 0 {
				continue
			}
			for _, sg := range lanePaths(d, c.L) {
				t.Run(fmt.Sprintf("%v/%dx%d/L=%d%s", f, c.rows, c.cols, c.L, pathName(sg)), func(t *testing.T) {
					const xOff, nOff, hOff, eps = 8, 3, 5, 1e-5
					rows, cols := c.rows, c.cols
					w := append([]uint32{1, 2, 3}, weights(t, r, f, rows, cols)...)
					w2 := append([]uint32{9}, weights(t, r, f, rows, cols)...)
					w3 := weights(t, r, f, rows, cols)
					x := randn(r, xOff+cols, 2)
					nw := shaders.Bits(append(randn(r, nOff, 1), randn(r, cols, 0.3)...))
					// rmsnorm on the device: the reference for h and the input of
					// the plain kernels.
					np := shaders.RMSNormParams{Rows: 1, Cols: uint32(cols), Group: uint32(cols), XOff: xOff, XStride: uint32(cols),
						DstOff: xOff, DstStride: uint32(cols), Eps: eps, WOff: nOff}
					hn := make([]uint32, xOff+cols)
					if err := d.Run(shaders.RMSNorm, shaders.Spec{}, [3]uint32{1, 1, 1}, np.Words(), nw, shaders.Bits(x), hn); err != nil {
						t.Fatal(err)
					}
					xn := shaders.NormRowTwin(nw, nOff, eps, x, xOff, uint32(cols))
					spec, nspec := shaders.Spec{Format: f, L: c.L, Subgroups: sg}, shaders.Spec{Format: f, L: c.L, Norm: true, Subgroups: sg}
					per := shaders.MatVecGroupRows(shaders.MatVec, c.L)
					nx, ny := shaders.Grid((rows + per - 1) / per)
					p := shaders.MatMulParams{Rows: uint32(rows), Cols: uint32(cols), T: 1, XOff: xOff, XStride: uint32(cols),
						DstOff: 2, DstStride: uint32(rows), WBase: 3, NX: nx, W2Base: 1, NOff: nOff, Eps: eps, HOff: hOff}
					grid := [3]uint32{nx, ny, 1}
					for _, k := range []struct {
						name        string
						plain, norm shaders.Kernel
					}{{"main", shaders.MatVec, shaders.MatVecNorm}, {"gate_up", shaders.MatVecGU, shaders.MatVecGUNorm}} {
						want := make([]uint32, 2+rows)
						if err := d.Run(k.plain, spec, grid, p.Words(), w, hn, want, []uint32{0}, []uint32{0}, w2); err != nil {
							t.Fatal(err)
						}
						got, h := make([]uint32, len(want)), make([]uint32, hOff+cols)
						if err := d.Run(k.norm, nspec, grid, p.Words(), w, shaders.Bits(x), got, []uint32{0}, []uint32{0}, w2, nw, h); err != nil {
							t.Fatal(err)
						}
						closeTo(t, k.name, got, want)
						same(t, k.name+" h", h[hOff:], hn[xOff:])
						tw := make([]float32, len(want))
						if k.name == "main" {
							shaders.MatVecTwin(f, p, w, xn, tw, nil, nil)
						} else {
							shaders.MatVecGateUpTwin(f, p, w, w2, xn, tw)
						}
						near(t, k.name+" twin", shaders.Floats(got), tw, 1e-5)
					}
					mp := shaders.MatVecMultiParams{Rows: [3]uint32{uint32(rows), uint32(rows / 2), 3}, Base: [3]uint32{3, 1, 0}, DstOff: [3]uint32{1, 2, 0},
						Cols: uint32(cols), XOff: xOff, NOff: nOff, Eps: eps}
					mx, my := shaders.Grid(shaders.MatVecMultiGroups(mp.Rows, c.L))
					mp.NX = mx
					var want, got [3][]uint32
					for i := range 3 {
						want[i], got[i] = make([]uint32, 2+rows), make([]uint32, 2+rows)
					}
					if err := d.Run(shaders.MatVecMulti, spec, [3]uint32{mx, my, 1}, mp.Words(), w, hn, want[0], w2, w3, want[1], want[2]); err != nil {
						t.Fatal(err)
					}
					if err := d.Run(shaders.MatVecMultiNorm, nspec, [3]uint32{mx, my, 1}, mp.Words(), w, shaders.Bits(x), got[0], w2, w3, got[1], got[2], nw); err != nil {
						t.Fatal(err)
					}
					var tw [3][]float32
					for i := range 3 {
						tw[i] = make([]float32, 2+rows)
					}
					shaders.MatVecMultiTwin(f, mp, [3][]uint32{w, w2, w3}, xn, tw)
					for i := range 3 {
						closeTo(t, fmt.Sprintf("multi %d", i), got[i], want[i])
						near(t, fmt.Sprintf("multi %d twin", i), shaders.Floats(got[i]), tw[i], 1e-5)
					}
				})
			}
		}
	}
}

// same fails t unless got and want hold the same bits.
func same(t *testing.T, what string, got, want []uint32) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: word %d is %#08x, want %#08x (unfused)", what, i, got[i], want[i])
		}
	}
}

// closeTo fails t unless got is within 1e-6 of want relative to
// max(1, |want|), and logs how many words differ.
func closeTo(t *testing.T, what string, got, want []uint32) {
	t.Helper()
	n := 0
	for i := range want {
		if got[i] != want[i] {
			n++
		}
	}
	if n == 0 {
		t.Logf("%s: bit-equal to unfused", what)
		return
	}
	if d := diff(shaders.Floats(got), shaders.Floats(want)); d > 1e-6 {
		t.Fatalf("%s: %d words differ from unfused, by up to %.3g relative", what, n, d)
	}
	t.Logf("%s: %d of %d words differ from unfused (within 1e-6)", what, n, len(want))
}
