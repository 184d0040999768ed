package load

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/synth"
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
