package shaders_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
	"github.com/moderuntime/mode/webgpu"
	"github.com/moderuntime/mode/webgpu/webgputest"
)

func randn(r *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(std * r.NormFloat64())
	}
	return v
}

// weights quantises a random [rows, cols] matrix to f and returns its words.
func weights(t *testing.T, r *rand.Rand, f tensor.DType, rows, cols int) []uint32 {
	t.Helper()
	src := tensor.FromF32("w", []int{rows, cols}, randn(r, rows*cols, 1/math.Sqrt(float64(cols))))
	q, err := tensor.Quantize(src, f)
	if err != nil {
		t.Fatal(err)
	}
	return shaders.Words(q.Data)
}

// near fails t unless |got−want| ≤ rel·max(1, |want|) elementwise.
func near(t *testing.T, what string, got, want []float32, rel float64) {
	t.Helper()
	worst := 0.0
	for i := range want {
		d := math.Abs(float64(got[i]-want[i])) / math.Max(1, math.Abs(float64(want[i])))
		if !(d <= rel) { // NaN fails too
			t.Fatalf("%s: element %d is %v, want %v (relative error %.3g > %.3g)", what, i, got[i], want[i], d, rel)
		}
		worst = max(worst, d)
	}
	t.Logf("%s: max relative error %.3g (bound %.3g)", what, worst, rel)
}

func dev(t *testing.T) *webgpu.Device { return webgputest.Device(t, webgpu.Options{}) }

func TestEmbed(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, f := range shaders.Formats {
		cols := 512
		if f == tensor.F32 || f == tensor.F16 {
			cols = 77 // not a multiple of the 32-element chunk
		}
		t.Run(f.String(), func(t *testing.T) {
			const rows = 9
			w := weights(t, r, f, rows, cols)
			ids := []uint32{3, 0, 8, 3, 5}
			p := shaders.EmbedParams{N: uint32(len(ids)), Cols: uint32(cols), Rows: rows, DstStride: uint32(cols) + 3}
			want := make([]float32, len(ids)*int(p.DstStride))
			shaders.EmbedTwin(f, p, w, ids, want)
			got := make([]uint32, len(want))
			grid := [3]uint32{uint32((cols+31)/32+63) / 64, uint32(len(ids)), 1}
			if err := d.Run(shaders.Embed, shaders.Spec{Format: f}, grid, p.Words(), w, ids, got); err != nil {
				t.Fatal(err)
			}
			near(t, "embed", shaders.Floats(got), want, 0) // a gather: exact
		})
	}
}

// TestMatMul covers decode (TT 1) and prefill (TT 8) specialisations with
// token counts and row counts that do not fill the last workgroup. Bound:
// 1e-5 relative to max(1, |dot|): the kernel and twin differ only in the
// order of a few hundred f32 additions of terms of size ~1/sqrt(cols).
func TestMatMul(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(3, 4))
	for _, f := range shaders.Formats {
		for _, tt := range []int{1, 8} {
			cols := 512
			if f == tensor.F32 || f == tensor.F16 {
				cols = 100
			}
			t.Run(fmt.Sprintf("%v/tt=%d", f, tt), func(t *testing.T) {
				rows, T := 37, 11
				if tt == 1 {
					T = 1
				}
				w := weights(t, r, f, rows, cols)
				x := randn(r, T*cols, 1)
				bias := shaders.Bits(randn(r, rows+3, 0.1))
				p := shaders.MatMulParams{Rows: uint32(rows), Cols: uint32(cols), T: uint32(T), XStride: uint32(cols),
					DstOff: 5, DstStride: uint32(rows) + 2, HasBias: true, BiasOff: 1, Row0: 2}
				nx, ny := shaders.Grid(rows)
				p.NX = nx
				want := make([]float32, 5+T*int(p.DstStride))
				shaders.MatMulTwin(f, p, w, x, want, bias)
				got := make([]uint32, len(want))
				grid := [3]uint32{nx, ny, uint32((T + tt - 1) / tt)}
				if err := d.Run(shaders.MatMul, shaders.Spec{Format: f, TT: tt}, grid, p.Words(), w, shaders.Bits(x), got, bias); err != nil {
					t.Fatal(err)
				}
				near(t, "matmul", shaders.Floats(got), want, 1e-5)
				// matvec_rows: same params, one invocation per row
				nx, ny = shaders.Grid((rows + 63) / 64)
				p.NX = nx
				clear(got)
				shaders.MatMulTwin(f, p, w, x, want, bias)
				if err := d.Run(shaders.MatVecRows, shaders.Spec{Format: f}, [3]uint32{nx, ny, uint32(T)}, p.Words(), w, shaders.Bits(x), got, bias); err != nil {
					t.Fatal(err)
				}
				near(t, "matvec_rows", shaders.Floats(got), want, 1e-5)
			})
		}
	}
}

