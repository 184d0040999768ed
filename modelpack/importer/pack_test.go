package importer

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestPackSource: a pack opens as a source. Stored again at f32 it gives a
// byte-identical pack (same shard hashes), and at q4_0 it loads like any
// other 4-bit pack.
func TestPackSource(t *testing.T) {
	d := t.TempDir()
	src := filepath.Join(d, "src")
	if err := synth.Write(src, synth.Default("olmoe")); err != nil {
		t.Fatal(err)
	}
	write := func(from, to string, q tensor.DType) []string {
		t.Helper()
		in, err := Open(from, "")
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		m, err := pack.Write(to, in.Source, in.Tokenizer, in.ChatTemplate, pack.Options{Quant: q})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range m.Shards {
			ids = append(ids, s.SHA256)
		}
		return append(ids, m.Tokenizer.SHA256, m.Tokenizer.ConfigSHA256)
	}
	first := write(src, filepath.Join(d, "p1"), tensor.F32)
	in, err := Open(filepath.Join(d, "p1"), "")
	if err != nil {
		t.Fatal(err)
	}
	if in.Kind != "pack" {
		t.Errorf("kind %q, want pack", in.Kind)
	}
	in.Close()
	if again := write(filepath.Join(d, "p1"), filepath.Join(d, "p2"), tensor.F32); !slices.Equal(again, first) {
		t.Errorf("an f32 pack stored again at f32 changed:\n%v\n%v", first, again)
	}
	write(filepath.Join(d, "p1"), filepath.Join(d, "p3"), tensor.Q4_0)
	if m, errs := pack.Verify(filepath.Join(d, "p3")); len(errs) != 0 || m.Quant != "q4_0" || m.DenseQuant != "q8_0" {
		t.Fatalf("q4_0 pack from a pack: quant %v, errors %v", m, errs)
	}
	if _, err := Open(filepath.Join(d, "p1"), filepath.Join(src, "tokenizer.json")); err == nil || !strings.Contains(err.Error(), "does not apply to a pack") {
		t.Errorf("a tokenizer file given with a pack: %v", err)
	}
}
