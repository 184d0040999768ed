package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/runtime/tensor"
)

func runMode(args ...string) (code int, stdout, stderr string) {
	return runModeIn("", args...)
}

// runModeIn runs mode with stdin as its standard input.
func runModeIn(stdin string, args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, strings.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

func stories(t *testing.T) string {
	return filepath.Join(shared.Models(t), "stories260K", "stories260K.bin")
}

// TestRunStories: greedy generation from BOS prints the reference story,
// and --ids prints llama2.c's ids on the last line.
func TestRunStories(t *testing.T) {
	code, out, errOut := runMode("run", "-m", stories(t), "-n", "40", "--ids")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	text := strings.Join(lines[:len(lines)-1], "\n")
	const want = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
	if !strings.HasPrefix(text, want) {
		t.Errorf("text %q does not begin %q", text, want)
	}
	if ids := lines[len(lines)-1]; !strings.HasPrefix(ids, "403 407 261 378 432 383 286 261 376 298") || len(strings.Fields(ids)) != 40 {
		t.Errorf("ids line %q", ids)
	}
}

func TestRunSamplingReproducible(t *testing.T) {
	m := stories(t)
	args := []string{"run", "-m", m, "-p", "Once upon a time", "-n", "30", "--temp", "0.9", "--top-p", "0.9", "--ids"}
	_, a, _ := runMode(append(args, "--seed", "7")...)
	_, b, _ := runMode(append(args, "--seed", "7")...)
	_, c, _ := runMode(append(args, "--seed", "8")...)
	if a != b {
		t.Error("same seed, different output")
	}
	if a == c {
		t.Error("different seeds, same output")
	}
}

// TestRunPack: a pack runs lazily and prints the same ids as the
// checkpoint, and reports what it fetched.
func TestRunPack(t *testing.T) {
	m := stories(t)
	in, err := importer.Open(m, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pack")
	if _, err := pack.Write(dir, in.Source, in.Tokenizer, "", pack.Options{Quant: tensor.F32}); err != nil {
		t.Fatal(err)
	}
	_, want, _ := runMode("run", "-m", m, "-p", "Tom had a dog", "-n", "25", "--ids")
	code, got, errOut := runMode("run", "-m", dir, "-p", "Tom had a dog", "-n", "25", "--ids")
	if code != 0 || got != want {
		t.Fatalf("exit %d, pack output %q, checkpoint %q (%s)", code, got, want, errOut)
	}
	if !strings.Contains(errOut, "fetched") {
		t.Errorf("no fetch report on stderr: %q", errOut)
	}
	// -m may pin the manifest's sha256.
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if code, got, errOut := runMode("run", "-m", dir+"#sha256="+hex.EncodeToString(sum[:]), "-p", "Tom had a dog", "-n", "25", "--ids"); code != 0 || got != want {
		t.Fatalf("pinned: exit %d, output %q (%s)", code, got, errOut)
	}
	wrong := strings.Repeat("f", 64)
	if code, _, errOut := runMode("run", "-m", dir+"#sha256="+wrong, "-p", "x", "-n", "1"); code != 1 || !strings.Contains(errOut, "but the location pins "+wrong) {
		t.Fatalf("wrong pin: exit %d, stderr %q", code, errOut)
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage"},
		{[]string{"fly"}, 2, `unknown command "fly"`},
		{[]string{"run"}, 2, "-m MODEL is required"},
		{[]string{"run", "-m", "x", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"run", "-m", "/nonexistent/model.bin"}, 1, "/nonexistent/model.bin"},
		{[]string{"run", "-m", "/nonexistent/model.bin", "--temp", "-1"}, 1, "Temperature"},
		{[]string{"run", "-m", "/nonexistent", "--backend", "quantum"}, 1, ""},
		{[]string{"bench"}, 2, "give -m MODEL or --synth NAME"},
	}
	for _, tt := range tests {
		code, _, errOut := runMode(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("mode %v: exit %d, stderr %q; want exit %d mentioning %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}
