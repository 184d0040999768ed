package engine_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
)

type goldenCase struct {
	Model     string `json:"model"`
	Prompt    string `json:"prompt"`
	Steps     int    `json:"steps"`
	PromptIDs []int  `json:"prompt_ids"`
	Generated []int  `json:"generated"`
}

func loadGolden(t *testing.T) []goldenCase {
	t.Helper()
	b, err := os.ReadFile("testdata/llama2c_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct{ Cases []goldenCase }
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g.Cases
}

// TestLlama2CGolden checks greedy generation against ids produced with
// llama2.c's run.c semantics (see testdata/llama2c_golden.json's source),
// with batched prefill of the prompt and on 1 and 2 threads.
func TestLlama2CGolden(t *testing.T) {
	dir := shared.Models(t)
	for _, threads := range []int{1, 2} {
		for _, c := range loadGolden(t) {
			m, err := llama2c.Load(filepath.Join(dir, c.Model, c.Model+".bin"))
			if err != nil {
				t.Fatal(err)
			}
			e, err := engine.New(cpu.New(cpu.Options{Threads: threads, Exact: true}), m, engine.Options{MaxBatch: 8})
			if err != nil {
				t.Fatal(err)
			}
			want := c.Generated
			if n := len(want); n > 0 && want[n-1] == 1 {
				want = want[:n-1] // run.c stopped on BOS; Generate does not emit stop tokens
			}
			prompt := append([]int{1}, c.PromptIDs...)
			var got []int
			_, err = e.Generate(context.Background(), prompt, engine.GenerateOptions{MaxTokens: c.Steps - len(c.PromptIDs)},
				func(id int) error { got = append(got, id); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				n := 0
				for n < min(len(got), len(want)) && got[n] == want[n] {
					n++
				}
				t.Errorf("%s %q threads=%d: first difference at generated token %d of %d/%d\n got %v\nwant %v",
					c.Model, c.Prompt, threads, n, len(got), len(want), got[n:min(n+8, len(got))], want[n:min(n+8, len(want))])
			}
		}
	}
}
