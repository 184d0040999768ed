package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moderuntime/mode/modelpack/gguf"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestBenchWebCPU measures the browser's CPU path in headless Chromium
// with its SIMD128 kernels and without (simd: false, the pure-Go kernels
// every wasm build had before), and beside it wllama (llama.cpp compiled
// to WebAssembly, scripts/wllama's pinned @wllama/wllama) in the same
// Chromium, on the same weights: GGUFs the project's writer makes in q4_0
// and q8_0, which wllama loads as they are and mode imports into packs
// keeping every block, in two shapes (benchShapes): Mixtral's (d=512, 8
// layers, 8 experts × 1408, top-2) and OLMoE's (d=1024, 16 layers, 64
// experts × 512, top-8: scripts/bench-cpu.sh's), both with vocab 512.
// MODE_BENCH_WEB_SHAPES picks them (comma-separated names; default
// mixtral,olmoe). Prefill and decode tokens/s of warm runs (the sides
// interleaved, medians), mode's ratios to each, and the peak resident
// memory of Chromium's processes over each side's visits, less the idle
// browser's. mode's CPU path runs on one worker or two; wllama on one
// thread and two (the page is cross-origin isolated;
// MODE_BENCH_WEB_WLLAMA_THREADS changes the counts), compared at equal
// threads. The pure-Go kernels are measured on the Mixtral shape only
// (OLMoE's would take minutes a round). A side that cannot load a pack or
// GGUF (the OLMoE q8_0 one is 1.7 GB, and mode.wasm's heap is wasm32, at
// most 4 GB) says so in its row and the others go on. A measurement, not a
// check: `make bench-web` (MODE_BENCH_WEB=1) runs it;
// MODE_BENCH_WEB_ROUNDS sets the rounds (default 3).
func TestBenchWebCPU(t *testing.T) {
	if os.Getenv("MODE_BENCH_WEB") == "" {
		t.Skip("a benchmark: set MODE_BENCH_WEB=1 (make bench-web) to run it")
	}
	shapes := benchShapesFromEnv(t)
	chromium := findChromium(t)
	wdir := wllamaDir(t)
	rb := buildRuntime(t)
	var packs string
	ggufs := map[string]string{}
	for _, sh := range shapes {
		p, g := benchPacks(t, rb, sh)
		packs = p
		maps.Copy(ggufs, g)
	}
	e := webCPUBench{
		packs: packs,
		base:  startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(rb.root, "web"), "--wasm", rb.wasm, "--models", packs),
		wbase: startWllamaServer(t, wdir, ggufs),
		wver:  wllamaVersion(t, wdir),
	}
	e.b = openBrowser(t, chromium, e.base+"index.html")
	e.mem = newRSSMeter(t, e.b)
	wthreads := []int{1, 2}
	if v := os.Getenv("MODE_BENCH_WEB_WLLAMA_THREADS"); v != "" {
		wthreads = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("MODE_BENCH_WEB_WLLAMA_THREADS=%q: want thread counts such as 1,2", v)
			}
			wthreads = append(wthreads, n)
		}
	}
	for _, sh := range shapes {
		sides := []webSide{{"mode simd128", true, 0, 1}, {"mode simd128 2w", true, 0, 2}}
		if sh.pureGo {
			sides = append(sides, webSide{"mode go", false, 0, 1})
		}
		for _, n := range wthreads {
			sides = append(sides, webSide{fmt.Sprintf("wllama %dt", n), false, n, 0})
		}
		e.run(t, sh, sides)
	}
}

// webSide is one column of TestBenchWebCPU's interleaving: mode with or
// without its SIMD128 kernels on some workers, or wllama on some threads.
type webSide struct {
	name    string
	simd    bool
	threads int // wllama's; 0 for mode
	workers int // mode's (its threads option)
}

// webCPUBench is what TestBenchWebCPU's shapes share: the packs, the
// servers, the browser and its memory meter.
type webCPUBench struct {
	packs       string // benchPacks' directory
	base, wbase string // mode's devserver and wllama's server
	wver        string // wllama's version
	b           *browser
	mem         *rssMeter
}