// TestMatVec runs the decode matrix-vector kernel (main, with bias and
// the residual add, and gate_up) against its twins for every format and
// lane count, with row counts that do not fill a workgroup, rows whose
// units do not divide among the lanes (96 columns), tokens past the first
// and matrices at nonzero base words, with the lanes meeting in workgroup
// memory and, where the device allows (lanePaths), through subgroups.
// Bound as TestMatMul's: the kernel sums lanes' strided partials and
// blocks' sums before scaling, the twin element by element.
func TestMatVec(t *testing.T) {
	d := dev(t)
	logPaths(t, d)
	r := rand.New(rand.NewPCG(5, 6))
	for _, f := range shaders.Formats {
		for _, c := range []struct{ rows, cols, T, L int }{{37, 512, 1, 16}, {37, 512, 2, 1}, {70, 96, 1, 4}, {5, 256, 1, 64}, {64, 1024, 1, 8}, {9, 72, 1, 1}, {11, 172, 1, 16}, {41, 512, 2, 4}} {
			if c.cols%shaders.MatVecUnit(f) != 0 || f == tensor.Q4_K && c.cols%256 != 0 {
				continue
			}
			for _, sg := range lanePaths(d, c.L) {
				t.Run(fmt.Sprintf("%v/%dx%d/T=%d/L=%d%s", f, c.rows, c.cols, c.T, c.L, pathName(sg)), func(t *testing.T) {
					w := append([]uint32{1, 2, 3}, weights(t, r, f, c.rows, c.cols)...)
					w2 := append([]uint32{9}, weights(t, r, f, c.rows, c.cols)...)
					x := randn(r, c.T*c.cols+4, 1)
					bias := shaders.Bits(randn(r, c.rows+3, 0.1))
					res := randn(r, 7+c.T*(c.rows+3), 1)
					per := shaders.MatVecGroupRows(shaders.MatVec, c.L)
					nx, ny := shaders.Grid((c.rows + per - 1) / per)
					p := shaders.MatMulParams{Rows: uint32(c.rows), Cols: uint32(c.cols), T: uint32(c.T), XOff: 4, XStride: uint32(c.cols),
						DstOff: 5, DstStride: uint32(c.rows) + 2, WBase: 3, HasBias: true, BiasOff: 1, Row0: 2, NX: nx,
						AddRes: true, ResOff: 6, ResStride: uint32(c.rows) + 3, W2Base: 1}
					grid := [3]uint32{nx, ny, uint32(c.T)}
					spec := shaders.Spec{Format: f, L: c.L, Subgroups: sg}
					want := make([]float32, 5+c.T*int(p.DstStride))
					wantRes := append([]float32(nil), res...)
					shaders.MatVecTwin(f, p, w, x, want, bias, wantRes)
					for _, spec := range xSpecs(spec, len(x)) {
						got, gotRes := make([]uint32, len(want)), shaders.Bits(res)
						if err := d.Run(shaders.MatVec, spec, grid, p.Words(), w, shaders.Bits(x), got, bias, gotRes, w2); err != nil {
							t.Fatal(err)
						}
						near(t, "matvec"+xName(spec), shaders.Floats(got), want, 1e-5)
						near(t, "matvec residual"+xName(spec), shaders.Floats(gotRes), wantRes, 1e-5)
					}

					clear(want)
					per = shaders.MatVecGroupRows(shaders.MatVecGU, c.L)
					nx, ny = shaders.Grid((c.rows + per - 1) / per)
					p.NX = nx
					grid = [3]uint32{nx, ny, uint32(c.T)}
					shaders.MatVecGateUpTwin(f, p, w, w2, x, want)
					for _, spec := range xSpecs(spec, len(x)) {
						got := make([]uint32, len(want))
						if err := d.Run(shaders.MatVecGU, spec, grid, p.Words(), w, shaders.Bits(x), got, bias, make([]uint32, 1), w2); err != nil {
							t.Fatal(err)
						}
						near(t, "matvec gate_up"+xName(spec), shaders.Floats(got), want, 1e-5)
					}
				})
			}
		}
	}
}

