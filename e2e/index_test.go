package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/shard"
)

// TestBrowserIndex: the browser runs a manifest made by `modelpack index`
// that points into an unmodified, sharded safetensors checkpoint, fetching
// tensors with Range requests, and generates what the native engine does.
func TestBrowserIndex(t *testing.T) {
	chromium := findChromium(t)
	rb := buildRuntime(t)
	packs := filepath.Join(rb.tmp, "packs")
	src := filepath.Join(packs, "qwen")
	o := synth.Default("qwen2_moe")
	o.MaxShardBytes = 64 << 10 // several safetensors files
	if err := synth.Write(src, o); err != nil {
		t.Fatal(err)
	}
	m, err := pack.Index(context.Background(), shard.NewDir(src), pack.IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := manifest.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(rb.tmp, "requests.log")
	base := startServer(t, rb.server, "--addr", "127.0.0.1:0", "--web", filepath.Join(rb.root, "web"),
		"--wasm", rb.wasm, "--models", packs, "--log", logFile)
	br := openBrowser(t, chromium, base+"index.html")

	const prompt = "the cat sat"
	want, _, _ := native(t, src, prompt, 12)
	got := br.run(t, "/packs/qwen/manifest.json", "none", prompt, 12, 0)
	checkSame(t, got, want)

	ranged := 0
	for _, ln := range (&requestLog{path: logFile}).lines(t) {
		if strings.HasSuffix(ln.Path, ".safetensors") && strings.HasPrefix(ln.Range, "bytes=") {
			ranged++
		}
	}
	if ranged == 0 {
		t.Error("no Range request reached the safetensors files")
	}
	t.Logf("%d Range requests into %d safetensors files", ranged, countFiles(t, src, ".safetensors"))
}

func countFiles(t *testing.T, dir, ext string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}