// run measures shape sh in q4_0 and q8_0 on sides, interleaved, and prints
// a table per format.
func (e *webCPUBench) run(t *testing.T, sh benchShape, sides []webSide) {
	prompt, promptTokens := promptOf(t, filepath.Join(e.packs, sh.name+"-q4_0"), 54)
	rounds, runs := benchRounds(), 3
	const decode = 32
	fmt.Printf("\nbench-web cpu: %s, vocab %d, from the project's GGUF writer; prompt %d tokens, %d decoded, greedy; %d rounds × %d warm runs per side, interleaved; medians. wllama %s (@wllama/wllama, llama.cpp in wasm) on the same GGUF, mode on the pack imported from it. mode's CPU path runs on one worker, or on two (2w: routed experts split between two mode.wasm workers). Peak MiB: Chromium's resident memory during the side's visits (load included) less the idle browser's.\n",
		sh.about, sh.opts.Vocab, promptTokens, decode, rounds, runs, e.wver)
	fmt.Printf("%-6s %-16s %12s %12s %9s   %-22s %s\n", "format", "side", "prefill t/s", "decode t/s", "peak MiB", "mode simd128 / side", "mode at equal threads / side")
	b := e.b
	for _, q := range benchFormats {
		name := benchFormatNames[q]
		url := "/packs/" + sh.name + "-" + name + "/manifest.json"
		pre, dec := make([][]float64, len(sides)), make([][]float64, len(sides))
		peak := make([]float64, len(sides))
		unloadable := make([]error, len(sides)) // why the side could not load this shape and format
		var wpromptN int
		for r := range rounds {
			for k := range sides {
				i := (k + r) % len(sides) // rotate which side goes first
				sd := sides[i]
				if unloadable[i] != nil {
					continue
				}
				e.mem.start()
				if sd.threads == 0 {
					if err := openPage(b.ctx, e.base+"index.html", "window.mode !== undefined"); err != nil {
						t.Fatalf("the demo page did not load mode.js: %v", err)
					}
					v, err := cpuVisit(t, b, url, prompt, sd.simd, sd.workers, runs, decode)
					unloadable[i] = err
					pre[i] = append(pre[i], v.Prefill...)
					dec[i] = append(dec[i], v.Decode...)
				} else {
					v, err := wllamaVisit(t, b, e.wbase+"bench.html", "/gguf/"+sh.name+"-"+name+".gguf", sd.threads, prompt, decode, runs, sh.opts.Vocab)
					unloadable[i] = err
					if err == nil && v.Threads != sd.threads {
						t.Fatalf("wllama: asked for %d threads, runs %d", sd.threads, v.Threads)
					}
					pre[i] = append(pre[i], v.Prefill...)
					dec[i] = append(dec[i], v.Decode...)
					if len(v.PromptNs) > 0 {
						wpromptN = v.PromptNs[0]
					}
				}
				peak[i] = max(peak[i], e.mem.stop())
			}
		}
		// Printed per format as soon as it is done, so that a run cut short
		// still reports what it measured.
		p0, d0 := median(pre[0]), median(dec[0])
		for i, sd := range sides {
			if unloadable[i] != nil {
				fmt.Printf("%-6s %-16s cannot load: %v (peak %.0f MiB)\n", name, sd.name, unloadable[i], peak[i])
				continue
			}
			p, d := median(pre[i]), median(dec[i])
			ratio, equal := "", ""
			if i > 0 && unloadable[0] == nil {
				ratio = fmt.Sprintf("%.2fx, %.2fx", p0/p, d0/d)
			}
			// wllama on n threads against mode simd128 on n workers
			for j, m := range sides {
				if sd.threads > 0 && m.simd && m.workers == sd.threads && unloadable[j] == nil {
					equal = fmt.Sprintf("%.2fx, %.2fx", median(pre[j])/p, median(dec[j])/d)
				}
			}
			fmt.Printf("%-6s %-16s %12.1f %12.1f %9.0f   %-22s %s\n", name, sd.name, p, d, peak[i], ratio, equal)
		}
		if wpromptN != 0 && wpromptN+1 != promptTokens && wpromptN != promptTokens {
			fmt.Printf("note: wllama evaluated %d prompt tokens, mode %d\n", wpromptN, promptTokens)
		}
	}
}

