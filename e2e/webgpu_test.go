package e2e

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestWebGPU runs the browser runtime on WebGPU (SwiftShader, in a
// Chromium started with --enable-unsafe-webgpu) and checks it against the
// native CPU engine token for token; then, in a Chromium without that flag
// (so requestAdapter finds nothing), that "auto" falls back to the CPU and
// says so, and that "webgpu" is refused with a way out.
func TestWebGPU(t *testing.T) {
	chromium := findChromium(t)
	models := shared.Models(t)
	rb := buildRuntime(t)
	root, tmp, wasm, server := rb.root, rb.tmp, rb.wasm, rb.server

	packs := filepath.Join(tmp, "packs")
	stories := filepath.Join(packs, "stories260K")
	packModel(t, filepath.Join(models, "stories260K", "stories260K.bin"), stories, tensor.Q8_0)
	// f32: each layer is one layer.wgsl workgroup (webgpu.Backend.FuseLayer).
	storiesF32 := filepath.Join(packs, "stories260K-f32")
	packModel(t, filepath.Join(models, "stories260K", "stories260K.bin"), storiesF32, tensor.F32)
	olmoe := filepath.Join(packs, "olmoe")
	synthPack(t, tmp, "olmoe", olmoe, func(o *synth.Options) {
		o.Layers, o.Experts, o.TopK, o.FFN = 3, 16, 4, 64 // FFN 64: every matrix is whole q4_0 blocks
	}, tensor.Q4_0)
	// Granite with its shared expert: the four multipliers and the
	// attention divisor go through the WGSL scale kernel and attention.
	granite := filepath.Join(packs, "granitemoeshared")
	synthPack(t, tmp, "granitemoeshared", granite, func(o *synth.Options) {
		o.Layers, o.FFN, o.SharedFFN = 3, 64, 64
	}, tensor.Q4_0)
	// DeepSeek-V3-shaped: multi-head latent attention (q bottleneck,
	// latent cache), noaux_tc group routing with its selection bias, a
	// dense first layer and shared experts, YaRN's softmax correction.
	deepseek := filepath.Join(packs, "deepseek_v3")
	synthPack(t, tmp, "deepseek_v3", deepseek, nil, tensor.Q4_0)
	// Experts of mixed depth and activation (model.ExpertArch), widths the
	// q8_0 pack widens (16, 40) in first and later blocks alike, and two
	// tiny experts (widths 1 and 2, as `modelpack distill --tiny-experts`
	// adds them).
	deep := filepath.Join(packs, "mode-deep")
	synthPack(t, tmp, "mode", deep, func(o *synth.Options) {
		o.Layers, o.TopK = 3, 3
		o.ExpertWidths = []int{32, 96, 64, 16, 40, 24, 1, 2}
		o.Experts = len(o.ExpertWidths)
		o.ExpertArch = []model.ExpertArch{{Extra: []int{24}}, {Act: model.ActGELUTanh}, {Act: model.ActReLU2, Extra: []int{16, 40}},
			{}, {Act: model.ActGELUTanh, Extra: []int{72}}, {Act: model.ActSiLU}, {}, {Act: model.ActReLU2}}
	}, tensor.Q8_0)
	// gpt-oss: MXFP4 experts (kept MXFP4 in the pack), sinks, biases, a
	// sliding window of 8 on even layers (the prompt and reply pass it),
	// YaRN and the clamped SwiGLU; the dense matrices in q8_0.
	gptOss := filepath.Join(packs, "gpt_oss")
	synthPack(t, tmp, "gpt_oss", gptOss, nil, tensor.Q8_0)
	// Rows of 512 columns: the matvecs run with more than one lane per
	// row, which on SwiftShader meet through subgroups (4 wide; see
	// TestKernelsInChromium); every model above has rows of at most 256,
	// one lane per row.
	wide := filepath.Join(packs, "mixtral-d512")
	synthPack(t, tmp, "mixtral", wide, func(o *synth.Options) {
		o.Dim, o.Layers, o.Experts, o.TopK, o.FFN = 512, 2, 4, 2, 512
	}, tensor.Q4_0)
	base := startServer(t, server, "--addr", "127.0.0.1:0", "--web", filepath.Join(root, "web"),
		"--wasm", wasm, "--models", packs)

	gpu := openBrowserWith(t, chromium, base+"index.html", true)
	t.Run("mixed-architecture experts on the cpu equal native", func(t *testing.T) {
		want, _, _ := native(t, deep, "the cat sat on", 24)
		got := gpu.visit(t, "/packs/mode-deep/manifest.json", "cpu", "the cat sat on", 24)
		if got.Error != "" {
			t.Fatalf("backend cpu: %s: %s", got.Code, got.Error)
		}
		if !slices.Equal(got.IDs, want) {
			t.Errorf("browser cpu generated %v\n             native %v", got.IDs, want)
		}
	})
	t.Run("gpt-oss on the cpu equals native", func(t *testing.T) {
		want, _, _ := native(t, gptOss, "the cat sat on", 20)
		got := gpu.visit(t, "/packs/gpt_oss/manifest.json", "cpu", "the cat sat on", 20)
		if got.Error != "" {
			t.Fatalf("backend cpu: %s: %s", got.Code, got.Error)
		}
		if !slices.Equal(got.IDs, want) {
			t.Errorf("browser cpu generated %v\n             native %v", got.IDs, want)
		}
	})
	storiesLayers := readManifest(t, stories).Model.Layers
	for _, tt := range []struct {
		name, dir, manifest, prompt string
		n                           int
		// kernels, when set, is every kernel file a decode step
		// dispatches and how often (the fused path), once what the
		// decode steps dispatch once in all; no and some name kernels
		// they must not and must dispatch.
		kernels  map[string]float64
		once     map[string]int
		no, some []string
	}{
		{name: "gpt-oss q8_0 mxfp4", dir: gptOss, manifest: "/packs/gpt_oss/manifest.json", prompt: "the cat sat on", n: 20},
		// head_argmax: the head's product and the argmax are one
		// matvec.wgsl dispatch, no argmax.wgsl.
		{name: "stories260K q8_0", dir: stories, manifest: "/packs/stories260K/manifest.json", prompt: "Once upon a time", n: 40,
			no: []string{"argmax.wgsl", "matmul.wgsl", "matvec_rows.wgsl"}},
		// Every layer one layer.wgsl dispatch, then the head and argmax;
		// the first decode step packs each layer's nine weights into
		// one buffer (copy.wgsl) for layer.wgsl.
		{name: "stories260K f32 (a layer per dispatch)", dir: storiesF32, manifest: "/packs/stories260K-f32/manifest.json", prompt: "Once upon a time", n: 40,
			kernels: map[string]float64{"embed.wgsl": 1, "layer.wgsl": float64(storiesLayers), "matvec.wgsl": 1},
			once:    map[string]int{"copy.wgsl": 9 * storiesLayers}},
		// Each layer's router product and route are one router.wgsl
		// dispatch (router_route), no route.wgsl. (The browser's engine
		// fetches experts lazily, so it reads each layer's routes back:
		// more than one submission per token.)
		{name: "olmoe q4_0", dir: olmoe, manifest: "/packs/olmoe/manifest.json", prompt: "the cat sat on", n: 16,
			no: []string{"route.wgsl", "argmax.wgsl"}, some: []string{"router.wgsl"}},
		{name: "granitemoeshared q4_0", dir: granite, manifest: "/packs/granitemoeshared/manifest.json", prompt: "the cat sat on", n: 16},
		{name: "deepseek_v3 q4_0", dir: deepseek, manifest: "/packs/deepseek_v3/manifest.json", prompt: "the cat sat on", n: 16},
		{name: "mixed-architecture experts q8_0", dir: deep, manifest: "/packs/mode-deep/manifest.json", prompt: "the cat sat on", n: 24},
		// Its head (vocab rows of 512) is too many workgroups for
		// head_argmax: argmax.wgsl stays.
		{name: "mixtral d512 q4_0 (matvec lanes through subgroups)", dir: wide, manifest: "/packs/mixtral-d512/manifest.json", prompt: "the cat sat on", n: 12,
			no: []string{"route.wgsl"}, some: []string{"router.wgsl"}},
	} {
		t.Run(tt.name+" greedy on webgpu equals native", func(t *testing.T) {
			want, _, _ := nativeOn(t, cpu.Options{Exact: true}, tt.dir, tt.prompt, tt.n)
			got := gpu.visit(t, tt.manifest, "webgpu", tt.prompt, tt.n)
			if got.Error != "" {
				t.Fatalf("backend webgpu: %s: %s", got.Code, got.Error)
			}
			if got.Backend != "webgpu" || got.Stats.Backend != "webgpu" {
				t.Errorf("load says backend %q, stats say %q: want webgpu", got.Backend, got.Stats.Backend)
			}
			if !slices.Equal(got.IDs, want) {
				t.Errorf("webgpu generated %v\n        native %v", got.IDs, want)
			}
			// SwiftShader has subgroups: the backend's start-up check
			// (webgpu.checkSubgroups) must find them sound and keep them.
			if tt.dir == wide && !strings.Contains(got.Note, "lanes meet through subgroups") {
				t.Errorf("backend note %q: want matvec lanes meeting through subgroups on SwiftShader", got.Note)
			}
			checkDecodeKernels(t, got, tt.kernels, tt.once, tt.no, tt.some)
			t.Logf("webgpu: prefill %.0f tok/s, decode %.1f tok/s", got.Stats.Prefill, got.Stats.Decode)
		})
	}

	t.Run("auto takes the cpu on a software adapter and says why", func(t *testing.T) {
		auto := gpu.visit(t, "/packs/stories260K/manifest.json", "auto", "Once upon a time", 8)
		if auto.Error != "" {
			t.Fatalf("backend auto: %s: %s", auto.Code, auto.Error)
		}
		if auto.Backend != "cpu" || !strings.Contains(auto.Note, "software renderer") || !strings.Contains(strings.ToLower(auto.Note), "swiftshader") {
			t.Errorf("backend auto on SwiftShader: backend %q, note %q; want cpu, naming the software adapter", auto.Backend, auto.Note)
		}
		t.Logf("auto: %s", auto.Note)
	})

	t.Run("without an adapter auto falls back to cpu", func(t *testing.T) {
		plain := openBrowserWith(t, chromium, base+"index.html", false)
		want, _, _ := native(t, stories, "Once upon a time", 8)
		auto := plain.visit(t, "/packs/stories260K/manifest.json", "auto", "Once upon a time", 8)
		if auto.Error != "" {
			t.Fatalf("backend auto: %s: %s", auto.Code, auto.Error)
		}
		if auto.Backend != "cpu" || auto.Stats.Backend != "cpu" || !strings.Contains(auto.Note, "running on the CPU") {
			t.Errorf("backend auto without an adapter: backend %q (stats %q), note %q; want cpu with a note", auto.Backend, auto.Stats.Backend, auto.Note)
		}
		if !slices.Equal(auto.IDs, want) {
			t.Errorf("cpu fallback generated %v, native %v", auto.IDs, want)
		}
		refused := plain.visit(t, "/packs/stories260K/manifest.json", "webgpu", "Once upon a time", 8)
		if refused.Code != "unavailable" || !strings.Contains(refused.Error, `"cpu"`) {
			t.Errorf("backend webgpu without an adapter: code %q, message %q; want unavailable, offering cpu", refused.Code, refused.Error)
		}
		t.Logf("auto: %s; webgpu: %s", auto.Note, refused.Error)
	})
}

// checkDecodeKernels checks what the page's stats say the decode steps
// of a visit dispatched (engine.stats().gpu): with want set, one
// submission per token and every kernel of want as often per token as it
// says, plus once's dispatches once over all the steps, and no other
// kernel; none of no, and some of each of some.
func checkDecodeKernels(t *testing.T, got gpuVisit, want map[string]float64, once map[string]int, no, some []string) {
	t.Helper()
	g := got.Stats.GPU
	if g == nil {
		t.Errorf("stats have no gpu part on webgpu")
		return
	}
	t.Logf("decode: %d tokens, %.2f submissions and %.2f dispatches per token: %v", g.DecodeTokens, g.SubmissionsPerToken, g.DispatchesPerToken, g.KernelsPerToken)
	if g.DecodeTokens != len(got.IDs)-1 || g.DecodeTokens < 1 {
		t.Errorf("gpu stats over %d decode steps, want %d (%d tokens generated)", g.DecodeTokens, len(got.IDs)-1, len(got.IDs))
		return
	}
	if want != nil {
		if g.SubmissionsPerToken != 1 {
			t.Errorf("%.2f submissions per decoded token, want 1", g.SubmissionsPerToken)
		}
		n := float64(g.DecodeTokens)
		exp, total := map[string]float64{}, 0.0
		for k, v := range want {
			exp[k] += v
		}
		for k, v := range once {
			exp[k] += float64(v) / n
		}
		for _, v := range exp {
			total += v
		}
		same := len(exp) == len(g.KernelsPerToken) && math.Abs(g.DispatchesPerToken-total) < 1e-9
		for k, v := range exp {
			same = same && math.Abs(g.KernelsPerToken[k]-v) < 1e-9
		}
		if !same {
			t.Errorf("%.3f dispatches per decoded token %v, want %v per token and %v once (%.3f)", g.DispatchesPerToken, g.KernelsPerToken, want, once, total)
		}
	}
	for _, k := range no {
		if g.KernelsPerToken[k] != 0 {
			t.Errorf("%s: %.2f dispatches per decoded token, want none (its work fused elsewhere)", k, g.KernelsPerToken[k])
		}
	}
	for _, k := range some {
		if g.KernelsPerToken[k] == 0 {
			t.Errorf("%s: no dispatches per decoded token, want some: %v", k, g.KernelsPerToken)
		}
	}
}

// openBrowserWith is openBrowser with or without WebGPU: without
// --enable-unsafe-webgpu Chrome blocklists software adapters, so
// navigator.gpu exists but requestAdapter() finds nothing.
func openBrowserWith(t *testing.T, chromium, page string, webgpu bool) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("enable-unsafe-webgpu", webgpu),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := openPage(ctx, page, "window.mode !== undefined"); err != nil {
		t.Fatalf("the demo page did not load mode.js: %v", err)
	}
	return &browser{ctx: ctx}
}

