//go:build !wasip1 && !js

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/pack"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/tensor"
)

// buildWasip1 compiles this command for wasip1, as `make wasi` does,
// once for the package's tests.
func buildWasip1(t *testing.T) string {
	t.Helper()
	wasip1.once.Do(func() {
		dir, err := os.MkdirTemp("", "mode-wasip1-")
		if err != nil {
			wasip1.err = err
			return
		}
		wasip1.dir = dir
		out := filepath.Join(dir, "mode.wasip1.wasm")
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			wasip1.err = fmt.Errorf("building the wasip1 guest: %v\n%s", err, b)
			return
		}
		wasip1.path = out
	})
	if wasip1.err != nil {
		t.Fatal(wasip1.err)
	}
	return wasip1.path
}

var wasip1 struct {
	once      sync.Once
	dir, path string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if wasip1.dir != "" {
		os.RemoveAll(wasip1.dir)
	}
	os.Exit(code)
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

// TestWasip1Peers: `mode run --wasm --threads 2` splits routed experts
// between the guest and an expert peer guest, and generates the tokens
// the single guest and the native CLI generate, in every format whose
// experts split; a peer that exits is an error naming it, not a hang.
func TestWasip1Peers(t *testing.T) {
	wasm := buildWasip1(t)
	src := filepath.Join(t.TempDir(), "olmoe")
	o := synth.Default("olmoe")
	o.Dim, o.FFN = 256, 512 // experts large enough to split (cpu's minSplit), of whole q4_k blocks
	if err := synth.Write(src, o); err != nil {
		t.Fatal(err)
	}
	var pack string
	for _, q := range []tensor.DType{tensor.Q8_0, tensor.Q4_0, tensor.Q4_K} {
		pack, _ = packFrom(t, src, q)
		t.Run(q.String(), func(t *testing.T) {
			args := []string{"run", "-m", pack, "-p", "the cat sat on the mat", "-n", "16", "--ids"}
			nc, nout, nerr := runMode(args...)
			oc, oout, oerr := runMode(append(args, "--wasm", wasm, "--threads", "1")...)
			pc, pout, perr := runMode(append(args, "--wasm", wasm, "--threads", "2")...)
			if nc != 0 || oc != 0 || pc != 0 {
				t.Fatalf("exit native %d (%s), one guest %d (%s), two %d (%s)", nc, nerr, oc, oerr, pc, perr)
			}
			if oout != nout || pout != oout {
				t.Fatalf("native output\n%s\none guest\n%s\nguest and peer\n%s", nout, oout, pout)
			}
			if !strings.Contains(oerr, "guests: 1 (") || !strings.Contains(oerr, "; 0 routed experts split") {
				t.Errorf("--threads 1: %s", oerr)
			}
			if !strings.Contains(perr, "guests: 2 (") || strings.Contains(perr, "; 0 routed experts split") {
				t.Errorf("--threads 2 split no experts: %s", perr)
			}
		})
	}
	t.Run("peer exits", func(t *testing.T) {
		defer func(c string) { peerCommand = c }(peerCommand)
		peerCommand = "no-such-command"
		c, _, errOut := runMode("run", "-m", pack, "-p", "the cat sat", "-n", "4", "--wasm", wasm, "--threads", "2")
		if c != 1 || !strings.Contains(errOut, "expert worker 1: exited with status 2") {
			t.Fatalf("exit %d, stderr %s", c, errOut)
		}
	})
}

// TestPeerHostTimeout: the host gives up on a peer that does not answer,
// and answers at once for one that is gone.
func TestPeerHostTimeout(t *testing.T) {
	defer func(d time.Duration) { peerTimeout = d }(peerTimeout)
	peerTimeout = 20 * time.Millisecond
	h := &mainPeers{links: []*peerLink{newPeerLink()}, parts: make([][]byte, 1)}
	stack := []uint64{0}
	h.wait(context.Background(), nil, stack)
	if n := int64(stack[0]); n >= 0 || string(h.pending) != "did not answer in 20ms" {
		t.Fatalf("a silent peer: %d, %q", n, h.pending)
	}
	h.links[0].die(fmt.Errorf("exited with status 2"))
	stack[0] = 0
	start := time.Now()
	h.wait(context.Background(), nil, stack)
	if n := int64(stack[0]); n >= 0 || string(h.pending) != "exited with status 2" || time.Since(start) > peerTimeout {
		t.Fatalf("a dead peer: %d, %q after %v", n, h.pending, time.Since(start))
	}
	stack = []uint64{5}
	h.wait(context.Background(), nil, stack)
	if n := int64(stack[0]); n >= 0 || string(h.pending) != "no expert peer 5" {
		t.Fatalf("peer 5 of 1: %d, %q", n, h.pending)
	}
}
