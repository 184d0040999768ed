package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBenchWorkers measures the browser's CPU path on 1 and 2 workers
// (routed experts split with an expert peer) on bench-web's Mixtral-shaped
// q4_0 and q8_0 packs: prefill and decode tokens/s of warm runs, the peak
// resident memory of Chromium over each visit less the level before it,
// and, on 2 workers, the exchange's own latency (round trips with the peer
// of one token and no experts, self.modePeerRoundTrips). With
// MODE_BENCH_WORKERS_B set to another source tree of the project (say a
// `git archive` of an older commit, which must have modePeerRoundTrips
// too), its mode.wasm and web/ are measured beside this tree's, the visits
// interleaved. A measurement, not a check: MODE_BENCH_WEB=1 runs it.
func TestBenchWorkers(t *testing.T) {
	if os.Getenv("MODE_BENCH_WEB") == "" {
		t.Skip("a benchmark: set MODE_BENCH_WEB=1 to run it")
	}
	chromium := findChromium(t)
	rb := buildRuntime(t)
	packs, _ := benchPacks(t, rb, benchShapeNamed(t, "mixtral"))
	prompt, promptTokens := promptOf(t, filepath.Join(packs, "mixtral-q4_0"), 54)

	type tree struct{ name, base string }
	trees := []tree{{"this", startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(rb.root, "web"),
		"--wasm", rb.wasm, "--models", packs)}}
	if dir := os.Getenv("MODE_BENCH_WORKERS_B"); dir != "" {
		wasm := filepath.Join(rb.tmp, "mode-b.wasm")
		goBuild(t, dir, []string{"GOOS=js", "GOARCH=wasm"}, wasm, "./cmd/wasm")
		trees = append(trees, tree{"B", startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(dir, "web"),
			"--wasm", wasm, "--models", packs)})
	}
	b := openBrowser(t, chromium, trees[0].base+"index.html")
	mem := newRSSMeter(t, b)
	rounds, runs := benchRounds(), 3
	const decode, trips = 32, 2000
	fmt.Printf("\nbench workers: Mixtral-shaped d=512, 8 layers, 8 experts × 1408, top-2; prompt %d tokens, %d decoded; %d rounds × %d warm runs per side, interleaved; medians. Peak MiB: Chromium's resident memory over the visit (load included) less before it. Exchange: µs per round trip with the peer (one token, no experts), %d in a row.\n",
		promptTokens, decode, rounds, runs, trips)
	fmt.Printf("%-6s %-6s %-3s %12s %12s %9s %12s  %s\n", "format", "tree", "w", "prefill t/s", "decode t/s", "peak MiB", "exchange µs", "wasm MiB (engine, peers; last visit)")
	for _, name := range []string{"q4_0", "q8_0"} {
		type side struct {
			tree    tree
			workers int
		}
		var sides []side
		for _, tr := range trees {
			sides = append(sides, side{tr, 1}, side{tr, 2})
		}
		pre, dec, trip := make([][]float64, len(sides)), make([][]float64, len(sides)), make([][]float64, len(sides))
		wasm := make([][]float64, len(sides))
		peak := make([]float64, len(sides))
		for r := range rounds {
			for k := range sides {
				i := (k + r) % len(sides)
				sd := sides[i]
				if err := openPage(b.ctx, sd.tree.base+"index.html", "window.mode !== undefined"); err != nil {
					t.Fatalf("the demo page did not load mode.js: %v", err)
				}
				mem.start()
				v := workersVisit(t, b, "/packs/mixtral-"+name+"/manifest.json", prompt, sd.workers, runs, decode, trips)
				peak[i] = max(peak[i], mem.stop())
				pre[i] = append(pre[i], v.Prefill...)
				dec[i] = append(dec[i], v.Decode...)
				wasm[i] = v.Wasm
				if v.TripMs > 0 {
					trip[i] = append(trip[i], v.TripMs*1000/trips)
				}
			}
		}
		for i, sd := range sides {
			ex := "-"
			if len(trip[i]) > 0 {
				ex = fmt.Sprintf("%.0f", median(trip[i]))
			}
			fmt.Printf("%-6s %-6s %-3d %12.1f %12.1f %9.0f %12s  %v\n", name, sd.tree.name, sd.workers, median(pre[i]), median(dec[i]), peak[i], ex, wasm[i])
		}
	}
}

type workersVisitResult struct {
	Workers int       `json:"workers"`
	Prefill []float64 `json:"prefill"`
	Decode  []float64 `json:"decode"`
	Error   string    `json:"error"`
	TripMs  float64
	Wasm    []float64 // MiB: the engine's wasm memory, then each peer's
}

// workersVisit loads url whole on the CPU path with the given workers,
// warms up, generates runs times and, on 2 workers, times trips round
// trips with the peer from the engine worker before unloading.
func workersVisit(t *testing.T, b *browser, url, prompt string, workers, runs, n, trips int) workersVisitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Minute)
	defer cancel()
	r, err := chromedp.Run(ctx, chromedp.Evaluate[workersVisitResult](fmt.Sprintf(`(async () => {
		try {
			const e = await mode.create({model: %q, backend: "cpu", cache: "none", eager: true, threads: %d});
			window.benchEngine = e;
			await e.completions.create({prompt: "warm " + %q, temperature: 0, max_tokens: 4});
			const prefill = [], decode = [];
			for (let i = 0; i < %d; i++) {
				await e.completions.create({prompt: ["one", "two", "three", "four", "five"][i %% 5] + " " + %q, temperature: 0, max_tokens: %d});
				const s = await e.stats();
				prefill.push(s.prefillTokensPerSecond);
				decode.push(s.decodeTokensPerSecond);
			}
			return {workers: e.info.workers, prefill, decode};
		} catch (err) {
			return {error: String(err.message ?? err)};
		}
	})()`, url, workers, prompt, runs, prompt, n), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("in the browser: %v", err)
	}
	if r.Error != "" {
		t.Fatalf("%s on %d workers: %s", url, workers, r.Error)
	}
	if r.Workers != workers {
		t.Fatalf("%s: %d workers, want %d", url, r.Workers, workers)
	}
	if workers == 2 {
		r.TripMs = engineWorkerEval[float64](t, b, fmt.Sprintf("self.modePeerRoundTrips(%d, 512)", trips))
	}
	// The instances' wasm memories (a tree without modePeers.memory: -1).
	r.Wasm = engineWorkerEval[[]float64](t, b, "self.modePeers?.memory ? (m => [m.engine, ...m.peers].map(v => v / 1048576))(self.modePeers.memory()) : [-1]")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any]("window.benchEngine.unload()", chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("unload: %v", err)
	}
	return r
}