// rssMeter samples the resident memory of a Chromium and its child
// processes (every 200 ms, from /proc: walking it costs CPU the sides
// would otherwise have) between start and stop.
type rssMeter struct {
	t        *testing.T
	pid      int
	mu       sync.Mutex
	peak     int64
	base     int64
	stopping chan struct{}
	done     chan struct{}
}

func newRSSMeter(t *testing.T, b *browser) *rssMeter {
	p := chromedp.FromContext(b.ctx).Browser.Process()
	if p == nil {
		t.Fatal("no Chromium process to measure")
	}
	return &rssMeter{t: t, pid: p.Pid}
}

// tree is the summed VmRSS (bytes) of pid and its descendants.
func (m *rssMeter) tree() int64 {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 {
			parent[pid], _ = strconv.Atoi(f[1])
		}
	}
	in := func(pid int) bool {
		for range 64 {
			if pid == m.pid {
				return true
			}
			if pid <= 1 {
				return false
			}
			pid = parent[pid]
		}
		return false
	}
	var sum int64
	for pid := range parent {
		if !in(pid) {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				sum += kb << 10
			}
		}
	}
	return sum
}

func (m *rssMeter) start() {
	m.base, m.peak = m.tree(), 0
	m.stopping, m.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			v := m.tree()
			m.mu.Lock()
			m.peak = max(m.peak, v)
			m.mu.Unlock()
			select {
			case <-m.stopping:
				return
			case <-tick.C:
			}
		}
	}()
}

// stop ends the sampling and returns the peak less the level at start, in MiB.
func (m *rssMeter) stop() float64 {
	close(m.stopping)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return float64(m.peak-m.base) / (1 << 20)
}

type cpuRun struct {
	Kernels     string    `json:"kernels"`
	Workers     int       `json:"workers"`
	WorkersNote string    `json:"workersNote"`
	Prefill     []float64 `json:"prefill"`
	Decode      []float64 `json:"decode"`
	LoadError   string    `json:"loadError"`
	Error       string    `json:"error"`
}