// TestMatVecRagged runs matvec's main and gate_up against their twins on
// random shapes: row counts that leave the last workgroup's four-row lanes
// partly past the matrix, widths of any whole number of units (including
// fewer units than lanes), every lane count, random base words and
// offsets, on both ways lanes meet where the device allows. Bound as
// TestMatVec's.
func TestMatVecRagged(t *testing.T) {
	d := dev(t)
	logPaths(t, d)
	r := rand.New(rand.NewPCG(21, 22))
	lanes := []int{1, 2, 4, 8, 16, 64}
	for _, f := range shaders.Formats {
		unit := shaders.MatVecUnit(f)
		for i := range 6 {
			rows, cols, l := 1+r.IntN(300), unit*(1+r.IntN(max(1, 1536/unit))), lanes[r.IntN(len(lanes))]
			base, xoff := uint32(r.IntN(5)), 4*uint32(r.IntN(3))
			for _, sg := range lanePaths(d, l) {
				t.Run(fmt.Sprintf("%v/%d/%dx%d/L=%d%s", f, i, rows, cols, l, pathName(sg)), func(t *testing.T) {
					w := append(make([]uint32, base), weights(t, r, f, rows, cols)...)
					w2 := append(make([]uint32, base+1), weights(t, r, f, rows, cols)...)
					x := randn(r, cols+int(xoff), 1)
					bias := shaders.Bits(randn(r, rows, 0.1))
					per := shaders.MatVecGroupRows(shaders.MatVec, l)
					nx, ny := shaders.Grid((rows + per - 1) / per)
					p := shaders.MatMulParams{Rows: uint32(rows), Cols: uint32(cols), T: 1, XOff: xoff, XStride: uint32(cols),
						DstStride: uint32(rows), WBase: base, HasBias: r.IntN(2) == 1, NX: nx, W2Base: base + 1}
					want := make([]float32, rows)
					shaders.MatVecTwin(f, p, w, x, want, bias, nil)
					want2 := make([]float32, rows)
					shaders.MatVecGateUpTwin(f, p, w, w2, x, want2)
					for _, spec := range xSpecs(shaders.Spec{Format: f, L: l, Subgroups: sg}, len(x)) {
						got := make([]uint32, rows)
						if err := d.Run(shaders.MatVec, spec, [3]uint32{nx, ny, 1}, p.Words(), w, shaders.Bits(x), got, bias, make([]uint32, 1), w2); err != nil {
							t.Fatal(err)
						}
						near(t, "matvec"+xName(spec), shaders.Floats(got), want, 1e-5)
						clear(got)
						if err := d.Run(shaders.MatVecGU, spec, [3]uint32{nx, ny, 1}, p.Words(), w, shaders.Bits(x), got, bias, make([]uint32, 1), w2); err != nil {
							t.Fatal(err)
						}
						near(t, "matvec gate_up"+xName(spec), shaders.Floats(got), want2, 1e-5)
					}
				})
			}
		}
	}
}

