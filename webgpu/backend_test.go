package webgpu_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/webgpu"
	"github.com/moderuntime/mode/webgpu/webgputest"
)

func newBackend(t *testing.T, o webgpu.Options) *webgpu.Backend {
	t.Helper()
	b, err := webgpu.New(webgputest.Device(t, o))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func argmax(v []float32) int { return testmodel.Argmax(v) }

// compare runs greedy decoding of steps tokens after prompt on the CPU and
// the WebGPU backend, feeding both the CPU's choice, and returns the
// largest logit difference. Tokens must agree.
func compare(t *testing.T, m *model.Model, gpu backend.Backend, o engine.Options, prompt []int, steps int) float64 {
	t.Helper()
	d, _ := compareEngine(t, m, gpu, o, prompt, steps)
	return d
}

// compareEngine is compare, also returning the WebGPU backend's engine.
func compareEngine(t *testing.T, m *model.Model, gpu backend.Backend, o engine.Options, prompt []int, steps int) (float64, *engine.Engine) {
	t.Helper()
	ec, err := engine.New(cpu.New(cpu.Options{Exact: true}), m, o)
	if err != nil {
		t.Fatal(err)
	}
	eg, err := engine.New(gpu, m, o)
	if err != nil {
		t.Fatal(err)
	}
	worst, err := testmodel.DecodeDiff(ec, eg, prompt, steps, func(_ int, want, got []float32) error {
		if a, b := argmax(want), argmax(got); a != b {
			return fmt.Errorf("greedy token %d on webgpu, %d on cpu", b, a)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return worst, eg
}

// TestStories260K decodes greedily on both backends.
func TestStories260K(t *testing.T) {
	dir := shared.Models(t)
	m, err := llama2c.Load(filepath.Join(dir, "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	gpu := newBackend(t, webgpu.Options{})
	diff := compare(t, m, gpu, engine.Options{MaxBatch: 8, MaxSeq: 128}, []int{1, 403, 407, 261, 378, 300, 50, 70, 9}, 48)
	t.Logf("stories260K: 48 greedy tokens agree; max |logit diff| %.3g", diff)
	if diff > 1e-3 {
		t.Errorf("max logit difference %.3g > 1e-3", diff)
	}
}

// family is one of testmodel's family configs, with llama2.c's RoPE pairs
// for "llama" so both rotation styles run on the GPU.
func family(name string) model.Config {
	if name == "llama" {
		name = "llama-interleaved"
	}
	return testmodel.Family(name, false)
}

// TestFamilies compares logits with the CPU backend for synthetic models
// of each family, prefilling 5 tokens in one batch and then decoding, so
// both the token-tiled and the matrix-vector kernels run. Bound: 1e-4 on
// logits of magnitude ~1-10 (f32 kernels summing in a different order).
func TestFamilies(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	for _, name := range []string{"llama", "yarn-rope", "yarn-mscale-rope", "yarn-notrunc-rope", "dynamic-rope", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "granitemoe", "granitemoeshared", "mode", "mode-deep", "mode-tiny"} {
		t.Run(name, func(t *testing.T) {
			m := testmodel.Random(family(name), 7)
			diff := compare(t, m, gpu, engine.Options{MaxBatch: 8}, []int{0, 5, 17, 42, 3}, 12)
			t.Logf("%s: max |logit diff| %.3g", name, diff)
			if diff > 1e-4 {
				t.Errorf("max logit difference %.3g > 1e-4", diff)
			}
		})
	}
}

// TestOneSubmissionPerToken checks that a decode step of a sparse model
// (with every expert resident, so the engine never reads routes) is one
// queue submission: nothing is read back per layer.
func TestOneSubmissionPerToken(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	e, err := engine.New(gpu, testmodel.Random(family("mode"), 5), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Forward(context.Background(), []int{0, 1, 2}); err != nil { // warm up: pools, pipelines
		t.Fatal(err)
	}
	for i := range 3 {
		n := webgpu.Submissions(gpu)
		if _, err := e.Forward(context.Background(), []int{7 + i}); err != nil {
			t.Fatal(err)
		}
		if d := webgpu.Submissions(gpu) - n; d != 1 {
			t.Errorf("decode step %d: %d submissions, want 1", i, d)
		}
	}
}

// TestQuantizedFormats runs a mixtral-shaped model whose matrices are
// stored in each block format (dim 256 so that q4_k's 256-element
// super-blocks fit), against the CPU backend on the same quantised weights.
func TestQuantizedFormats(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	for _, f := range []tensor.DType{tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K} {
		t.Run(f.String(), func(t *testing.T) {
			c := testmodel.Config(256, 2, 4, 2, 64)
			for range c.Layers {
				r := model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true}
				c.FFN = append(c.FFN, model.FFN{ExpertWidths: []int{256, 256, 256}, Router: &r, SharedWidths: []int{256}})
			}
			m := testmodel.Random(c, 3)
			quantizeMatrices(t, m, f)
			diff := compare(t, m, gpu, engine.Options{MaxBatch: 8}, []int{0, 5, 17}, 6)
			t.Logf("%v: max |logit diff| %.3g", f, diff)
			if diff > 1e-3 {
				t.Errorf("max logit difference %.3g > 1e-3", diff)
			}
		})
	}
}

// TestPaging lowers the binding limit so that the embedding table and the
// output matrix are split into pages, and checks the model still matches.
// TestErrors checks that limits and failed recording come back as errors
// from the call, or from the next Sync and Read, rather than as a hang.
func TestErrors(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{MaxBinding: 1024})
	if _, err := gpu.NewBuf(1, 1024); err == nil {
		t.Error("NewBuf beyond the binding limit: no error")
	}
	if _, err := gpu.Upload(tensor.FromF32("wide", []int{2, 512}, make([]float32, 1024))); err == nil {
		t.Error("Upload of a row wider than the binding limit: no error")
	}
	x, err := gpu.NewBuf(1, 8)
	if err != nil {
		t.Fatal(err)
	}
	// inverse frequencies go through the 1 MiB parameter arena: too many
	// fail the op while it is recorded
	gpu.RoPE(x, 8, 0, &backend.Rope{InvFreq: make([]float32, 1<<19), AttnFactor: 1})
	if err := gpu.Sync(); err == nil {
		t.Error("Sync after a failed op: no error")
	} else {
		t.Logf("Sync: %v", err)
	}
	if err := gpu.Read(x, make([]float32, 8)); err == nil {
		t.Error("Read after a failed op: no error")
	}
}

func TestPaging(t *testing.T) {
	const limit = 2048
	gpu := newBackend(t, webgpu.Options{MaxBinding: limit})
	c := family("llama")
	c.TiedOutput = false
	m := testmodel.Random(c, 11)
	for _, f := range []tensor.DType{tensor.F32, tensor.Q8_0} {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			mm := *m
			if f != tensor.F32 {
				mm.Weights = model.Weights{}
				for name, w := range m.Weights {
					mm.Weights[name] = w
					if name == model.NameOutput || name == model.NameEmbed {
						q, err := tensor.Quantize(w, f)
						if err != nil {
							t.Fatal(err)
						}
						mm.Weights[name] = q
					}
				}
			}
			w, err := gpu.Upload(mm.Weights[model.NameOutput])
			if err != nil {
				t.Fatal(err)
			}
			if n := webgpu.Pages(w); n < 2 {
				t.Fatalf("output matrix of %d bytes in %d page(s) under a %d-byte limit", len(mm.Weights[model.NameOutput].Data), n, limit)
			} else {
				t.Logf("output matrix (%v, %d bytes) in %d pages", f, len(mm.Weights[model.NameOutput].Data), n)
			}
			gpu.Free(w)
			diff := compare(t, &mm, gpu, engine.Options{MaxBatch: 8, MaxSeq: 32}, []int{0, 5, 17, 42}, 6)
			t.Logf("paged %v: max |logit diff| %.3g", f, diff)
			if diff > 1e-4 {
				t.Errorf("max logit difference %.3g > 1e-4", diff)
			}
		})
	}
}

// TestPrefillGEMM prefills 40-token prompts in one batch, which MatMul
// gives to the tiled gemm kernel, against the CPU backend: a dense and a
// sparse family in f32, and for each other weight format a model of dim
// 256 (q4_k's super-blocks) with a dense and a sparse layer. Bound 1e-4
// for f32 and 1e-3 for the other formats, as in TestFamilies and
// TestQuantizedFormats.
func TestPrefillGEMM(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	webgpu.SetMatVecTokens(gpu, -1) // a CPU adapter sends such batches to matvec (TestPrefillMatVec)
	prompt := make([]int, 40)
	for i := range prompt {
		prompt[i] = (7*i + 3) % 97
	}
	cases := prefillCases([]string{"llama", "qwen2_moe"}, tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K)
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%v", c.name, c.f), func(t *testing.T) {
			m := testmodel.Random(c.c, 17)
			if c.f != tensor.F32 {
				quantizeMatrices(t, m, c.f)
			}
			before := webgpu.Dispatches(gpu, "gemm.wgsl")
			diff := compare(t, m, gpu, engine.Options{MaxBatch: 64, MaxSeq: 64}, prompt, 4)
			n := webgpu.Dispatches(gpu, "gemm.wgsl") - before
			t.Logf("%d gemm dispatches; max |logit diff| %.3g", n, diff)
			if n == 0 {
				t.Error("the 40-token prefill ran no gemm dispatch")
			}
			if diff > c.bound {
				t.Errorf("max logit difference %.3g > %g", diff, c.bound)
			}
		})
	}
}

