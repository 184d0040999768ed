package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moderuntime/mode/modelpack/gguf"
	"github.com/moderuntime/mode/modelpack/synth"
)

// wllamaDir is scripts/wllama with its pinned @wllama/wllama installed,
// by npm ci here when scripts/ensure-wllama.sh (which `make bench-web`
// runs) has not; without npm the wllama tests skip, or fail under CI=true.
func wllamaDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "scripts", "wllama"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@wllama", "wllama", "package.json")); err == nil {
		return dir
	}
	// Installed as TestTypeScript installs its compiler: npm ci of the
	// pinned lockfile (make test provides npm through scripts/ensure-node.sh).
	if _, err := exec.LookPath("npm"); err != nil {
		msg := "@wllama/wllama is not installed and npm is missing: run scripts/ensure-wllama.sh (as root on Debian)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI must provide npm")
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@wllama", "wllama", "package.json")); err != nil {
		t.Fatalf("after npm ci in %s: %v", dir, err)
	}
	return dir
}

// startWllamaServer serves scripts/wllama (bench.html and node_modules)
// at / and the files of ggufs at /gguf/NAME, cross-origin isolated (COOP
// and COEP, as the devserver sends) so that wllama's threads have
// SharedArrayBuffer. It returns the base URL.
func startWllamaServer(t *testing.T, dir string, ggufs map[string]string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(dir)))
	mux.HandleFunc("/gguf/{name}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := ggufs[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, p)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cross-Origin-Opener-Policy", "same-origin")
		w.Header().Set("Cross-Origin-Embedder-Policy", "require-corp")
		w.Header().Set("Cross-Origin-Resource-Policy", "same-origin")
		w.Header().Set("Cache-Control", "no-store")
		rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(rec, r)
		if rec.code == http.StatusNotFound {
			t.Logf("wllama server: 404 for %s", r.URL.Path)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }

// wllamaRun is what bench.html's wllamaBench returns.
type wllamaRun struct {
	LoadMS      float64   `json:"loadMS"`
	Prefill     []float64 `json:"prefill"`
	Decode      []float64 `json:"decode"`
	PromptNs    []int     `json:"promptN"`
	Text        string    `json:"text"`
	Threads     int       `json:"threads"`
	Multithread bool      `json:"multithread"`
	Version     string    `json:"version"`
	LoadError   string    `json:"loadError"`
	Error       string    `json:"error"`
}

// wllamaVisit opens bench.html in b's tab and runs wllamaBench there. It
// returns an error only when wllama could not load the GGUF (say, out of
// wasm memory); it fails t on anything else.
func wllamaVisit(t *testing.T, b *browser, page, gguf string, threads int, prompt string, n, runs, vocab int) (wllamaRun, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Minute)
	defer cancel()
	if err := openPage(ctx, page, "window.wllamaBench !== undefined"); err != nil {
		t.Fatalf("%s did not load wllama: %v", page, err)
	}
	js := fmt.Sprintf(`wllamaBench(%q, %d, %q, %d, %d, %s).catch((err) => ({error: String(err.stack ?? err.message ?? err)}))`,
		gguf, threads, prompt, n, runs, mustJSON(t, nonUTF8Bytes(vocab)))
	r, err := chromedp.Run(ctx, chromedp.Evaluate[wllamaRun](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("in the browser: %v", err)
	}
	if r.LoadError != "" {
		return wllamaRun{}, fmt.Errorf("wllama (%d threads) on %s: %s", threads, gguf, r.LoadError)
	}
	if r.Error != "" {
		t.Fatalf("wllama on %s, %d threads: %s", gguf, threads, r.Error)
	}
	return r, nil
}

// nonUTF8Bytes lists the ids of synth.SentenceVocab(vocab)'s byte tokens
// 0x80-0xff, which bench.html keeps wllama from generating.
func nonUTF8Bytes(vocab int) []int {
	var ids []int
	for id, tok := range synth.SentenceVocab(vocab).Tokens {
		var b int
		if n, err := fmt.Sscanf(tok, "<0x%02X>", &b); err == nil && n == 1 && b >= 0x80 && len(tok) == 6 {
			ids = append(ids, id)
		}
	}
	return ids
}

// wllamaVersion is the installed @wllama/wllama's version.
func wllamaVersion(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "@wllama", "wllama", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, v, ok := strings.Cut(string(b), `"version": "`)
	if !ok {
		return "?"
	}
	v, _, _ = strings.Cut(v, `"`)
	return v
}

// TestWllama checks the wllama side of `make bench-web` (cheaply, on a
// small model): that the pinned @wllama/wllama loads a GGUF the
// project's writer made, in this Chromium, with one thread and with two,
// and generates the tokens asked for with llama.cpp's timings.
func TestWllama(t *testing.T) {
	dir := wllamaDir(t)
	chromium := findChromium(t)
	tmp := t.TempDir()
	o := synth.Default("mixtral")
	g := filepath.Join(tmp, "mixtral-q4_0.gguf")
	if err := synth.WriteGGUF(g, o, gguf.TypeQ4_0); err != nil {
		t.Fatal(err)
	}
	base := startWllamaServer(t, dir, map[string]string{"m.gguf": g})
	b := openBlank(t, chromium)
	for _, threads := range []int{1, 2} {
		const n = 8
		r, err := wllamaVisit(t, b, base+"bench.html", "/gguf/m.gguf", threads, "the cat sat on the mat", n, 1, o.Vocab)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("wllama %s, %d threads (multithread %v): load %.0f ms, prefill %v tok/s, decode %v tok/s, %q",
			wllamaVersion(t, dir), r.Threads, r.Multithread, r.LoadMS, r.Prefill, r.Decode, r.Text)
		if r.Threads != threads {
			t.Errorf("asked for %d threads, wllama runs %d", threads, r.Threads)
		}
		if len(r.Prefill) != 1 || !(r.Prefill[0] > 0) || !(r.Decode[0] > 0) {
			t.Errorf("%d threads: prefill %v, decode %v tok/s: want one positive rate each", threads, r.Prefill, r.Decode)
		}
	}
}

// openBlank opens headless Chromium on about:blank, for pages other than
// the demo's.
func openBlank(t *testing.T, chromium string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			t.Logf("browser console: %s", m)
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	return &browser{ctx: ctx}
}
