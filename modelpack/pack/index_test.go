package pack_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/hf"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/loader"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/shard"
)

// TestIndex: a manifest that points into unmodified safetensors files —
// read from a directory or over HTTP Range requests — runs lazily and
// generates exactly the tokens of the HF model itself.
func TestIndex(t *testing.T) {
	src := synthDir(t, "qwen2_moe", func(o *synth.Options) { o.MaxShardBytes = 64 << 10 }) // sharded checkpoint
	if _, err := os.Stat(filepath.Join(src, "model.safetensors.index.json")); err != nil {
		t.Fatalf("want a sharded checkpoint: %v", err)
	}
	ref, err := hf.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	want := greedy(t, ref, engine.Options{}, prompt, 16)
	ctx := context.Background()

	t.Run("dir", func(t *testing.T) {
		m, err := pack.Index(ctx, shard.NewDir(src), pack.IndexOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := loader.Load(ctx, m, &shard.Fetcher{Src: shard.NewDir(src)})
		if err != nil {
			t.Fatal(err)
		}
		if got := greedy(t, p.Model, engine.Options{Experts: p}, prompt, 16); !slices.Equal(got, want) {
			t.Fatalf("index tokens %v, model %v", got, want)
		}
	})

	t.Run("http", func(t *testing.T) {
		var mu = make(chan struct{}, 1)
		ranges := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") != "" {
				mu <- struct{}{}
				ranges++
				<-mu
			}
			http.FileServer(http.Dir(src)).ServeHTTP(w, r)
		}))
		defer srv.Close()
		base := srv.URL + "/"
		h, err := shard.NewHTTP(base, shard.HTTPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := pack.Index(ctx, h, pack.IndexOptions{Base: base})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range m.Shards {
			if !strings.HasPrefix(s.Pieces[0].File, base) {
				t.Fatalf("piece %s is not an absolute URL", s.Pieces[0].File)
			}
		}
		// the manifest lives elsewhere; its pieces reach the server
		out := filepath.Join(t.TempDir(), "manifest.json")
		b, _ := manifest.Marshal(m)
		os.WriteFile(out, b, 0o644)
		p, err := loader.Open(ctx, out, shard.HTTPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := greedy(t, p.Model, engine.Options{Experts: p}, prompt, 16); !slices.Equal(got, want) {
			t.Fatalf("index over HTTP tokens %v, model %v", got, want)
		}
		if ranges == 0 {
			t.Error("no Range requests reached the server")
		}
		if _, errs := pack.VerifyRemote(ctx, out, shard.HTTPOptions{}); len(errs) != 0 {
			t.Errorf("verify: %v", errs)
		}
	})
}

// TestIndexRefusesFused: a checkpoint whose experts are stored fused
// (gpt-oss, bf16 or MXFP4) is refused in a sentence saying what to do
// instead: a manifest on disk cannot say how to rearrange the bytes.
func TestIndexRefusesFused(t *testing.T) {
	for _, mx := range []bool{false, true} {
		src := synthDir(t, "gpt_oss", func(o *synth.Options) { o.MXFP4 = mx })
		_, err := pack.Index(context.Background(), shard.NewDir(src), pack.IndexOptions{})
		if err == nil || !strings.Contains(err.Error(), "gate_up_proj") || !strings.Contains(err.Error(), "hf:") {
			t.Errorf("MXFP4 %v: %v, want a refusal naming gate_up_proj and hf:", mx, err)
		}
	}
}