// TestPrefillMatVec prefills 6- and 70-token prompts with MatMul sending
// batches of up to 64 tokens to the matvec kernel (one workgroup row per token)
// instead of matmul, against the CPU backend, with TestPrefillGEMM's
// models and bounds (f32, and a dim-256 model with dense and sparse
// layers in q4_0 and q4_k), and requires that no product ran on the
// kernels the batch would otherwise take (matmul, matvec_rows).
func TestPrefillMatVec(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	// 6 tokens, and 70 in batches of 64 and 6: more than one uniform
	// binding of x holds at 256 columns (63 tokens), so matvec takes
	// them in chunks (xuTokens).
	long := make([]int, 70)
	for i := range long {
		long[i] = (7*i + 3) % 97
	}
	cases := prefillCases([]string{"llama"}, tensor.Q4_0, tensor.Q4_K)
	webgpu.SetMatVecTokens(gpu, 64)
	for _, prompt := range [][]int{{3, 10, 17, 24, 31, 38}, long} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%v/T=%d", c.name, c.f, len(prompt)), func(t *testing.T) {
				prefillMatVec(t, gpu, c, prompt)
			})
		}
	}
}

func prefillMatVec(t *testing.T, gpu *webgpu.Backend, c prefillCase, prompt []int) {
	cfg := c.c
	cfg.MaxSeq = max(cfg.MaxSeq, len(prompt)+8)
	m := testmodel.Random(cfg, 19)
	if c.f != tensor.F32 {
		quantizeMatrices(t, m, c.f)
	}
	old := func() int { return webgpu.Dispatches(gpu, "matmul.wgsl") + webgpu.Dispatches(gpu, "matvec_rows.wgsl") }
	before, mvBefore := old(), webgpu.Dispatches(gpu, "matvec.wgsl")
	diff := compare(t, m, gpu, engine.Options{MaxBatch: 64, MaxSeq: 80}, prompt, 4)
	n, mv := old()-before, webgpu.Dispatches(gpu, "matvec.wgsl")-mvBefore
	t.Logf("%d matvec dispatches; max |logit diff| %.3g", mv, diff)
	if n != 0 {
		// Without the setting the prefill's products are matmul
		// (rows over 256 columns) or matvec_rows dispatches.
		t.Errorf("%d matmul or matvec_rows dispatches: the %d-token prompt's batches did not all go to matvec", n, len(prompt))
	}
	if diff > c.bound {
		t.Errorf("max logit difference %.3g > %g", diff, c.bound)
	}
}

