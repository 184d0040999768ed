package e2e

import (
	"context"
	"fmt"
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
// Chromium, on the same weights: Mixtral-shaped (d=512, 8 layers, 8
// experts × 1408, top-2, vocab 512) GGUFs the project's writer makes in
// q4_0 and q8_0, which wllama loads as they are and mode imports into
// packs keeping every block. Prefill and decode tokens/s of warm runs (the
// sides interleaved, medians), mode's ratios to each, and the peak
// resident memory of Chromium's processes over each side's visits, less
// the idle browser's. mode's CPU path runs on one thread (js/wasm Go);
// wllama on one thread is the equal-thread comparison, on two (the page
// is cross-origin isolated) shown beside it. A measurement, not a check:
// `make bench-web` (MODE_BENCH_WEB=1) runs it.
func TestBenchWebCPU(t *testing.T) {
	if os.Getenv("MODE_BENCH_WEB") == "" {
		t.Skip("a benchmark: set MODE_BENCH_WEB=1 (make bench-web) to run it")
	}
	chromium := findChromium(t)
	wdir := wllamaDir(t)
	rb := buildRuntime(t)
	packs, ggufs, o := benchMixtral(t, rb)
	formats := []gguf.GGMLType{gguf.TypeQ4_0, gguf.TypeQ8_0}
	names := map[gguf.GGMLType]string{gguf.TypeQ4_0: "q4_0", gguf.TypeQ8_0: "q8_0"}
	prompt, promptTokens := promptOf(t, filepath.Join(packs, "mixtral-q4_0"), 54)
	base := startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(rb.root, "web"),
		"--wasm", rb.wasm, "--models", packs)
	wbase := startWllamaServer(t, wdir, ggufs)
	b := openBrowser(t, chromium, base+"index.html")
	mem := newRSSMeter(t, b)

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
	type side struct {
		name    string
		simd    bool
		threads int // wllama's; 0 for mode
		workers int // mode's (its threads option)
	}
	sides := []side{{"mode simd128", true, 0, 1}, {"mode simd128 2w", true, 0, 2}, {"mode go", false, 0, 1}}
	for _, n := range wthreads {
		sides = append(sides, side{fmt.Sprintf("wllama %dt", n), false, n, 0})
	}

	rounds, runs := benchRounds(), 3
	const decode = 32
	fmt.Printf("\nbench-web cpu: Mixtral-shaped d=512, 8 layers, 8 experts × 1408, top-2, vocab %d, from the project's GGUF writer; prompt %d tokens, %d decoded, greedy; %d rounds × %d warm runs per side, interleaved; medians. wllama %s (@wllama/wllama, llama.cpp in wasm) on the same GGUF, mode on the pack imported from it. mode's CPU path runs on one worker, or on two (2w: routed experts split between two mode.wasm workers). Peak MiB: Chromium's resident memory during the side's visits (load included) less the idle browser's.\n",
		o.Vocab, promptTokens, decode, rounds, runs, wllamaVersion(t, wdir))
	fmt.Printf("%-6s %-16s %12s %12s %9s   %-22s %s\n", "format", "side", "prefill t/s", "decode t/s", "peak MiB", "mode simd128 / side", "mode at equal threads / side")
	for _, q := range formats {
		url := "/packs/mixtral-" + names[q] + "/manifest.json"
		pre, dec := make([][]float64, len(sides)), make([][]float64, len(sides))
		peak := make([]float64, len(sides))
		var wpromptN int
		for r := range rounds {
			for k := range sides {
				i := (k + r) % len(sides) // rotate which side goes first
				sd := sides[i]
				mem.start()
				if sd.threads == 0 {
					if err := chromedp.Do(b.ctx, chromedp.Navigate(base+"index.html")); err != nil {
						t.Fatal(err)
					}
					if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool]("window.mode !== undefined")); err != nil {
						t.Fatalf("the demo page did not load mode.js: %v", err)
					}
					v := cpuVisit(t, b, url, prompt, sd.simd, sd.workers, runs, decode)
					pre[i] = append(pre[i], v.Prefill...)
					dec[i] = append(dec[i], v.Decode...)
				} else {
					v := wllamaVisit(t, b, wbase+"bench.html", "/gguf/mixtral-"+names[q]+".gguf", sd.threads, prompt, decode, runs, o.Vocab)
					if v.Threads != sd.threads {
						t.Fatalf("wllama: asked for %d threads, runs %d", sd.threads, v.Threads)
					}
					pre[i] = append(pre[i], v.Prefill...)
					dec[i] = append(dec[i], v.Decode...)
					wpromptN = v.PromptNs[0]
				}
				peak[i] = max(peak[i], mem.stop())
			}
		}
		// Printed per format as soon as it is done, so that a run cut short
		// still reports what it measured.
		p0, d0 := median(pre[0]), median(dec[0])
		for i, sd := range sides {
			p, d := median(pre[i]), median(dec[i])
			ratio, equal := "", ""
			if i > 0 {
				ratio = fmt.Sprintf("%.2fx, %.2fx", p0/p, d0/d)
			}
			// wllama on n threads against mode simd128 on n workers
			for j, m := range sides {
				if sd.threads > 0 && m.simd && m.workers == sd.threads {
					equal = fmt.Sprintf("%.2fx, %.2fx", median(pre[j])/p, median(dec[j])/d)
				}
			}
			fmt.Printf("%-6s %-16s %12.1f %12.1f %9.0f   %-22s %s\n", names[q], sd.name, p, d, peak[i], ratio, equal)
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
	Error       string    `json:"error"`
}

