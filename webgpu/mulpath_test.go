package webgpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

// TestMulPath pins the kernel MatMul picks for a batch per adapter class,
// format, batch size and row width: the crossovers BenchmarkPrefill
// measured (RATIONALE.md, "WebGPU: prefill through matvec on a CPU
// adapter"). It needs no device: the rule reads only the backend's
// settings and the device's description.
func TestMulPath(t *testing.T) {
	type adapter struct {
		name string
		d    *Device
	}
	// lavapipe natively: a CPU adapter whose matvec runs one lane per row.
	lavapipe := adapter{"lavapipe", &Device{Adapter: AdapterInfo{Name: "llvmpipe", Software: true}}}
	// SwiftShader in the browser: a CPU adapter whose lanes meet through
	// subgroups.
	swiftshader := adapter{"swiftshader", &Device{Adapter: AdapterInfo{Name: "SwiftShader", Software: true}, Subgroups: true, SubgroupMin: 4}}
	gpu := adapter{"gpu", &Device{Adapter: AdapterInfo{Name: "GPU"}, Subgroups: true, SubgroupMin: 32}}
	gpuNoSG := adapter{"gpu-nosubgroups", &Device{Adapter: AdapterInfo{Name: "GPU"}}}
	cpus := []adapter{lavapipe, swiftshader}
	gpus := []adapter{gpu, gpuNoSG}
	quant := []tensor.DType{tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K}

	type tc struct {
		a     adapter
		f     tensor.DType
		t     int
		cols  int
		f16   bool // MatMul's f16 arithmetic
		want  mulPath
		about string
	}
	var cases []tc
	for _, a := range cpus {
		for _, cols := range []int{256, 512, 1024, 4096} {
			for _, f := range quant {
				cases = append(cases,
					tc{a, f, 1, cols, false, pathMatVec, "decode"},
					tc{a, f, 16, cols, false, pathMatVec, "block formats and f16 to matvec up to 512 tokens"},
					tc{a, f, 512, cols, false, pathMatVec, "block formats and f16 to matvec up to 512 tokens"},
				)
			}
			cases = append(cases,
				tc{a, tensor.F32, 16, cols, false, pathMatVec, "f32 to matvec up to 16 tokens"},
				tc{a, tensor.F16, 64, cols, true, gemmOrRows(64, cols, tensor.F16), "f16 arithmetic: matvec has only the f32 path"},
			)
		}
		cases = append(cases,
			tc{a, tensor.F32, 17, 1024, false, pathGEMM, "f32 past 16 tokens: gemm"},
			tc{a, tensor.F32, 512, 4096, false, pathGEMM, "f32 past 16 tokens: gemm"},
			tc{a, tensor.F32, 32, 256, false, pathGEMM, "f32 short rows past 16 tokens: gemm"},
			tc{a, tensor.Q4_0, 513, 1024, false, pathGEMM, "past 512 tokens: the GPU rule"},
			tc{a, tensor.Q4_K, 513, 256, false, pathRows, "past 512 tokens: the GPU rule (short q4_k rows: matvec_rows)"},
		)
	}
	for _, a := range gpus {
		for _, f := range append([]tensor.DType{tensor.F32}, quant...) {
			cases = append(cases,
				tc{a, f, 1, 1024, false, pathMatVec, "decode"},
				tc{a, f, 2, 1024, false, pathMatMul, "a batch up to 8 tokens: matmul"},
				tc{a, f, 8, 1024, false, pathMatMul, "a batch up to 8 tokens: matmul"},
				tc{a, f, 9, 1024, false, pathGEMM, "past 8 tokens: gemm"},
				tc{a, f, 512, 4096, false, pathGEMM, "past 8 tokens: gemm"},
				tc{a, f, 8, 256, false, pathRows, "short rows below 16 tokens: matvec_rows"},
			)
		}
		cases = append(cases,
			tc{a, tensor.Q4_0, 16, 256, false, pathGEMM, "short rows from 16 tokens: gemm"},
			tc{a, tensor.Q4_K, 64, 256, false, pathRows, "short q4_k rows: matvec_rows"},
		)
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%v/T=%d/%d/f16arith=%v", c.a.name, c.f, c.t, c.cols, c.f16), func(t *testing.T) {
			b := &Backend{d: c.a.d, subgroups: c.a.d.Subgroups}
			x := &buf{rows: c.t, cols: c.cols}
			w := &weight{rows: 1024, cols: c.cols, format: c.f}
			if got := b.mulPath(x, w, shaders.Spec{Format: c.f, F16: c.f16}); got != c.want {
				t.Errorf("path %v, want %v (%s)", got, c.want, c.about)
			}
		})
	}
}