// TestF16ArithModel decodes a model whose matrices are f16 with f16
// arithmetic (when the device can compile it) and requires the CPU
// backend's greedy tokens, with logits within 5e-2 of the CPU's (x and
// every product rounded to f16, see shaders.TestF16Arith) but not within
// f32 rounding of them, which would mean f16 arithmetic did not run.
func TestF16ArithModel(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	if !gpu.Stats().F16Arith {
		t.Skip("no f16 arithmetic: " + gpu.Device().F16Note)
	}
	c := testmodel.Config(256, 2, 4, 2, 97)
	r := model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true}
	c.FFN = []model.FFN{{SharedWidths: []int{512}}, {ExpertWidths: []int{256, 256, 256}, Router: &r, SharedWidths: []int{256}}}
	m := testmodel.Random(c, 5)
	for n, w := range m.Weights {
		if len(w.Shape) == 2 && w.Rows() > 1 {
			q, err := tensor.Quantize(w, tensor.F16)
			if err != nil {
				t.Fatal(err)
			}
			m.Weights[n] = q
		}
	}
	prompt := make([]int, 20) // a batch long enough for gemm
	for i := range prompt {
		prompt[i] = (11*i + 2) % 97
	}
	diff := compare(t, m, gpu, engine.Options{MaxBatch: 32, MaxSeq: 64}, prompt, 12)
	t.Logf("f16 arithmetic: 12 greedy tokens agree; max |logit diff| %.3g", diff)
	if diff > 5e-2 {
		t.Errorf("max logit difference %.3g > 5e-2", diff)
	}
	if diff < 1e-4 {
		t.Errorf("max logit difference %.3g: as small as f32 rounding, so no f16 arithmetic ran", diff)
	}
}

