package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/tensor"
)

// formats are the formats the CPU kernels compute from directly, plus f32.
var formats = []tensor.DType{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K}

func randomF32(r *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(std * r.NormFloat64())
	}
	return v
}

// quantized returns a rows×cols matrix of random weights stored as d, and
// its dequantised values.
func quantized(t testing.TB, r *rand.Rand, d tensor.DType, rows, cols int) (*tensor.Tensor, []float32) {
	t.Helper()
	q, err := tensor.Quantize(tensor.FromF32("w", []int{rows, cols}, randomF32(r, rows*cols, 1/math.Sqrt(float64(cols)))), d)
	if err != nil {
		t.Fatal(err)
	}
	deq, err := q.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return q, deq
}

// TestMatMulFormats compares MatMul over a weight in each format with a
// float64 product of its dequantised values, for an output count that is
// not a multiple of four (so the tail rows run too), several tokens and a
// bias; on the exact path on one goroutine, several, and the naive loop,
// which must all agree bit for bit.
func TestMatMulFormats(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const out, in, tokens = 13, 512, 5
	x := randomF32(r, tokens*in, 1)
	bias := randomF32(r, out, 0.1)
	for _, d := range formats {
		t.Run(d.String(), func(t *testing.T) {
			q, deq := quantized(t, r, d, out, in)
			var first []float32
			for _, o := range []Options{{Threads: 1, Exact: true}, {Threads: 3, Exact: true}, {Naive: true}} {
				b := New(o)
				w, err := b.Upload(q)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := w.Bytes(), int64(len(q.Data)); d != tensor.F32 && got != want {
					t.Errorf("Bytes() = %d, want the stored %d", got, want)
				}
				xb, _ := b.NewBuf(tokens, in)
				copy(xb.(*buf).f, x)
				dst, _ := b.NewBuf(tokens, out)
				b.MatMul(dst, xb, w, up(t, b, []int{out}, bias...))
				got := dst.(*buf).f
				for tk := range tokens {
					for i := range out {
						want, mag := float64(bias[i]), math.Abs(float64(bias[i]))
						for j := range in {
							p := float64(deq[i*in+j]) * float64(x[tk*in+j])
							want += p
							mag += math.Abs(p)
						}
						if diff := math.Abs(float64(got[tk*out+i]) - want); diff > 1e-5*mag {
							t.Fatalf("%+v: token %d row %d = %v, want %v", o, tk, i, got[tk*out+i], want)
						}
					}
				}
				if first == nil {
					first = append([]float32(nil), got...)
				} else if !equal(first, got) {
					t.Errorf("%+v differs from one goroutine", o)
				}
			}
		})
	}
}

