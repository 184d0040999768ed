package webgpu_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/sample"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/webgpu"
)

// TestArgmax: the device argmax equals the host's on random rows of sizes
// around the workgroup size, and picks the lowest index among equals.
func TestArgmax(t *testing.T) {
	b := newBackend(t, webgpu.Options{})
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 255, 256, 257, 1000, 32000} {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.IntN(50)) // many ties
		}
		x, err := b.NewBuf(1, n)
		if err != nil {
			t.Fatal(err)
		}
		w, err := b.Upload(tensor.FromF32("v", []int{1, n}, v))
		if err != nil {
			t.Fatal(err)
		}
		b.Embed(x, w, []int{0})
		got, err := b.Argmax(x)
		if err != nil {
			t.Fatal(err)
		}
		if want := (engine.Greedy{}).Sample(v, nil); got != want {
			t.Errorf("n=%d: device argmax %d, host %d", n, got, want)
		}
	}
}

// TestHeadArgmax: Argmax right after a head's matvec redoes the two as
// one head_argmax dispatch (fewer dispatches than the head and argmax
// alone, counted by kernel file), and the index equals the host's argmax
// of the logits the same dispatch wrote (read back afterwards), which are
// the matvec's within TestMatVec's bound; heads of ragged sizes in f32
// and q4_0, with planted equal largest rows, so the lowest index must
// win, and a head too large to fuse takes the argmax kernel.
func TestHeadArgmax(t *testing.T) {
	b := newBackend(t, webgpu.Options{})
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		rows, cols int
		f          tensor.DType
		fused      bool
	}{{1, 64, tensor.F32, true}, {301, 64, tensor.F32, true}, {512, 64, tensor.F32, true}, {97, 256, tensor.Q4_0, true}, {5000, 64, tensor.F32, false}} {
		w := make([]float32, c.rows*c.cols)
		for i := range w {
			w[i] = float32(r.NormFloat64() * 0.1)
		}
		xv := make([]float32, c.cols)
		for i := range xv {
			xv[i] = float32(r.NormFloat64())
		}
		first := c.rows / 2
		for _, row := range []int{first, c.rows - 1} {
			for i := range c.cols {
				w[row*c.cols+i] = 0.5
				if xv[i] < 0 {
					w[row*c.cols+i] = -0.5
				}
			}
		}
		wt, err := tensor.Quantize(tensor.FromF32("head", []int{c.rows, c.cols}, w), c.f)
		if err != nil {
			t.Fatal(err)
		}
		hw, err := b.Upload(wt)
		if err != nil {
			t.Fatal(err)
		}
		xw, err := b.Upload(tensor.FromF32("x", []int{1, c.cols}, xv))
		if err != nil {
			t.Fatal(err)
		}
		x, _ := b.NewBuf(1, c.cols)
		logits, _ := b.NewBuf(1, c.rows)
		b.Embed(x, xw, []int{0})
		before := webgpu.Dispatches(b, "matvec.wgsl") + webgpu.Dispatches(b, "argmax.wgsl")
		b.MatMul(logits, x, hw, nil)
		got, err := b.Argmax(logits)
		if err != nil {
			t.Fatal(err)
		}
		n := webgpu.Dispatches(b, "matvec.wgsl") + webgpu.Dispatches(b, "argmax.wgsl") - before
		if want := map[bool]int{true: 1, false: 2}[c.fused]; n != want {
			t.Errorf("%dx%d %v: %d dispatches for the head and argmax, want %d", c.rows, c.cols, c.f, n, want)
		}
		v := make([]float32, c.rows)
		if err := b.Read(logits, v); err != nil {
			t.Fatal(err)
		}
		if want := (engine.Greedy{}).Sample(v, nil); got != want || got != first {
			t.Errorf("%dx%d %v: device index %d, host argmax of its logits %d, planted %d", c.rows, c.cols, c.f, got, want, first)
		}
	}
}

// TestGreedyGenerate: Generate with a greedy sampler, which takes the
// argmax on the device, gives the CPU backend's tokens for stories260K.
func TestGreedyGenerate(t *testing.T) {
	m, err := llama2c.Load(filepath.Join(shared.Models(t), "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	gen := func(e *engine.Engine) []int {
		var out []int
		if _, err := e.Generate(context.Background(), []int{1}, engine.GenerateOptions{MaxTokens: 40},
			func(id int) error { out = append(out, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	ce, err := engine.New(cpu.New(cpu.Options{Exact: true}), m, engine.Options{MaxSeq: 64})
	if err != nil {
		t.Fatal(err)
	}
	ge, err := engine.New(newBackend(t, webgpu.Options{}), m, engine.Options{MaxSeq: 64})
	if err != nil {
		t.Fatal(err)
	}
	if c, g := gen(ce), gen(ge); !slices.Equal(c, g) {
		t.Fatalf("gpu %v\ncpu %v", g, c)
	}
}

// TestSampledGenerate: with temperature and top-k the draw happens on the
// device, and the tokens equal the CPU backend's host sampler with the same
// seed (the kernel follows sample.Sampler's stream draw for draw).
func TestSampledGenerate(t *testing.T) {
	m, err := llama2c.Load(filepath.Join(shared.Models(t), "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	p := sample.Params{Temperature: 0.9, TopK: 40, TopP: 0.95, Seed: 7}
	gen := func(e *engine.Engine) []int {
		s, err := sample.New(p)
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		if _, err := e.Generate(context.Background(), []int{1}, engine.GenerateOptions{MaxTokens: 40, Sampler: s},
			func(id int) error { out = append(out, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	gpu := newBackend(t, webgpu.Options{})
	if !gpu.CanSample(p) {
		t.Fatal("the kernel should handle these parameters")
	}
	ce, _ := engine.New(cpu.New(cpu.Options{Exact: true}), m, engine.Options{MaxSeq: 64})
	ge, _ := engine.New(gpu, m, engine.Options{MaxSeq: 64})
	if c, g := gen(ce), gen(ge); !slices.Equal(c, g) {
		t.Fatalf("gpu %v\ncpu %v", g, c)
	}
	for _, q := range []sample.Params{{Temperature: 0.8}, {Temperature: 0.8, TopK: 10, RepetitionPenalty: 1.1}, {TopK: 5}} {
		if gpu.CanSample(q) {
			t.Errorf("CanSample(%+v) is true; the host must handle it", q)
		}
	}
}

// TestBindGroupReuse: after the first decode steps, decoding creates no
// bind group (every dispatch finds its group in the cache), for a dense
// model and a mixture with all experts resident; evicting an expert drops
// the cache rather than keep groups of a released buffer.
func TestBindGroupReuse(t *testing.T) {
	for _, name := range []string{"llama", "olmoe"} {
		t.Run(name, func(t *testing.T) {
			g := newBackend(t, webgpu.Options{})
			e, err := engine.New(g, testmodel.Random(testmodel.Family(name, false), 2), engine.Options{MaxSeq: 64})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []int{1, 2, 3} {
				if _, err := e.ForwardArgmax(context.Background(), []int{id}); err != nil {
					t.Fatal(err)
				}
			}
			before := g.Stats()
			for _, id := range []int{4, 5, 6, 7, 8} {
				if _, err := e.ForwardArgmax(context.Background(), []int{id}); err != nil {
					t.Fatal(err)
				}
			}
			after := g.Stats()
			if n := after.BindGroups - before.BindGroups; n != 0 {
				t.Errorf("5 steady-state decode steps created %d bind groups, want 0 (%d dispatches)", n, after.Dispatches-before.Dispatches)
			}
		})
	}
}
