package webgpu_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/webgpu"
)

// TestGptOss compares gpt-oss models with the CPU backend on lavapipe:
// sinks, sliding-window layers whose ring cache wraps (window 4 with
// batches of 8: a ring of 11 positions; and the real window of 128 over
// 300 positions), o/router/expert biases and the clamped SwiGLU, with the
// experts in f32 and in MXFP4. Greedy tokens must agree at every step;
// bound 1e-4 on the logits as TestFamilies.
func TestGptOss(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	for _, c := range []struct {
		name          string
		window        int
		maxSeq, batch int
		prompt, steps int
	}{
		{"gpt_oss", 0, 64, 8, 5, 30},
		{"gpt_oss-window4", 0, 64, 8, 5, 40},
		{"gpt_oss", 128, 320, 64, 150, 150},
	} {
		for _, mx := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/window=%d/mxfp4=%v", c.name, c.window, mx), func(t *testing.T) {
				cfg := testmodel.Family(c.name, false)
				if c.window > 0 {
					cfg.SlidingWindow = c.window
				}
				cfg.MaxSeq = c.maxSeq
				m := testmodel.Random(cfg, 9)
				if mx {
					for n, w := range m.Weights {
						if strings.Contains(n, ".experts.") {
							q, err := tensor.Quantize(w, tensor.MXFP4)
							if err != nil {
								t.Fatal(err)
							}
							m.Weights[n] = q
						}
					}
				}
				prompt := make([]int, c.prompt)
				for i := range prompt {
					prompt[i] = (i*29 + 3) % cfg.Vocab
				}
				diff := compare(t, m, gpu, engine.Options{MaxBatch: c.batch}, prompt, c.steps)
				t.Logf("max |logit diff| %.3g", diff)
				if diff > 1e-4 {
					t.Errorf("max logit difference %.3g > 1e-4", diff)
				}
			})
		}
	}
}