func equal(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// TestEmbedFormats gathers rows of a table in each format and expects the
// dequantised rows exactly.
func TestEmbedFormats(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const vocab, dim = 10, 256
	ids := []int{3, 0, 9, 3}
	for _, d := range formats {
		t.Run(d.String(), func(t *testing.T) {
			q, deq := quantized(t, r, d, vocab, dim)
			b := New(Options{})
			w, err := b.Upload(q)
			if err != nil {
				t.Fatal(err)
			}
			dst, _ := b.NewBuf(len(ids), dim)
			b.Embed(dst, w, ids)
			for i, id := range ids {
				if !equal(dst.(*buf).row(i), deq[id*dim:(id+1)*dim]) {
					t.Errorf("row %d (id %d) differs from the dequantised table", i, id)
				}
			}
		})
	}
}

// TestUploadVectors: vectors are decoded to float32 whatever their format,
// since the elementwise ops index them directly.
func TestUploadVectors(t *testing.T) {
	v := []float32{1, -2, 0.5, 4}
	for i := 0; len(v) < 256; i++ {
		v = append(v, float32(i%7))
	}
	for _, d := range formats {
		for _, shape := range [][]int{{256}, {1, 256}} {
			t.Run(fmt.Sprint(d, shape), func(t *testing.T) {
				q, err := tensor.Quantize(tensor.FromF32("norm", shape, v), d)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := q.Float32s()
				w, err := New(Options{}).Upload(q)
				if err != nil {
					t.Fatal(err)
				}
				if cw := w.(*weight); cw.m != nil || !equal(cw.f, want) || w.Bytes() != 4*256 {
					t.Errorf("vector kept as %v (%d bytes), want decoded float32", cw.m, w.Bytes())
				}
			})
		}
	}
}

// TestUploadErrors: malformed tensors are refused with an error naming
// them and saying what is wrong.
func TestUploadErrors(t *testing.T) {
	tests := []struct {
		name string
		t    *tensor.Tensor
		want []string
	}{
		{"truncated q8_0", &tensor.Tensor{Name: "layers.0.wq", DType: tensor.Q8_0, Shape: []int{4, 32}, Data: make([]byte, 135)}, []string{"layers.0.wq", "needs 136 bytes, has 135"}},
		{"truncated q4_k", &tensor.Tensor{Name: "layers.1.wk", DType: tensor.Q4_K, Shape: []int{2, 256}, Data: make([]byte, 200)}, []string{"layers.1.wk", "needs 296 bytes"}},
		{"truncated f16", &tensor.Tensor{Name: "output", DType: tensor.F16, Shape: []int{2, 3}, Data: make([]byte, 11)}, []string{"output", "needs 12 bytes, has 11"}},
		{"cols not a block multiple", &tensor.Tensor{Name: "layers.0.wo", DType: tensor.Q4_0, Shape: []int{2, 40}, Data: make([]byte, 48)}, []string{"layers.0.wo", "multiple of 32 columns, have 40"}},
		{"cols not a super-block multiple", &tensor.Tensor{Name: "layers.0.wv", DType: tensor.Q4_K, Shape: []int{2, 288}, Data: make([]byte, 296)}, []string{"layers.0.wv", "multiple of 256 columns, have 288"}},
		{"unknown dtype", &tensor.Tensor{Name: "embed", DType: tensor.DType(200), Shape: []int{2, 32}, Data: make([]byte, 64)}, []string{"embed", "200"}},
		{"zero columns", &tensor.Tensor{Name: "norm", DType: tensor.F32, Shape: []int{4, 0}}, []string{"norm", "bad shape [4 0]"}},
		{"short f32", &tensor.Tensor{Name: "norm", DType: tensor.F32, Shape: []int{4}, Data: make([]byte, 12)}, []string{"norm", "needs 16 bytes, has 12"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{}).Upload(tt.t)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestExpertFormats runs a SwiGLU expert whose matrices are quantised and
// compares it with the same expert over the dequantised matrices in f32, on
// the exact path.
func TestExpertFormats(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const dim, width, tokens = 256, 512, 3
	x := randomF32(r, tokens*dim, 1)
	for _, d := range formats[1:] {
		t.Run(d.String(), func(t *testing.T) {
			b := New(Options{Threads: 2, Exact: true})
			var qe, fe backend.Expert
			for _, p := range []struct {
				q, f       *backend.Weight
				rows, cols int
			}{{&qe.Gate, &fe.Gate, width, dim}, {&qe.Up, &fe.Up, width, dim}, {&qe.Down, &fe.Down, dim, width}} {
				q, deq := quantized(t, r, d, p.rows, p.cols)
				var err error
				if *p.q, err = b.Upload(q); err != nil {
					t.Fatal(err)
				}
				*p.f = up(t, b, []int{p.rows, p.cols}, deq...)
			}
			got := append([]float32(nil), b.expert(x, tokens, dim, &qe, &backend.FFN{NormEps: 1e-5}, -1)...) // scratch, reused by the next call
			want := b.expert(x, tokens, dim, &fe, &backend.FFN{NormEps: 1e-5}, -1)
			for i := range want {
				if diff := math.Abs(float64(got[i] - want[i])); diff > 1e-4*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("output %d = %v, f32 over the dequantised weights gives %v", i, got[i], want[i])
				}
			}
		})
	}
}
