//go:build !wasip1 && !js

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/manifest"
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
// tokens as the native CLI, with the host's SIMD128 kernels and without, and fails with the same message on a corrupt or
// missing shard.
func TestWasip1MatchesNative(t *testing.T) {
	wasm := buildWasip1(t)
	olmoe := filepath.Join(t.TempDir(), "olmoe")
	if err := synth.Write(olmoe, synth.Default("olmoe")); err != nil {
		t.Fatal(err)
	}
	granite := filepath.Join(t.TempDir(), "granitemoeshared")
	gopts := synth.Default("granitemoeshared")
	gopts.FFN = 64 // whole q4_0 blocks
	if err := synth.Write(granite, gopts); err != nil {
		t.Fatal(err)
	}
	// q4_k needs rows of whole 256-element super-blocks
	mixtral := filepath.Join(t.TempDir(), "mixtral")
	mo := synth.Default("mixtral")
	mo.Dim, mo.FFN = 256, 256
	if err := synth.Write(mixtral, mo); err != nil {
		t.Fatal(err)
	}
	deepseek := filepath.Join(t.TempDir(), "deepseek_v3")
	if err := synth.Write(deepseek, synth.Default("deepseek_v3")); err != nil {
		t.Fatal(err)
	}
	storiesPack, _ := packFrom(t, stories(t), tensor.Q8_0)
	olmoePack, m := packFrom(t, olmoe, tensor.Q4_0)
	granitePack, _ := packFrom(t, granite, tensor.Q4_0)
	deepseekPack, _ := packFrom(t, deepseek, tensor.Q4_0)
	q4kPack, _ := packFrom(t, mixtral, tensor.Q4_K)
	for _, tc := range []struct{ name, pack, prompt string }{
		{"stories260K", storiesPack, "Once upon a time"},
		{"olmoe q4_0", olmoePack, "the cat sat"},
		{"granitemoeshared q4_0", granitePack, "the cat sat"},
		{"deepseek_v3 q4_0", deepseekPack, "the cat sat"},
		{"mixtral q4_k", q4kPack, "the cat sat"},
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
			if !strings.Contains(werr, "kernels: SIMD128") {
				t.Errorf("the guest did not run the host's SIMD128 kernels: %s", werr)
			}
			// The guest's own pure-Go kernels, as on a host without them,
			// give the same tokens.
			t.Setenv("MODE_WASM_SIMD", "off")
			gc, gout, gerr := runMode(append(args, "--wasm", wasm)...)
			if gc != 0 || gout != wout || !strings.Contains(gerr, "kernels: the host offers no SIMD128") {
				t.Fatalf("MODE_WASM_SIMD=off: exit %d, output\n%s\nwant\n%s\nstderr %s", gc, gout, wout, gerr)
			}
		})
	}
	t.Run("chat", func(t *testing.T) {
		// stdin reaches the guest, and its session reuses the cache as the
		// native one does
		in := "Tell me a story.\nWhat did she do next?\n"
		args := []string{"chat", "-m", storiesPack, "-n", "20"}
		nc, nout, nerr := runModeIn(in, args...)
		wc, wout, werr := runModeIn(in, append(args, "--wasm", wasm)...)
		if nc != 0 || wc != 0 {
			t.Fatalf("exit native %d (%s), wasm %d (%s)", nc, nerr, wc, werr)
		}
		nt, wt := turns(t, nerr), turns(t, werr)
		if nout != wout || len(nt) != 2 || !slices.Equal(nt, wt) || nt[1][1] == 0 {
			t.Fatalf("native output %q, turns %v\nwasip1 output %q, turns %v", nout, nt, wout, wt)
		}
	})

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
