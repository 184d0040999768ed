package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestBenchWeb measures, in headless Chromium against a devserver
// throttled to 100 Mbit/s with 20 ms latency per request, the time to the
// first token and the bytes downloaded before it for an OLMoE-shaped pack
// (16 layers, 64 experts, top-8, q4_0) and a 32-token prompt, loaded
// two ways in the same run:
//
//   - lazy: routed experts are fetched when first routed to, with
//     pre-gating prefetch (the default);
//   - whole pack: every shard is downloaded before the model loads (the
//     eager load option), as a runtime without lazy loading would.
//
// and, from the same checkpoint as a bf16 hub repository served by
// devserver --hf, hf:test/olmoe16 converted to q4_0 in the worker. It also
// reports the prefetch hit rate and the decode speed on the
// adapter "auto" picks (WebGPU when the browser has one, else the CPU).
// It is a measurement, not a check: run it with `make bench-web`
// (MODE_BENCH_WEB=1); `make test` skips it.
func TestBenchWeb(t *testing.T) {
	if os.Getenv("MODE_BENCH_WEB") == "" {
		t.Skip("a benchmark: set MODE_BENCH_WEB=1 (make bench-web) to run it")
	}
	chromium := findChromium(t)
	rb := buildRuntime(t)
	root, tmp, wasm, server := rb.root, rb.tmp, rb.wasm, rb.server

	pack := filepath.Join(tmp, "packs", "olmoe16")
	const layers, experts, topK = 16, 64, 8
	shape := func(o *synth.Options) {
		o.Layers, o.Experts, o.TopK = layers, experts, topK
		o.Dim, o.FFN = 64, 64 // small enough for SwiftShader; whole q4_0 blocks
		o.DType = tensor.BF16 // as checkpoints on the hub are
	}
	synthPack(t, tmp, "olmoe", pack, shape, tensor.Q4_0)
	// The same checkpoint as a two-file hub repository, for hf: (converted
	// to q4_0 in the worker, as the pack was at import).
	hub := filepath.Join(tmp, "hub")
	o := synth.Default("olmoe")
	shape(&o)
	o.Files = 2
	if err := synth.Write(filepath.Join(hub, "test", "olmoe16"), o); err != nil {
		t.Fatal(err)
	}
	prompt, promptTokens := promptOf(t, pack, 32)
	packSize := dirSize(t, pack)

	base := startServer(t, server, "--addr", "127.0.0.1:0", "--web", filepath.Join(root, "web"),
		"--wasm", wasm, "--models", filepath.Join(tmp, "packs"), "--hf", hub, "--throttle", "100mbit", "--latency", "20ms")
	b := openBrowserWith(t, chromium, base+"index.html", true)

	const decodeTokens = 16
	lazy := benchVisit(t, b, "/packs/olmoe16/manifest.json", prompt, "auto", false, decodeTokens)
	whole := benchVisit(t, b, "/packs/olmoe16/manifest.json", prompt, "auto", true, decodeTokens)
	// The same lazy load on the CPU backend, to tell network from compute.
	onCPU := benchVisit(t, b, "/packs/olmoe16/manifest.json", prompt, "cpu", false, decodeTokens)
	hf := benchVisit(t, b, "hf:test/olmoe16", prompt, "auto", false, decodeTokens)
	// hf: with Cache Storage: a first visit keeps the converted shards,
	// a second takes them from there (no download, no conversion).
	hfKeep := benchVisitCache(t, b, "hf:test/olmoe16", prompt, "auto", false, decodeTokens, "cache-storage")
	hfAgain := benchVisitCache(t, b, "hf:test/olmoe16", prompt, "auto", false, decodeTokens, "cache-storage")
	if lazy.Error != "" || whole.Error != "" || onCPU.Error != "" || hf.Error != "" || hfKeep.Error != "" || hfAgain.Error != "" {
		t.Fatalf("lazy: %s; whole pack: %s; lazy on cpu: %s; hf: %s; hf: kept: %s, again: %s", lazy.Error, whole.Error, onCPU.Error, hf.Error, hfKeep.Error, hfAgain.Error)
	}
	if hfAgain.Text != hf.Text {
		t.Errorf("hf: from Cache Storage generated different text:\n%q\n%q", hfAgain.Text, hf.Text)
	}
	if lazy.Text != whole.Text {
		t.Errorf("lazy and whole-pack loads generated different text:\n%q\n%q", lazy.Text, whole.Text)
	}
	if hf.Text != lazy.Text {
		t.Errorf("hf: and the pack generated different text:\n%q\n%q", hf.Text, lazy.Text)
	}

	fmt.Printf("\nbench-web: OLMoE-shaped pack, %d layers, %d experts, top-%d, q4_0, %.1f MB on disk; prompt %d tokens; devserver --throttle 100mbit --latency 20ms; backend %s\n",
		layers, experts, topK, float64(packSize)/1e6, promptTokens, lazy.Backend)
	fmt.Printf("%-34s %12s %12s %8s\n", "", "lazy+prefetch", "whole pack", "ratio")
	fmt.Printf("%-34s %12.0f %12.0f %8.2f\n", "time to first token (ms)", lazy.TTFT, whole.TTFT, whole.TTFT/lazy.TTFT)
	fmt.Printf("%-34s %12.2f %12.2f %8.2f\n", "MB downloaded before first token", mb(lazy.FirstBytes), mb(whole.FirstBytes), float64(whole.FirstBytes)/float64(max(lazy.FirstBytes, 1)))
	fmt.Printf("%-34s %12.0f %12.0f\n", "  of which load (ms)", lazy.LoadMS, whole.LoadMS)
	fmt.Printf("%-34s %12d %12s\n", "experts fetched before first token", lazy.FirstStats.ExpertFetches+lazy.FirstStats.Prefetched, "all")
	fmt.Printf("%-34s %12s %12s\n", "prefetch hits / prefetched", fmt.Sprintf("%d/%d", lazy.Stats.PrefetchHits, lazy.Stats.Prefetched), "-")
	fmt.Printf("%-34s %12.0f%% %11s\n", "prefetch hit rate", 100*ratio(lazy.Stats.PrefetchHits, lazy.Stats.Prefetched), "-")
	fmt.Printf("%-34s %12.2f %12.2f\n", "decode tokens/s ("+lazy.Backend+")", lazy.Stats.Decode, whole.Stats.Decode)
	fmt.Printf("%-34s %12.2f %12.2f\n", "MB downloaded in all", mb(lazy.Stats.BytesFetched), mb(whole.Stats.BytesFetched))
	fmt.Println("ratio: whole pack / lazy (above 1: lazy is better)")
	fmt.Printf("hf:test/olmoe16 (the same checkpoint, bf16 in 2 safetensors files, converted to q4_0 in the worker), lazy+prefetch: time to first token %.0f ms (%.2fx the pack's), %.2f MB before it (%.2fx), %.2f MB in all (%.2fx), decode %.2f tokens/s\n",
		hf.TTFT, hf.TTFT/lazy.TTFT, mb(hf.FirstBytes), float64(hf.FirstBytes)/float64(max(lazy.FirstBytes, 1)),
		mb(hf.Stats.BytesFetched), float64(hf.Stats.BytesFetched)/float64(max(lazy.Stats.BytesFetched, 1)), hf.Stats.Decode)
	fmt.Printf("hf:test/olmoe16 second visit (Cache Storage holds the converted shards): time to first token %.0f ms (%.2fx the first visit's, %.2fx the pack's), %.2f MB of weights downloaded before it, %.2f MB in all (the first visit: %.2f), %d tensors converted (the first visit: %d)\n",
		hfAgain.TTFT, hfAgain.TTFT/hfKeep.TTFT, hfAgain.TTFT/lazy.TTFT, mb(hfAgain.FirstBytes), mb(hfAgain.Stats.BytesFetched), mb(hfKeep.Stats.BytesFetched),
		hfAgain.Stats.Conversions, hfKeep.Stats.Conversions)
	fmt.Printf("lazy+prefetch on the cpu backend: time to first token %.0f ms (load %.0f ms), %.2f MB before it, prefetch hit rate %.0f%%, decode %.2f tokens/s\n",
		onCPU.TTFT, onCPU.LoadMS, mb(onCPU.FirstBytes), 100*ratio(onCPU.Stats.PrefetchHits, onCPU.Stats.Prefetched), onCPU.Stats.Decode)
}

