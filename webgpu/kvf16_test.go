package webgpu_test

import (
	"path/filepath"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/webgpu"
)

// logitDiff decodes steps tokens after prompt on engines a and b, feeding
// both a's greedy choice, and returns the largest logit difference.
func logitDiff(t *testing.T, a, b *engine.Engine, prompt []int, steps int) float64 {
	t.Helper()
	worst, err := testmodel.DecodeDiff(a, b, prompt, steps, nil)
	if err != nil {
		t.Fatal(err)
	}
	return worst
}

// TestKVF16 runs the f16 KV cache on the GPU. Against the CPU's f16 cache
// greedy tokens must agree (both round to nearest even, see
// shaders.TestAttentionF16). The logits differ more than with f32 caches
// (measured 8.9e-3 against TestStories260K's 1e-3 bound): k and v differ
// in the last f32 bits between the backends, which now and then rounds
// one of them to the neighbouring f16, a 2^-11 relative step; bound 3e-2.
// Against the GPU's own f32 cache the logits stay within the CPU's
// f16-vs-f32 bounds (engine.TestKVF16; measured here too: 2.1e-2 for
// stories260K, 8.1e-4 for olmoe).
func TestKVF16(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	stories, err := llama2c.Load(filepath.Join(shared.Models(t), "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	storiesPrompt := []int{1, 403, 407, 261, 378, 300, 50, 70, 9}
	o := engine.Options{MaxBatch: 8, MaxSeq: 128}

	t.Run("stories260K/cpu", func(t *testing.T) {
		o := o
		o.KVF16 = true
		diff := compare(t, stories, gpu, o, storiesPrompt, 48)
		t.Logf("stories260K f16 KV: 48 greedy tokens agree with the cpu; max |logit diff| %.3g", diff)
		if diff > 3e-2 {
			t.Errorf("max logit difference %.3g > 3e-2", diff)
		}
	})
	for _, c := range []struct {
		name   string
		m      *model.Model
		prompt []int
		bound  float64
	}{
		{"stories260K/f32", stories, storiesPrompt, 5e-2},
		{"olmoe/f32", testmodel.Random(family("olmoe"), 7), []int{0, 5, 17, 42, 3}, 5e-3},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref, err := engine.New(gpu, c.m, o)
			if err != nil {
				t.Fatal(err)
			}
			oh := o
			oh.KVF16 = true
			half, err := engine.New(gpu, c.m, oh)
			if err != nil {
				t.Fatal(err)
			}
			diff := logitDiff(t, ref, half, c.prompt, 40)
			t.Logf("%s: max |logit diff| f16 vs f32 KV cache on webgpu %.3g (bound %.3g)", c.name, diff, c.bound)
			if !(diff <= c.bound) {
				t.Errorf("max logit difference %.3g > %.3g", diff, c.bound)
			}
			if diff == 0 {
				t.Error("f16 and f32 caches give identical logits: the cache is not stored in f16")
			}
		})
	}
}

// TestKVF16OddDim: packed pairs need an even kv dim.
func TestKVF16OddDim(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	if _, err := gpu.NewKVF16(1, 4, 3); err == nil {
		t.Fatal("NewKVF16 with kv dim 3: no error")
	}
}
