package load

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/shard"
	"github.com/moderuntime/mode/runtime/tensor"
)

func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if err := synth.Write(dir, synth.Default("qwen3_moe")); err != nil {
		t.Fatal(err)
	}
	ld, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if ld.Model.Config.Arch != "qwen3_moe" || ld.Tokenizer.VocabSize() == 0 || ld.ChatTemplate == "" {
		t.Errorf("loaded %+v", ld)
	}
	if got := ld.Tokenizer.Decode(ld.Tokenizer.Encode("hello world")); got != "hello world" {
		t.Errorf("tokenizer round trip: %q", got)
	}

	st := filepath.Join(shared.Models(t), "stories260K", "stories260K.bin")
	ld, err = Open(st, "")
	if err != nil {
		t.Fatal(err)
	}
	if !ld.AddBOS || ld.Model.Config.Vocab != 512 || len(ld.Model.Weights) == 0 {
		t.Errorf("stories260K: %+v", ld)
	}
}

func TestOpenErrors(t *testing.T) {
	d := t.TempDir()
	for _, tt := range []struct{ path, tok, want string }{
		{filepath.Join(d, "missing.bin"), "", "missing.bin"},
		{d, "", "config.json"},
		{filepath.Join(shared.Models(t), "stories260K", "stories260K.bin"), filepath.Join(d, "tok.bin"), "tok.bin"},
	} {
		if _, err := Open(tt.path, tt.tok); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%q, %q): %v, want it to mention %q", tt.path, tt.tok, err, tt.want)
		}
	}
}

// TestPack: a pack loads whole — every routed expert fetched — with the
// very weights of its f32 source, and Any tells packs from sources.
func TestPack(t *testing.T) {
	src := filepath.Join(t.TempDir(), "m")
	if err := synth.Write(src, synth.Default("olmoe")); err != nil {
		t.Fatal(err)
	}
	in, err := importer.Open(src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dir := filepath.Join(t.TempDir(), "pack")
	if _, err := pack.Write(dir, in.Source, in.Tokenizer, in.ChatTemplate, pack.Options{Quant: tensor.F32}); err != nil {
		t.Fatal(err)
	}
	want, err := Open(src, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, loc := range []string{dir, filepath.Join(dir, "manifest.json")} {
		if !IsPack(loc) || IsPack(src) {
			t.Fatalf("IsPack(%s) = %v, IsPack(source) = %v", loc, IsPack(loc), IsPack(src))
		}
		got, err := Any(context.Background(), loc, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Model.Weights) != len(want.Model.Weights) {
			t.Fatalf("%s: %d tensors, source has %d", loc, len(got.Model.Weights), len(want.Model.Weights))
		}
		for name, w := range want.Model.Weights {
			a, _ := w.Float32s()
			b, err := got.Model.Weights[name].Float32s()
			if err != nil || !slices.Equal(a, b) {
				t.Fatalf("%s: tensor %s differs from the source (err %v)", loc, name, err)
			}
		}
		if got.Tokenizer.Decode(got.Tokenizer.Encode("hello world")) != "hello world" || got.ChatTemplate != want.ChatTemplate {
			t.Errorf("%s: tokenizer or chat template lost", loc)
		}
	}
	if _, err := Any(context.Background(), dir, "tok.json"); err == nil || !strings.Contains(err.Error(), "does not apply to a pack") {
		t.Errorf("tokenizer with a pack: %v", err)
	}
	// A missing expert shard is an error naming the pack, not a partial model.
	mf, err := pack.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range mf.Shards {
		if sh.Kind == "expert" {
			if err := os.Remove(filepath.Join(dir, sh.Pieces[0].File)); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if _, err := Pack(context.Background(), dir, shard.HTTPOptions{}); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("pack with a missing expert shard: %v", err)
	}
}