// benchStats is the part of engine.stats() the benchmark reads.
type benchStats struct {
	BytesFetched  int64   `json:"bytesFetched"`
	ExpertFetches int     `json:"expertFetches"`
	Prefetched    int     `json:"prefetched"`
	PrefetchHits  int     `json:"prefetchHits"`
	Decode        float64 `json:"decodeTokensPerSecond"`
	Conversions   int     `json:"conversions"`
}

type benchRun struct {
	Backend    string     `json:"backend"`
	LoadMS     float64    `json:"loadMS"`
	TTFT       float64    `json:"ttftMS"` // from mode.create to the first token
	FirstBytes int64      `json:"firstBytes"`
	FirstStats benchStats `json:"firstStats"`
	Stats      benchStats `json:"stats"` // after decoding too
	Text       string     `json:"text"`
	Error      string     `json:"error"`
}

// benchVisit loads the pack on backend (eagerly or lazily, with an empty cache),
// generates the first token and reads the stats, then decodes n tokens.
func benchVisit(t *testing.T, b *browser, manifestURL, prompt, backend string, eager bool, n int) benchRun {
	t.Helper()
	return benchVisitCache(t, b, manifestURL, prompt, backend, eager, n, "none")
}

// benchVisitCache is benchVisit with the cache option given.
func benchVisitCache(t *testing.T, b *browser, manifestURL, prompt, backend string, eager bool, n int, cache string) benchRun {
	t.Helper()
	js := fmt.Sprintf(`(async () => {
		try {
			const t0 = performance.now();
			const e = await mode.create({model: %q, hfEndpoint: "/hf", backend: %q, cache: %q, eager: %v});
			const t1 = performance.now();
			await e.completions.create({prompt: %q, temperature: 0, max_tokens: 1});
			const t2 = performance.now();
			const first = await e.stats();
			const r = await e.completions.create({prompt: %q, temperature: 0, max_tokens: %d});
			const stats = await e.stats();
			await e.unload();
			return {backend: e.info.backend, loadMS: t1 - t0, ttftMS: t2 - t0, firstBytes: first.bytesFetched,
				firstStats: first, stats, text: r.choices[0].text};
		} catch (err) {
			return {error: String(err.message ?? err)};
		}
	})()`, manifestURL, backend, cache, eager, prompt, prompt, n)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Minute)
	defer cancel()
	r, err := chromedp.Run(ctx, chromedp.Evaluate[benchRun](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("in the browser: %v", err)
	}
	return r
}

// promptOf returns a prompt that the pack's tokenizer encodes into n
// tokens (BOS included, when the pack adds one), or as close below as the
// words allow, and its length.
func promptOf(t *testing.T, dir string, n int) (string, int) {
	t.Helper()
	pk, err := loader.Open(context.Background(), dir, shard.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	count := func(s string) int {
		k := len(pk.Tokenizer.Encode(s))
		if pk.AddBOS {
			k++
		}
		return k
	}
	words := strings.Fields(strings.Repeat("the cat sat on the mat and the dog ran to the park where a bird sang in a tall tree ", 8))
	text, got := "", 0
	for _, w := range words {
		next := strings.TrimSpace(text + " " + w)
		k := count(next)
		if k > n {
			break
		}
		text, got = next, k
	}
	return text, got
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
