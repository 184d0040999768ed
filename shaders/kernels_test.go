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