// cpuVisit loads the pack whole on the CPU backend, warms up, then
// generates runs times from prompts that differ in their first word (so
// the cached prefix does not shorten prefill) and returns each run's rates.
func cpuVisit(t *testing.T, b *browser, url, prompt string, simd bool, workers, runs, n int) cpuRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Minute)
	defer cancel()
	r, err := chromedp.Run(ctx, chromedp.Evaluate[cpuRun](fmt.Sprintf(`(async () => {
		try {
			const e = await mode.create({model: %q, backend: "cpu", cache: "none", eager: true, simd: %v, threads: %d});
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
	if r.Error != "" {
		t.Fatalf("%s (simd %v): %s", url, simd, r.Error)
	}
	if want := map[bool]string{true: "simd128", false: "go"}[simd]; r.Kernels != want {
		t.Fatalf("%s: kernels %q, want %q", url, r.Kernels, want)
	}
	if r.Workers != workers {
		t.Fatalf("%s: %d workers (%s), want %d", url, r.Workers, r.WorkersNote, workers)
	}
	return r
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchMixtral writes bench-web's Mixtral-shaped GGUFs (d=512, 8 layers,
// 8 experts × 1408, top-2, vocab 512) in q4_0 and q8_0 into rb.tmp and
// imports each into packs/mixtral-FORMAT keeping its blocks. It returns
// the packs' directory, the GGUFs by file name and the shape.
func benchMixtral(t *testing.T, rb runtimeBuild) (string, map[string]string, synth.Options) {
	t.Helper()
	packs := filepath.Join(rb.tmp, "packs")
	o := synth.Default("mixtral")
	o.Dim, o.Layers, o.Heads, o.KVHeads, o.FFN, o.Experts, o.TopK, o.Vocab = 512, 8, 8, 4, 1408, 8, 2, 512
	ggufs := map[string]string{}
	for q, name := range map[gguf.GGMLType]string{gguf.TypeQ4_0: "q4_0", gguf.TypeQ8_0: "q8_0"} {
		g := filepath.Join(rb.tmp, "mixtral-"+name+".gguf")
		if err := synth.WriteGGUF(g, o, q); err != nil {
			t.Fatal(err)
		}
		packModel(t, g, filepath.Join(packs, "mixtral-"+name), tensor.Invalid) // the GGUF's blocks as they are
		ggufs[filepath.Base(g)] = g
	}
	return packs, ggufs, o
}

// benchRounds is MODE_BENCH_WEB_ROUNDS, or 3.
func benchRounds() int {
	if v, err := strconv.Atoi(os.Getenv("MODE_BENCH_WEB_ROUNDS")); err == nil && v > 0 {
		return v
	}
	return 3
}