// cpuVisit loads the pack whole on the CPU backend, warms up, then
// generates runs times from prompts that differ in their first word (so
// the cached prefix does not shorten prefill) and returns each run's rates.
// It returns an error only when the engine could not load the pack (say,
// out of wasm memory); it fails t on anything after that.
func cpuVisit(t *testing.T, b *browser, url, prompt string, simd bool, workers, runs, n int) (cpuRun, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Minute)
	defer cancel()
	r, err := chromedp.Run(ctx, chromedp.Evaluate[cpuRun](fmt.Sprintf(`(async () => {
		let e;
		try {
			e = await mode.create({model: %q, backend: "cpu", cache: "none", eager: true, simd: %v, threads: %d});
		} catch (err) {
			return {loadError: String(err.message ?? err)};
		}
		try {
			await e.completions.create({prompt: "warm " + %q, temperature: 0, max_tokens: 4});
			const prefill = [], decode = [];
			for (let i = 0; i < %d; i++) {
				await e.completions.create({prompt: ["one", "two", "three", "four", "five"][i %% 5] + " " + %q, temperature: 0, max_tokens: %d});
				const s = await e.stats();
				prefill.push(s.prefillTokensPerSecond);
				decode.push(s.decodeTokensPerSecond);
			}
			const kernels = e.info.kernels, workers = e.info.workers, workersNote = e.info.workersNote ?? "";
			await e.unload();
			return {kernels, workers, workersNote, prefill, decode};
		} catch (err) {
			return {error: String(err.message ?? err)};
		}
	})()`, url, simd, workers, prompt, runs, prompt, n), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("in the browser: %v", err)
	}
	if r.LoadError != "" {
		return cpuRun{}, fmt.Errorf("mode (simd %v, %d workers) on %s: %s", simd, workers, url, r.LoadError)
	}
	if r.Error != "" {
		t.Fatalf("%s (simd %v): %s", url, simd, r.Error)
	}
	if want := map[bool]string{true: "simd128", false: "go"}[simd]; r.Kernels != want {
		t.Fatalf("%s: kernels %q, want %q", url, r.Kernels, want)
	}
	if r.Workers != workers {
		t.Fatalf("%s: %d workers (%s), want %d", url, r.Workers, r.WorkersNote, workers)
	}
	return r, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchShape is a model shape of bench-web: its name (the GGUFs' and
// packs' prefix, and MODE_BENCH_WEB_SHAPES's word), the synthetic model's
// options and a line saying what it is.
type benchShape struct {
	name, about string
	opts        synth.Options
	pureGo      bool // measure the pure-Go kernels too (slow on the larger shape)
}

// benchShapes are bench-web's shapes: Mixtral's (d=512, 8 layers, 8
// experts × 1408, top-2) and OLMoE's (d=1024, 16 layers, 64 experts ×
// 512, top-8, q/k norm: scripts/bench-cpu.sh's), both with vocab 512
// where bench-cpu has 4096 and 8192: bench.html's logit_bias (which keeps
// wllama off the non-UTF-8 byte tokens the random weights pick) costs
// nothing measurable over 512 entries, and the embedding and output are a
// small part of either model's weights.
func benchShapes() []benchShape {
	mix := synth.Default("mixtral")
	mix.Dim, mix.Layers, mix.Heads, mix.KVHeads, mix.FFN, mix.Experts, mix.TopK, mix.Vocab = 512, 8, 8, 4, 1408, 8, 2, 512
	olmoe := synth.Default("olmoe")
	olmoe.Dim, olmoe.Layers, olmoe.Heads, olmoe.KVHeads, olmoe.FFN, olmoe.Experts, olmoe.TopK, olmoe.Vocab = 1024, 16, 16, 16, 512, 64, 8, 512
	return []benchShape{
		{name: "mixtral", about: "Mixtral-shaped d=512, 8 layers, 8 experts × 1408, top-2", opts: mix, pureGo: true},
		{name: "olmoe", about: "OLMoE-shaped d=1024, 16 layers, 64 experts × 512, top-8", opts: olmoe},
	}
}

// benchShapeNamed is bench-web's shape of that name.
func benchShapeNamed(t *testing.T, name string) benchShape {
	t.Helper()
	for _, sh := range benchShapes() {
		if sh.name == name {
			return sh
		}
	}
	t.Fatalf("no bench-web shape %q", name)
	return benchShape{}
}

// benchShapesFromEnv is the shapes MODE_BENCH_WEB_SHAPES names
// (comma-separated, such as "olmoe" or "mixtral,olmoe"), or all of them.
func benchShapesFromEnv(t *testing.T) []benchShape {
	t.Helper()
	v := os.Getenv("MODE_BENCH_WEB_SHAPES")
	if v == "" {
		return benchShapes()
	}
	var out []benchShape
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		i := slices.IndexFunc(benchShapes(), func(sh benchShape) bool { return sh.name == f })
		if i < 0 {
			t.Fatalf("MODE_BENCH_WEB_SHAPES=%q: no shape %q (mixtral, olmoe)", v, f)
		}
		out = append(out, benchShapes()[i])
	}
	return out
}

var (
	benchFormats     = []gguf.GGMLType{gguf.TypeQ4_0, gguf.TypeQ8_0}
	benchFormatNames = map[gguf.GGMLType]string{gguf.TypeQ4_0: "q4_0", gguf.TypeQ8_0: "q8_0"}
)

// benchPacks writes shape sh's GGUFs in q4_0 and q8_0 into rb.tmp
// (SHAPE-FORMAT.gguf) and imports each into rb.tmp/packs/SHAPE-FORMAT
// keeping its blocks. It returns the packs' directory and the GGUFs by
// file name.
func benchPacks(t *testing.T, rb runtimeBuild, sh benchShape) (string, map[string]string) {
	t.Helper()
	packs, ggufs := filepath.Join(rb.tmp, "packs"), map[string]string{}
	for _, q := range benchFormats {
		name := sh.name + "-" + benchFormatNames[q]
		g := filepath.Join(rb.tmp, name+".gguf")
		if err := synth.WriteGGUF(g, sh.opts, q); err != nil {
			t.Fatalf("writing %s: %v", g, err)
		}
		packModel(t, g, filepath.Join(packs, name), tensor.Invalid) // the GGUF's blocks as they are
		ggufs[filepath.Base(g)] = g
	}
	return packs, ggufs
}

// benchRounds is MODE_BENCH_WEB_ROUNDS, or 3.
func benchRounds() int {
	if v, err := strconv.Atoi(os.Getenv("MODE_BENCH_WEB_ROUNDS")); err == nil && v > 0 {
		return v
	}
	return 3
}
