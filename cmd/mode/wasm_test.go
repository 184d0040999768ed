//go:build !wasip1 && !js

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/manifest"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/tensor"
)

// buildWasip1 compiles this command for wasip1, as `make wasi` does.
func buildWasip1(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "mode.wasip1.wasm")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the wasip1 guest: %v\n%s", err, b)
	}
	return out
}

func packFrom(t *testing.T, src string, q tensor.DType) (string, *manifest.Manifest) {
	t.Helper()
	in, err := importer.Open(src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dir := filepath.Join(t.TempDir(), "pack")
	m, err := pack.Write(dir, in.Source, in.Tokenizer, in.ChatTemplate, pack.Options{Quant: q})
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// TestWasip1MatchesNative: the wasip1 build under wazero generates the same
// tokens as the native CLI, and fails with the same message on a corrupt or
// missing shard.
func TestWasip1MatchesNative(t *testing.T) {
	wasm := buildWasip1(t)
	olmoe := filepath.Join(t.TempDir(), "olmoe")
	if err := synth.Write(olmoe, synth.Default("olmoe")); err != nil {
		t.Fatal(err)
	}
	storiesPack, _ := packFrom(t, stories(t), tensor.Q8_0)
	olmoePack, m := packFrom(t, olmoe, tensor.Q4_0)
	for _, tc := range []struct{ name, pack, prompt string }{
		{"stories260K", storiesPack, "Once upon a time"},
		{"olmoe q4_0", olmoePack, "the cat sat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"run", "-m", tc.pack, "-p", tc.prompt, "-n", "24", "--ids"}
			nc, nout, nerr := runMode(args...)
			wc, wout, werr := runMode(append(args, "--wasm", wasm)...)
			if nc != 0 || wc != 0 {
				t.Fatalf("exit native %d (%s), wasm %d (%s)", nc, nerr, wc, werr)
			}
			if nout != wout {
				t.Fatalf("native output\n%s\nwasip1 output\n%s", nout, wout)
			}
		})
	}

	var expert manifest.Shard
	for _, s := range m.Shards {
		if s.Kind == manifest.KindExpert {
			expert = s
			break
		}
	}
	file := filepath.Join(olmoePack, expert.Pieces[0].File)
	good, _ := os.ReadFile(file)
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 1
	for _, fault := range []struct {
		name  string
		apply func()
		want  string
	}{
		{"corrupt", func() { os.WriteFile(file, bad, 0o644) }, "sha256"},
		{"missing", func() { os.Remove(file) }, "no such file"},
	} {
		t.Run(fault.name, func(t *testing.T) {
			fault.apply()
			defer os.WriteFile(file, good, 0o644)
			// route every token through every expert's layer: a long prompt
			args := []string{"run", "-m", olmoePack, "-p", strings.Repeat("the cat sat on the mat ", 8), "-n", "4"}
			nc, _, nerr := runMode(args...)
			wc, _, werr := runMode(append(args, "--wasm", wasm)...)
			if nc != 1 || wc != 1 || !strings.Contains(nerr, fault.want) {
				t.Fatalf("exit native %d %q, wasm %d %q", nc, nerr, wc, werr)
			}
			if nerr != werr {
				t.Fatalf("errors differ:\nnative %q\nwasip1 %q", nerr, werr)
			}
		})
	}
}