// TestMatVecMulti runs matvec_multi against its twin with three matrices
// (q, k and v shapes whose rows straddle workgroups), two, and one, for
// every format and the lane counts the backend uses (1 for rows of 256,
// else 8, or 4 where the adapter's subgroups are 4 wide), on both ways
// lanes meet where the device allows.
func TestMatVecMulti(t *testing.T) {
	d := dev(t)
	logPaths(t, d)
	r := rand.New(rand.NewPCG(11, 12))
	for _, f := range shaders.Formats {
		for _, c := range []struct{ rows [3]int }{{[3]int{37, 13, 13}}, {[3]int{20, 9, 0}}, {[3]int{5, 0, 0}}} {
			for _, cl := range []struct{ cols, l int }{{256, 1}, {512, shaders.MatVecWide}, {1280, shaders.MatVecWide}, {512, 4}} {
				cols, l := cl.cols, cl.l
				for _, sg := range lanePaths(d, l) {
					t.Run(fmt.Sprintf("%v/%v/cols=%d/L=%d%s", f, c.rows, cols, l, pathName(sg)), func(t *testing.T) {
						p := shaders.MatVecMultiParams{Cols: uint32(cols), XOff: 4, Base: [3]uint32{2, 1, 0}}
						var ws [3][]uint32
						var want, got [3][]float32
						var gotw [3][]uint32
						total := 0
						for i, n := range c.rows {
							ws[i] = append(make([]uint32, p.Base[i]), weights(t, r, f, max(n, 1), cols)...)
							p.Rows[i], p.DstOff[i] = uint32(n), uint32(i+1)
							want[i] = make([]float32, n+i+1)
							gotw[i] = make([]uint32, n+i+1)
							total += n
						}
						x := randn(r, cols+4, 1)
						nx, ny := shaders.Grid(shaders.MatVecMultiGroups(p.Rows, l))
						p.NX = nx
						shaders.MatVecMultiTwin(f, p, ws, x, want)
						if err := d.Run(shaders.MatVecMulti, shaders.Spec{Format: f, L: l, Subgroups: sg}, [3]uint32{nx, ny, 1}, p.Words(),
							ws[0], shaders.Bits(x), gotw[0], ws[1], ws[2], gotw[1], gotw[2]); err != nil {
							t.Fatal(err)
						}
						for i := range 3 {
							got[i] = shaders.Floats(gotw[i])
							near(t, fmt.Sprintf("matrix %d", i), got[i], want[i], 1e-5)
						}
					})
				}
			}
		}
	}
}

// lanePaths are the ways matvec's lanes can meet on d with l lanes per
// row: in workgroup memory (false) always, and through subgroups (true)
// when the device has them and its smallest subgroup holds l lanes. With
// one lane there is nothing to meet.
func lanePaths(d *webgpu.Device, l int) []bool {
	if l > 1 && d.Subgroups && l <= d.SubgroupMin {
		return []bool{false, true}
	}
	return []bool{false}
}

// xSpecs is spec, and with one lane per row (where the backend binds x
// as a uniform) spec reading the n floats of x from a uniform binding.
func xSpecs(spec shaders.Spec, n int) []shaders.Spec {
	if spec.L != 1 || spec.Subgroups {
		return []shaders.Spec{spec}
	}
	u := spec
	u.XU = (n + 3) / 4
	return []shaders.Spec{spec, u}
}

func xName(spec shaders.Spec) string {
	if spec.XU != 0 {
		return " (x uniform)"
	}
	return ""
}

func pathName(sg bool) string {
	if sg {
		return "/subgroups"
	}
	return ""
}

// logPaths says which ways lanes meet the test runs on d, and why only
// one where that is so.
func logPaths(t *testing.T, d *webgpu.Device) {
	t.Helper()
	if d.Subgroups {
		t.Logf("lanes meet in workgroup memory and through subgroups (smallest subgroup %d: subgroup cases for up to %d lanes)", d.SubgroupMin, d.SubgroupMin)
		return
	}
	t.Logf("only the workgroup-memory path runs: no subgroups on this device: %s", d.SubgroupsNote)
}