// TestDeepExpertsMatchNaive compares the WebGPU backend's logits for a
// model whose experts differ in depth (1 to 3 blocks) and activation
// (SiLU, GELU-tanh, ReLU²) with testmodel's float64 reference, at every
// position of a decode and after a 5-token prefill (moe_norm, moe_gu over
// per-slot rows, moe_act, moe_down adding into y), with top_k = all
// experts so that every architecture is in every token's output. Bound
// 1e-4 relative to max(1, |logit|): f32 kernels against exact arithmetic,
// as the CPU's TestFamiliesMatchNaive.
func TestDeepExpertsMatchNaive(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	ids := []int{0, 5, 17, 42, 3, 96, 11, 64}
	m := testmodel.Random(testmodel.Family("mode-deep", true), 7)
	want := testmodel.Logits(m, ids)
	check := func(what string, got []float32, want []float64) {
		t.Helper()
		var maxDiff, maxAbs float64
		for i, w := range want {
			maxDiff = max(maxDiff, math.Abs(float64(got[i])-w))
			maxAbs = max(maxAbs, math.Abs(w))
		}
		t.Logf("%s: max |logit diff| %.3g", what, maxDiff)
		if maxDiff > 1e-4*max(1, maxAbs) {
			t.Errorf("%s: logits differ from the float64 reference by %.3g (max |logit| %.3g)", what, maxDiff, maxAbs)
		}
	}
	e, err := engine.New(gpu, m, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for p, id := range ids {
		got, err := e.Forward(context.Background(), []int{id})
		if err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("decode pos %d", p), got, want[p])
	}
	e2, err := engine.New(gpu, m, engine.Options{MaxBatch: 5})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e2.Forward(context.Background(), ids[:5])
	if err != nil {
		t.Fatal(err)
	}
	check("prefill", got, want[4])
}

// TestDeepExpertsEvicted runs the mixed-architecture family under an
// expert budget that holds about a third of its routed experts' bytes, so
// the engine keeps loading and evicting experts of every depth and the
// per-block tables and norm banks are rewritten (and shrink when the
// deepest resident expert goes) between layers; tokens and logits must
// stay those of the CPU.
func TestDeepExpertsEvicted(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	m := testmodel.Random(testmodel.Family("mode-deep", false), 9)
	var routed int64
	for _, sp := range m.Config.Spec() {
		if sp.Expert >= 0 {
			routed += int64(len(m.Weights[sp.Name].Data))
		}
	}
	diff, e := compareEngine(t, m, gpu, engine.Options{MaxBatch: 8, ExpertBudget: routed / 3}, []int{0, 5, 17, 42, 3}, 16)
	st := e.Stats()
	t.Logf("max |logit diff| %.3g; %d expert loads, %d evictions", diff, st.ExpertsLoaded, st.ExpertEvictions)
	if st.ExpertEvictions == 0 {
		t.Fatalf("no evictions under a budget of %d of %d bytes: the test needs them", routed/3, routed)
	}
	if diff > 1e-4 {
		t.Errorf("max logit difference %.3g > 1e-4", diff)
	}
}

// prefillCase is a model the prefill tests run in a weight format, with
// the bound on its logits' difference from the CPU backend's.
type prefillCase struct {
	name  string
	c     model.Config
	f     tensor.DType
	bound float64
}

// prefillCases is the named families in f32 (bound 1e-4) and, in each of
// formats, a dim-256 model (q4_k's super-blocks) with a dense and a sparse
// layer (bound 1e-3), as in TestFamilies and TestQuantizedFormats.
func prefillCases(families []string, formats ...tensor.DType) []prefillCase {
	var cases []prefillCase
	for _, name := range families {
		cases = append(cases, prefillCase{name, family(name), tensor.F32, 1e-4})
	}
	for _, f := range formats {
		c := testmodel.Config(256, 2, 4, 2, 97)
		r := model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true}
		c.FFN = []model.FFN{{SharedWidths: []int{512}}, {ExpertWidths: []int{256, 256, 256}, Router: &r, SharedWidths: []int{256}}}
		cases = append(cases, prefillCase{"dim256", c, f, 1e-3})
	}
	return cases
}

// quantizeMatrices stores every matrix of m with more than one row that f
// can hold in f.
func quantizeMatrices(t *testing.T, m *model.Model, f tensor.DType) {
	t.Helper()
	for name, w := range m.Weights {
		if len(w.Shape) == 2 && w.Rows() > 1 && tensor.CanQuantize(f, w.Cols()) {
			q, err := tensor.Quantize(w, f)
			if err != nil {
				t.Fatal(err)
			}
			m.Weights[name] = q
		}
	}
}