// gemmOrRows is the path a batch that cannot take matvec goes to when
// gemm's rule does not apply (see useGEMM).
func gemmOrRows(t, cols int, f tensor.DType) mulPath {
	if cols > shortRow {
		if t > 8 {
			return pathGEMM
		}
		return pathMatMul
	}
	if t >= 16 && f != tensor.Q4_K {
		return pathGEMM
	}
	return pathRows
}

func (p mulPath) String() string {
	switch p {
	case pathMatVec:
		return "matvec"
	case pathGEMM:
		return "gemm"
	case pathRows:
		return "matvec_rows"
	case pathMatMul:
		return "matmul"
	}
	return fmt.Sprintf("mulPath(%d)", int(p))
}

// TestMatVecChunks: a batch of more tokens than a uniform binding of x
// holds goes to matvec in chunks that each read x through a uniform
// (xuTokens), as many dispatches as chunks, and the products are bit for
// bit those of one dispatch reading x from storage (the same sums in the
// same order).
func TestMatVecChunks(t *testing.T) {
	d, err := OpenDevice(Options{})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip("no WebGPU adapter: ", err)
	}
	g, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	g.own = true
	defer g.Close()
	const rows, cols, T = 72, 1024, 40
	r := rand.New(rand.NewPCG(5, 6))
	xs := make([]float32, T*cols)
	for i := range xs {
		xs[i] = float32(r.NormFloat64())
	}
	table, err := g.Upload(tensor.FromF32("x", []int{T, cols}, xs))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, T)
	for i := range ids {
		ids[i] = i
	}
	for _, f := range []tensor.DType{tensor.F32, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K} {
		t.Run(f.String(), func(t *testing.T) {
			ws := make([]float32, rows*cols)
			for i := range ws {
				ws[i] = float32(r.NormFloat64() / 32)
			}
			q, err := tensor.Quantize(tensor.FromF32("w", []int{rows, cols}, ws), f)
			if err != nil {
				t.Fatal(err)
			}
			w, err := g.Upload(q)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Free(w)
			x, _ := g.NewBuf(T, cols)
			y, _ := g.NewBuf(T, rows)
			g.Embed(x, table, ids)
			g.matVecTokens = T
			defer func() { g.matVecTokens, g.noUniformX = 0, false }()
			n := g.xuTokens(y.(*buf), x.(*buf), w.(*weight))
			if g.matVecLanes(cols) == 1 && n >= T {
				t.Fatalf("%d-token chunks: a one-lane matvec of %d tokens of %d columns fits no uniform binding", n, T, cols)
			}
			before := g.s.byFile[shaders.MatVec.File]
			g.MatMul(y, x, w, nil)
			if got, want := g.s.byFile[shaders.MatVec.File]-before, (T+n-1)/n; got != want {
				t.Errorf("%d matvec dispatches, want %d (%d-token chunks)", got, want, n)
			}
			chunked := make([]float32, T*rows)
			if err := g.Read(y, chunked); err != nil {
				t.Fatal(err)
			}
			g.noUniformX = true
			g.MatMul(y, x, w, nil)
			whole := make([]float32, T*rows)
			if err := g.Read(y, whole); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d-token chunks", n)
			for i := range whole {
				if math.Float32bits(whole[i]) != math.Float32bits(chunked[i]) {
					t.Fatalf("token %d row %d: chunked %v, one dispatch %v", i/rows, i%rows, chunked[i], whole[i])
				}
			}
		})
	}
}