// diff is the largest |got−want| relative to max(1, |want|).
func diff(got, want []float32) float64 {
	worst := 0.0
	for i := range want {
		worst = max(worst, math.Abs(float64(got[i]-want[i]))/math.Max(1, math.Abs(float64(want[i]))))
	}
	return worst
}

// TestGEMM runs the tiled prefill kernel against its twin for every
// format, with row and token counts that do not fill the 64×32 tile (and
// one that does), f32 and f16 rows of 100 columns (not a multiple of the
// 32-column chunk), the matrix at a nonzero base word (as pooled experts
// are) and a page's row offset. Bound 1e-5 relative to max(1, |dot|): the
// twin sums in the kernel's order, so only fused multiply-adds differ.
func TestGEMM(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(23, 24))
	for _, f := range shaders.Formats {
		for _, c := range []struct{ rows, T int }{{37, 11}, {130, 45}, {64, 32}} {
			cols := 512
			if f == tensor.F32 || f == tensor.F16 {
				cols = 100
			}
			t.Run(fmt.Sprintf("%v/%dx%d/T=%d", f, c.rows, cols, c.T), func(t *testing.T) {
				w := append([]uint32{1, 2, 3}, weights(t, r, f, c.rows, cols)...)
				x := randn(r, c.T*cols+4, 1)
				bias := shaders.Bits(randn(r, c.rows+3, 0.1))
				nx, ny := shaders.Grid((c.rows + 63) / 64)
				p := shaders.MatMulParams{Rows: uint32(c.rows), Cols: uint32(cols), T: uint32(c.T), XOff: 4, XStride: uint32(cols),
					DstOff: 5, DstStride: uint32(c.rows) + 2, WBase: 3, HasBias: true, BiasOff: 1, Row0: 2, NX: nx}
				want := make([]float32, 5+c.T*int(p.DstStride))
				shaders.GEMMTwin(f, p, w, x, want, bias)
				got := make([]uint32, len(want))
				grid := [3]uint32{nx, ny, uint32((c.T + 31) / 32)}
				if err := d.Run(shaders.GEMM, shaders.Spec{Format: f}, grid, p.Words(), w, shaders.Bits(x), got, bias); err != nil {
					t.Fatal(err)
				}
				near(t, "gemm", shaders.Floats(got), want, 1e-5)
			})
		}
	}
}

// TestF16Arith runs every kernel variant with f16 arithmetic (matmul for
// decode and batches, matvec_rows, gemm) against MatMulF16Twin, which
// rounds to f16 where the kernels compute in f16. Bound 2e-3 relative to
// max(1, |dot|): where the device fuses an f16 multiply-add it rounds once
// instead of twice, a difference of half an f16 ulp (2^-12 relative) of a
// product, and such differences in a chunk's 16 steps per lane carry into
// its partial sums (|partial| ≲ 1 here); the f32 sums over chunks differ
// only in order. Against the exact f32 result (MatMulTwin) the bound is
// 1e-2: x and each product and partial sum are rounded to f16, so each
// chunk carries a few f16 ulps of its partial sums, and the chunks' errors
// add up over up to 64 chunks. The kernels must also differ from the f32
// result by more than f32 rounding does, or they did not compute in f16.
// The bounds are derived, not yet measured: no device here compiles these
// kernels (see Device.F16Note), so this test skips until one does.
func TestF16Arith(t *testing.T) {
	d := dev(t)
	if !d.F16 {
		t.Skip("no f16 arithmetic on this device: " + d.F16Note)
	}
	r := rand.New(rand.NewPCG(25, 26))
	for _, c := range []struct {
		name           string
		k              shaders.Kernel
		tt             int
		rows, cols, T  int
		gx, gy, groups int
	}{
		{"matmul/decode", shaders.MatMul, 1, 37, 2048, 1, 0, 0, 37},
		{"matmul/tt=8", shaders.MatMul, 8, 37, 100, 11, 0, 0, 37},
		{"matvec_rows", shaders.MatVecRows, 0, 70, 100, 3, 0, 0, 2},
		{"gemm", shaders.GEMM, 0, 70, 2048, 45, 0, 0, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := append([]uint32{9}, weights(t, r, tensor.F16, c.rows, c.cols)...)
			x := randn(r, c.T*c.cols, 1)
			bias := shaders.Bits(randn(r, c.rows, 0.1))
			nx, ny := shaders.Grid(c.groups)
			p := shaders.MatMulParams{Rows: uint32(c.rows), Cols: uint32(c.cols), T: uint32(c.T), XStride: uint32(c.cols),
				DstStride: uint32(c.rows), WBase: 1, HasBias: true, NX: nx}
			want := make([]float32, c.T*c.rows)
			shaders.MatMulF16Twin(p, w, x, want, bias)
			exact := make([]float32, len(want))
			shaders.MatMulTwin(tensor.F16, p, w, x, exact, bias)
			z := c.T
			switch {
			case c.k.File == shaders.GEMM.File:
				z = (c.T + 31) / 32
			case c.tt > 0:
				z = (c.T + c.tt - 1) / c.tt
			}
			got := make([]uint32, len(want))
			spec := shaders.Spec{Format: tensor.F16, TT: c.tt, F16: true}
			if err := d.Run(c.k, spec, [3]uint32{nx, ny, uint32(z)}, p.Words(), w, shaders.Bits(x), got, bias); err != nil {
				t.Fatal(err)
			}
			near(t, c.name+" vs f16 twin", shaders.Floats(got), want, 2e-3)
			near(t, c.name+" vs f32", shaders.Floats(got), exact, 1e-2)
			if e := diff(shaders.Floats(got), exact); e < 1e-5 {
				t.Errorf("%s is within %.3g of the f32 result: no f16 rounding happened", c.name, e)
			}
		})
	}
}

