package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

// TestFastStories: on the fast path, greedy generation from BOS with
// stories260K tells the reference story, and every golden case of
// TestLlama2CGolden (f32 weights, where the fast path only reassociates
// sums) gives the same ids as the exact path, on 1 and 2 threads.
func TestFastStories(t *testing.T) {
	dir := filepath.Join(shared.Models(t), "stories260K")
	m, err := llama2c.Load(filepath.Join(dir, "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.LoadLlama2C(f, m.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	generate := func(o cpu.Options, prompt []int, n int) []int {
		b := cpu.New(o)
		defer b.Close()
		e, err := engine.New(b, m, engine.Options{MaxBatch: 8})
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		if _, err := e.Generate(context.Background(), prompt, engine.GenerateOptions{MaxTokens: n},
			func(id int) error { got = append(got, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	const want = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
	if text := tok.Decode(generate(cpu.Options{}, []int{tok.BOS()}, 40)); !strings.HasPrefix(strings.TrimSpace(text), want) {
		t.Errorf("fast path tells %q, want it to begin %q", text, want)
	}
	for _, c := range loadGolden(t) {
		if c.Model != "stories260K" {
			continue
		}
		prompt := append([]int{1}, c.PromptIDs...)
		exact := generate(cpu.Options{Exact: true, Threads: 1}, prompt, c.Steps-len(c.PromptIDs))
		for _, threads := range []int{1, 2} {
			if fast := generate(cpu.Options{Threads: threads}, prompt, c.Steps-len(c.PromptIDs)); !slices.Equal(fast, exact) {
				t.Errorf("%q threads=%d: fast path generates\n%v\nexact path\n%v", c.Prompt, threads, fast, exact)
			}
		}
	}
}

// TestFastDecodeAllocs: once the scratch memory has grown, a decode step on
// the fast path allocates nothing: not in the matrix products, attention,
// routing or MoE, nor the engine's views and routes, for a dense and two
// sparse families. (AllocsPerRun divides in integers, so it would hide an
// allocation made less than once per step; the scratch memory is sized for
// the whole context on first use, so there are none.)
func TestFastDecodeAllocs(t *testing.T) {
	for _, name := range []string{"llama", "mixtral", "qwen2_moe"} {
		m := testmodel.Random(family(name, false), 7)
		b := cpu.New(cpu.Options{Threads: 2})
		defer b.Close()
		e, err := engine.New(b, m, engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ids := []int{3}
		step := func() {
			if ids[0], err = e.ForwardArgmax(context.Background(), ids); err != nil {
				t.Fatal(err)
			}
		}
		for range 4 {
			step() // grow the scratch memory
		}
		allocs := testing.AllocsPerRun(20, step)
		t.Logf("%s: %.1f allocations per decode step", name, allocs)
		if allocs > 0 {
			t.Errorf("%s: %.1f allocations per decode step, want 0", name, allocs)
		}
	}
}