// gpuVisit is what one visit reports: the generated ids, or the error.
type gpuVisit struct {
	IDs     []int  `json:"ids"`
	Backend string `json:"backend"`
	Note    string `json:"note"`
	Stats   struct {
		Backend string  `json:"backend"`
		Prefill float64 `json:"prefillTokensPerSecond"`
		Decode  float64 `json:"decodeTokensPerSecond"`
		// the engine's routed-expert cache, bounded by expertBudgetMB
		ExpertsResident     int   `json:"expertsResident"`
		ExpertBytesResident int64 `json:"expertBytesResident"`
		ExpertEvictions     int   `json:"expertEvictions"`
		// the WebGPU backend's work (absent on the cpu)
		GPU *struct {
			DecodeTokens        int                `json:"decodeTokens"`
			SubmissionsPerToken float64            `json:"submissionsPerToken"`
			DispatchesPerToken  float64            `json:"dispatchesPerToken"`
			KernelsPerToken     map[string]float64 `json:"kernelsPerToken"`
		} `json:"gpu"`
	} `json:"stats"`
	Code  string `json:"code"`
	Error string `json:"error"`
}

// visit creates an engine on backend, generates n tokens greedily and
// unloads; a failure comes back as Code and Error.
func (b *browser) visit(t *testing.T, manifestURL, backend, prompt string, n int) gpuVisit {
	t.Helper()
	return eval[gpuVisit](t, b, fmt.Sprintf(`(async () => {
		try {
			const e = await mode.create({model: %q, backend: %q, cache: "none"});
			const r = await e.completions.create({prompt: %q, temperature: 0, max_tokens: %d, return_token_ids: true});
			const stats = await e.stats();
			await e.unload();
			return {ids: r.choices[0].token_ids, backend: e.info.backend, note: e.info.backendNote ?? "", stats};
		} catch (err) {
			return {code: err.code ?? "", error: String(err.message ?? err)};
		}
	})()`, manifestURL, backend, prompt, n))
}
