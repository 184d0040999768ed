package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestCrossOrigin imports mode.js from the devserver's origin into a page
// of another origin (a second loopback port), the way a site uses a
// hosted engine, and checks that it generates what the same-origin demo
// page and the native engine generate. A worker script must be
// same-origin, so this fails unless mode.js starts the worker from a blob:
// URL; it also fails if the devserver stops sending CORS headers on
// mode.js, worker.js, wasm_exec.js, mode.wasm or the pack.
func TestCrossOrigin(t *testing.T) {
	chromium := findChromium(t)
	models := shared.Models(t)
	rb := buildRuntime(t)
	packs := filepath.Join(rb.tmp, "packs")
	stories := filepath.Join(packs, "stories260K")
	packModel(t, filepath.Join(models, "stories260K", "stories260K.bin"), stories, tensor.Q8_0)
	engineBase := startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(rb.root, "web"),
		"--wasm", rb.wasm, "--models", packs)
	host := startImportingHost(t, engineBase)
	if strings.HasPrefix(host, engineBase) {
		t.Fatalf("host %s and engine %s share an origin: the check would prove nothing", host, engineBase)
	}

	const prompt, n = "Once upon a time", 24
	want, _, _ := native(t, stories, prompt, n)
	manifestURL := engineBase + "packs/stories260K/manifest.json"

	b := openBrowser(t, chromium, engineBase+"index.html")
	same := b.run(t, manifestURL, "none", prompt, n, 0)
	checkSame(t, same, want)

	do(t, b, "open the page of another origin", chromedp.Navigate(host))
	waitFor(t, b, "mode.js imported from "+engineBase, "window.mode !== undefined", 20*time.Second)
	if origin := eval[string](t, b, "location.origin + '/'"); origin == engineBase {
		t.Fatalf("the page runs on the engine's origin %s", origin)
	}
	cross := b.run(t, manifestURL, "cache-storage", prompt, n, 0)
	if len(cross.IDs) == 0 || cross.Streamed == "" {
		t.Fatalf("cross-origin engine generated nothing: %+v", cross)
	}
	if !slices.Equal(cross.IDs, same.IDs) || cross.Text != same.Text {
		t.Errorf("cross-origin generated %v %q\n  same-origin generated %v %q", cross.IDs, cross.Text, same.IDs, same.Text)
	}
	t.Logf("cross-origin text: %q", cross.Text)

	// The URL options still reach the worker started from a blob: a
	// wasmURL that is not there is the one the error names.
	failed := eval[string](t, b, fmt.Sprintf(`mode.create({model: %q, cache: "none", wasmURL: %q}).then(() => "loaded", (e) => e.code + ": " + e.message)`,
		manifestURL, engineBase+"missing.wasm"))
	if !strings.HasPrefix(failed, "worker_failed: ") || !strings.Contains(failed, engineBase+"missing.wasm") {
		t.Errorf("wasmURL %smissing.wasm: got %q, want a worker_failed error naming it", engineBase, failed)
	}

	// A model URL relative to the page resolves against the page, not
	// against the engine's origin: the host serves no pack, so it fails.
	code := eval[string](t, b, `mode.create({model: "/packs/stories260K/manifest.json", cache: "none"}).then(() => "loaded", (e) => e.code)`)
	if code != "load_failed" {
		t.Errorf("a model path relative to the host page: got %q, want load_failed (it must not resolve against the engine's origin)", code)
	}
}

// startImportingHost serves, on a second loopback port, a page that
// imports mode.js from engineBase.
func startImportingHost(t *testing.T, engineBase string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	page := fmt.Sprintf(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>another site</title>
<link rel="icon" href="data:,"></head><body><p>A page of another origin.</p>
<script type="module">
import * as mode from %q;
window.mode = mode;
</script></body></html>`, engineBase+"mode.js")
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	})}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("host page server: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}
