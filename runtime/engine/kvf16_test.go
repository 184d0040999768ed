package engine_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
)

// kvDiff prefills prompt and decodes steps tokens on an f32-KV and an
// f16-KV CPU engine, feeding both the f32 engine's greedy choice, and
// returns the largest logit difference.
func kvDiff(t *testing.T, m *model.Model, o engine.Options, exact bool, prompt []int, steps int) float64 {
	t.Helper()
	ref, err := engine.New(cpu.New(cpu.Options{Exact: exact}), m, o)
	if err != nil {
		t.Fatal(err)
	}
	o.KVF16 = true
	half, err := engine.New(cpu.New(cpu.Options{Exact: exact}), m, o)
	if err != nil {
		t.Fatal(err)
	}
	worst, err := testmodel.DecodeDiff(ref, half, prompt, steps, nil)
	if err != nil {
		t.Fatal(err)
	}
	return worst
}

// TestKVF16 bounds what rounding the cache to f16 (11 significant bits)
// costs in logits against the f32 cache over a 40-step decode, on the
// exact path and on the fast one (whose attention decodes the f16 rows a
// block at a time for its f32 kernels). Measured worst cases, exact:
// stories260K 2.1e-2 (logits of magnitude ~10), olmoe's random model
// 8.1e-4, llama's 5.6e-3; the bounds are 2-6x those, loose enough for
// rounding, far below what a misplaced or unrounded cache gives.
func TestKVF16(t *testing.T) {
	for _, c := range []struct {
		name   string
		model  func(t *testing.T) *model.Model
		bound  float64
		prompt []int
	}{
		{"stories260K", func(t *testing.T) *model.Model {
			m, err := llama2c.Load(filepath.Join(shared.Models(t), "stories260K", "stories260K.bin"))
			if err != nil {
				t.Fatal(err)
			}
			return m
		}, 5e-2, []int{1, 403, 407, 261, 378, 300, 50, 70, 9}},
		{"olmoe", func(*testing.T) *model.Model { return testmodel.Random(family("olmoe", false), 7) }, 5e-3, []int{0, 5, 17, 42, 3}},
		{"llama", func(*testing.T) *model.Model { return testmodel.Random(family("llama", false), 7) }, 2e-2, []int{0, 5, 17, 42, 3}},
	} {
		for _, exact := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/exact=%v", c.name, exact), func(t *testing.T) {
				diff := kvDiff(t, c.model(t), engine.Options{MaxBatch: 8, MaxSeq: 128}, exact, c.prompt, 40)
				t.Logf("%s: max |logit diff| f16 vs f32 KV cache %.3g (bound %.3g)", c.name, diff, c.bound)
				if !(diff <= c.bound) {
					t.Errorf("max logit difference %.3g > %.3g", diff, c.bound)
				}
				if diff == 0 {
					t.Error("f16 and f32 caches give identical logits: the cache is not stored in f16")
				}
			})
		}
	}
}

// noF16 is a backend without backend.KVFormatter.
type noF16 struct{ backend.Backend }

func TestKVF16Unsupported(t *testing.T) {
	m := testmodel.Random(family("llama", false), 7)
	_, err := engine.New(noF16{cpu.New(cpu.Options{})}, m, engine.Options{KVF16: true})
	if err == nil || !strings.Contains(err.Error(), "f16 KV cache") {
		t.Fatalf("New with KVF16 on a backend without it: err = %v, want an f16 KV cache error", err)
	}
}
