package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestWorkers runs the CPU path on more than one Web Worker: on the
// devserver's cross-origin isolated page, the greedy tokens of synthetic
// MoE packs with 2 workers (routed experts split between two mode.wasm
// instances, cpu.Peer) equal those with 1 worker and the native engine's,
// and experts were in fact split (too small ones not); the default is 2
// workers there. A peer that stops answering fails the generation with
// worker_failed after the engine's 60 s wait, never a hang; one that
// cannot start leaves one worker and a note. An isolated page of another
// origin (engine and peers started from blob: URLs) gets 2 workers too,
// and so does an eager load (the pack downloaded whole first).
// A page served without
// COOP/COEP (a proxy that drops them) still generates the same tokens, on
// one worker, and says why.
func TestWorkers(t *testing.T) {
	chromium := findChromium(t)
	rb := buildRuntime(t)
	packs := filepath.Join(rb.tmp, "packs")
	// Experts of 512 × 256, large enough to be split (runtime/cpu's
	// minSplit); q4_k's cut falls on a super-block of 256.
	wide := func(o *synth.Options) { o.Dim, o.FFN = 256, 512 }
	synthPack(t, rb.tmp, "mixtral", filepath.Join(packs, "mixtral-q4_0"), wide, tensor.Q4_0)
	// a shared expert beside the split routed ones
	synthPack(t, rb.tmp, "qwen2_moe", filepath.Join(packs, "qwen2moe-q8_0"), func(o *synth.Options) { o.Dim, o.ExpertFFN = 256, 512 }, tensor.Q8_0)
	synthPack(t, rb.tmp, "mixtral", filepath.Join(packs, "mixtral-q4_k"), wide, tensor.Q4_K)
	// the synthetic default (96 × 64) is too small to repay an exchange
	synthPack(t, rb.tmp, "mixtral", filepath.Join(packs, "mixtral-small"), nil, tensor.Q4_0)

	base := startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(rb.root, "web"),
		"--wasm", rb.wasm, "--models", packs)
	b := openBrowser(t, chromium, base+"index.html")
	if !eval[bool](t, b, "self.crossOriginIsolated === true") {
		t.Fatal("the devserver's page is not cross-origin isolated: the test needs COOP/COEP")
	}
	cores := eval[int](t, b, "navigator.hardwareConcurrency")
	const prompt, n = "the cat sat on the mat and then", 24
	for _, name := range []string{"mixtral-q4_0", "qwen2moe-q8_0", "mixtral-q4_k"} {
		t.Run(name, func(t *testing.T) {
			want, _, _ := native(t, filepath.Join(packs, name), prompt, n)
			url := "/packs/" + name + "/manifest.json"
			one := workersRun(t, b, url, 1, prompt, n)
			two := workersRun(t, b, url, 2, prompt, n)
			if !slices.Equal(one.IDs, want) {
				t.Errorf("1 worker generated %v\n             native %v", one.IDs, want)
			}
			if !slices.Equal(two.IDs, one.IDs) {
				t.Errorf("2 workers generated %v\n       1 worker  %v", two.IDs, one.IDs)
			}
			if one.Workers != 1 || one.Stats.Split != 0 {
				t.Errorf("threads 1: %d workers (%s), %d experts split; want 1 and none", one.Workers, one.Note, one.Stats.Split)
			}
			if two.Workers != 2 || two.Stats.Workers != 2 || two.Stats.Split == 0 {
				t.Errorf("threads 2: %d workers (%s; stats %d), %d experts split; want 2 and some split", two.Workers, two.Note, two.Stats.Workers, two.Stats.Split)
			}
		})
	}
	t.Run("eager", func(t *testing.T) {
		// The pack downloaded whole first, its spans handed over to the
		// engine as experts are read (cmd/wasm memSource): the same tokens.
		want, _, _ := native(t, filepath.Join(packs, "mixtral-q4_0"), prompt, n)
		r := eval[workersResult](t, b, fmt.Sprintf(`(async () => {
			const e = await mode.create({model: "/packs/mixtral-q4_0/manifest.json", backend: "cpu", cache: "none", eager: true, threads: 2});
			try {
				const out = [];
				for (let i = 0; i < 2; i++) {
					const r = await e.completions.create({prompt: %q, temperature: 0, max_tokens: %d, return_token_ids: true});
					out.push(r.choices[0].token_ids);
				}
				if (JSON.stringify(out[0]) !== JSON.stringify(out[1])) throw new Error("the second run differs: " + JSON.stringify(out));
				return {ids: out[0], workers: e.info.workers, note: e.info.workersNote ?? "", stats: await e.stats()};
			} finally {
				await e.unload();
			}
		})()`, prompt, n))
		if r.Workers != 2 || r.Stats.Split == 0 || !slices.Equal(r.IDs, want) {
			t.Errorf("%d workers (%s), %d experts split, generated %v; want 2, some split and the native %v", r.Workers, r.Note, r.Stats.Split, r.IDs, want)
		}
	})
	t.Run("experts too small to split", func(t *testing.T) {
		want, _, _ := native(t, filepath.Join(packs, "mixtral-small"), prompt, n)
		r := workersRun(t, b, "/packs/mixtral-small/manifest.json", 2, prompt, n)
		if r.Workers != 2 || r.Stats.Split != 0 || !slices.Equal(r.IDs, want) {
			t.Errorf("%d workers, %d experts split, generated %v; want 2, none split (all too small) and the native %v", r.Workers, r.Stats.Split, r.IDs, want)
		}
	})
	t.Run("default", func(t *testing.T) {
		r := workersRun(t, b, "/packs/mixtral-q4_0/manifest.json", 0, prompt, 4)
		if w := min(2, cores); r.Workers != w {
			t.Errorf("default on an isolated page with %d cores: %d workers (%s), want %d", cores, r.Workers, r.Note, w)
		}
	})

	t.Run("a peer that stops answering", func(t *testing.T) {
		// Once loaded, the engine worker's messages to its peer are made
		// to vanish (in that worker, through Chromium's DevTools): the
		// next generation must fail with an error naming the worker after
		// the engine's wait times out, not hang.
		const load = `(async () => { window.stalled = await mode.create({model: "/packs/mixtral-q4_0/manifest.json", backend: "cpu", cache: "none", threads: 2}); return window.stalled.info.workers; })()`
		if w := eval[int](t, b, load); w != 2 {
			t.Fatalf("%d workers, want 2", w)
		}
		engineWorker(t, b, "self.modePeers.send = () => ''; true")
		start := time.Now()
		got := evalFor[string](t, b, `window.stalled.completions.create({prompt: "the cat", temperature: 0, max_tokens: 4}).then(() => "generated", (e) => e.code + ": " + e.message)`, 3*time.Minute)
		t.Logf("after %.0f s: %s", time.Since(start).Seconds(), got)
		if !strings.HasPrefix(got, "worker_failed: ") || !strings.Contains(got, "expert worker 1: did not answer") {
			t.Errorf("got %q, want worker_failed: ... expert worker 1: did not answer ...", got)
		}
		if u := eval[string](t, b, `window.stalled.unload().then(() => "unloaded", (e) => String(e))`); u != "unloaded" {
			t.Errorf("unload after the failure: %s", u)
		}
	})

	t.Run("a peer that cannot start", func(t *testing.T) {
		// The second fetch of mode.wasm, the peer's, fails: the engine
		// runs on one worker and says why.
		page := startProxy(t, base, false, func(r *http.Request, n int) bool {
			return strings.HasSuffix(r.URL.Path, "/mode.wasm") && n == 2
		})
		p := openBrowser(t, chromium, page+"index.html")
		want, _, _ := native(t, filepath.Join(packs, "mixtral-q4_0"), prompt, n)
		r := workersRun(t, p, "/packs/mixtral-q4_0/manifest.json", 2, prompt, n)
		if r.Workers != 1 || !strings.Contains(r.Note, "one worker: ") || !strings.Contains(r.Note, "mode.wasm") {
			t.Errorf("%d workers, note %q; want 1 and a note naming the peer's failure", r.Workers, r.Note)
		}
		if !slices.Equal(r.IDs, want) {
			t.Errorf("generated %v\n   native %v", r.IDs, want)
		}
	})

	t.Run("an isolated page of another origin", func(t *testing.T) {
		// mode.js imported from the devserver into an isolated page on
		// another port: the engine worker starts from a blob: URL, and so
		// do its peers.
		host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cross-Origin-Opener-Policy", "same-origin")
			w.Header().Set("Cross-Origin-Embedder-Policy", "require-corp")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><title>another site</title><link rel="icon" href="data:,">
<script type="module">import * as mode from %q; window.mode = mode;</script>`, base+"mode.js")
		}))
		t.Cleanup(host.Close)
		h := openBrowser(t, chromium, host.URL+"/")
		if !eval[bool](t, h, "self.crossOriginIsolated === true") {
			t.Fatal("the host page is not cross-origin isolated")
		}
		want, _, _ := native(t, filepath.Join(packs, "mixtral-q4_0"), prompt, n)
		r := workersRun(t, h, base+"packs/mixtral-q4_0/manifest.json", 2, prompt, n)
		if r.Workers != 2 || r.Stats.Split == 0 || !slices.Equal(r.IDs, want) {
			t.Errorf("%d workers (%s), %d experts split, generated %v; want 2, some split and the native %v", r.Workers, r.Note, r.Stats.Split, r.IDs, want)
		}
	})

	t.Run("without cross-origin isolation", func(t *testing.T) {
		page := startProxy(t, base, true, nil)
		u := openBrowser(t, chromium, page+"index.html")
		if eval[bool](t, u, "self.crossOriginIsolated === true") {
			t.Fatal("the proxied page is still cross-origin isolated: the check would prove nothing")
		}
		want, _, _ := native(t, filepath.Join(packs, "mixtral-q4_0"), prompt, n)
		for _, threads := range []int{0, 2} {
			r := workersRun(t, u, "/packs/mixtral-q4_0/manifest.json", threads, prompt, n)
			if r.Workers != 1 || r.Stats.Split != 0 || !strings.Contains(r.Note, "not cross-origin isolated") {
				t.Errorf("threads %d: %d workers, %d experts split, note %q; want 1 worker and a note saying the page is not cross-origin isolated",
					threads, r.Workers, r.Stats.Split, r.Note)
			}
			if !slices.Equal(r.IDs, want) {
				t.Errorf("threads %d: generated %v\n        native %v", threads, r.IDs, want)
			}
		}
	})
}

type workersResult struct {
	IDs     []int  `json:"ids"`
	Workers int    `json:"workers"`
	Note    string `json:"note"`
	Stats   struct {
		Workers int     `json:"workers"`
		Split   int     `json:"expertsSplit"`
		Prefill float64 `json:"prefillTokensPerSecond"`
		Decode  float64 `json:"decodeTokensPerSecond"`
	} `json:"stats"`
}

// workersRun loads url on the CPU path with threads workers (0: the
// default), generates n tokens greedily and unloads.
func workersRun(t *testing.T, b *browser, url string, threads int, prompt string, n int) workersResult {
	t.Helper()
	r := eval[workersResult](t, b, fmt.Sprintf(`(async () => {
		const e = await mode.create({model: %q, backend: "cpu", cache: "none", threads: %d});
		try {
			const r = await e.completions.create({prompt: %q, temperature: 0, max_tokens: %d, return_token_ids: true});
			return {ids: r.choices[0].token_ids, workers: e.info.workers, note: e.info.workersNote ?? "", stats: await e.stats()};
		} finally {
			await e.unload();
		}
	})()`, url, threads, prompt, n))
	t.Logf("threads %d: %d workers (%s), %d experts split; prefill %.0f tok/s, decode %.0f tok/s",
		threads, r.Workers, r.Note, r.Stats.Split, r.Stats.Prefill, r.Stats.Decode)
	return r
}

// engineWorker evaluates js in b's engine worker (worker.js in the
// engine role), found among the browser's DevTools targets.
func engineWorker(t *testing.T, b *browser, js string) {
	t.Helper()
	engineWorkerEval[bool](t, b, js)
}

// engineWorkerEval is engineWorker returning js's value. A worker of an
// engine just unloaded may still be listed while it closes: the first
// engine worker that answers is the one.
func engineWorkerEval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	ts, err := chromedp.Targets(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, x := range ts {
		if x.Type != "worker" || !strings.Contains(x.URL, "/worker.js?") || strings.Contains(x.URL, "role=peer") {
			continue
		}
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		defer cancel()
		wctx, _ := chromedp.NewContext(ctx, chromedp.WithTargetID(x.TargetID)) // not cancelled: that would close the worker
		v, err := chromedp.Run(wctx, chromedp.Evaluate[T](js))
		if err == nil {
			return v
		}
		errs = append(errs, fmt.Sprintf("%s (%s): %v", x.TargetID, x.URL, err))
	}
	t.Fatalf("no engine worker among the browser's targets answered: %s", strings.Join(errs, "; "))
	var zero T
	return zero
}

// startProxy serves base through a proxy that drops the COOP and COEP
// headers when unisolated (the same pages, not cross-origin isolated),
// and answers 404 to the n-th request with the same path when fail
// says so.
func startProxy(t *testing.T, base string, unisolated bool, fail func(r *http.Request, n int) bool) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(r *http.Response) error {
		if unisolated {
			r.Header.Del("Cross-Origin-Opener-Policy")
			r.Header.Del("Cross-Origin-Embedder-Policy")
		}
		return nil
	}
	var mu sync.Mutex
	seen := map[string]int{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		n := seen[r.URL.Path]
		mu.Unlock()
		if fail != nil && fail(r, n) {
			w.Header().Set("Cross-Origin-Opener-Policy", "same-origin")
			w.Header().Set("Cross-Origin-Embedder-Policy", "require-corp")
			http.NotFound(w, r)
			return
		}
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s.URL + "/"
}