// TestMatVecSubgroups runs matvec with the lanes the backend would use on
// this device (MatVecWide, or the smallest subgroup if narrower) on both
// ways lanes meet, for every format on a random ragged shape, and requires
// both within TestMatVec's bound of the twin and of each other: the
// subgroup butterfly adds the same lane partials in another order. Where
// the device has no subgroups it says why and runs nothing more than
// TestMatVec's workgroup-memory cases already did.
func TestMatVecSubgroups(t *testing.T) {
	d := dev(t)
	if !d.Subgroups {
		t.Skipf("only the workgroup-memory path can run here (TestMatVec, TestMatVecRagged, TestMatVecMulti, TestMatVecNorm ran it): %s", d.SubgroupsNote)
	}
	l := min(shaders.MatVecWide, d.SubgroupMin)
	r := rand.New(rand.NewPCG(41, 42))
	for _, f := range shaders.Formats {
		unit := shaders.MatVecUnit(f)
		rows, cols := 1+r.IntN(300), unit*(1+r.IntN(max(1, 2048/unit)))
		t.Run(fmt.Sprintf("%v/%dx%d/L=%d", f, rows, cols, l), func(t *testing.T) {
			w := weights(t, r, f, rows, cols)
			x := randn(r, cols, 1)
			per := shaders.MatVecGroupRows(shaders.MatVec, l)
			nx, ny := shaders.Grid((rows + per - 1) / per)
			p := shaders.MatMulParams{Rows: uint32(rows), Cols: uint32(cols), T: 1, XStride: uint32(cols), DstStride: uint32(rows), NX: nx}
			want := make([]float32, rows)
			shaders.MatVecTwin(f, p, w, x, want, nil, nil)
			var got [2][]uint32
			for i, sg := range []bool{false, true} {
				got[i] = make([]uint32, rows)
				if err := d.Run(shaders.MatVec, shaders.Spec{Format: f, L: l, Subgroups: sg}, [3]uint32{nx, ny, 1}, p.Words(),
					w, shaders.Bits(x), got[i], []uint32{0}, []uint32{0}, []uint32{0}); err != nil {
					t.Fatal(err)
				}
				near(t, "matvec"+pathName(sg), shaders.Floats(got[i]), want, 1e-5)
			}
			near(t, "subgroups against workgroup memory", shaders.Floats(got[1]), shaders.Floats(got[0]), 1e-5)
		})
	}
}
