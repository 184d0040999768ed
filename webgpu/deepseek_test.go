package webgpu_test

import (
	"fmt"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/webgpu"
)

// TestDeepSeek compares the DeepSeek families with the CPU backend on
// lavapipe: multi-head latent attention over the latent cache (WebGPU
// expands it for decode too; the CPU absorbs kv_b there), group-limited
// and noaux_tc routing, shared experts, YaRN's softmax correction; f32
// and q8_0 weights, prefill in batches of 5 then decode. Greedy tokens
// agree at every step; bound 1e-4 on the logits as TestFamilies.
func TestDeepSeek(t *testing.T) {
	gpu := newBackend(t, webgpu.Options{})
	for _, name := range testmodel.DeepSeekFamilies {
		for _, q8 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/q8_0=%v", name, q8), func(t *testing.T) {
				cfg := testmodel.Family(name, false)
				m := testmodel.Random(cfg, 9)
				if q8 {
					for n, w := range m.Weights {
						if len(w.Shape) == 2 && w.Shape[1]%32 == 0 && n != "tok_embeddings" {
							q, err := tensor.Quantize(w, tensor.Q8_0)
							if err != nil {
								t.Fatal(err)
							}
							m.Weights[n] = q
						}
					}
				}
				prompt := []int{3, 50, 7, 19, 12, 88, 41}
				diff := compare(t, m, gpu, engine.Options{MaxBatch: 5}, prompt, 20)
				t.Logf("max |logit diff| %.3g", diff)
				if diff > 1e-4 {
					t.Errorf("max logit difference %.3g > 1e-4", diff)
				}
			})
		}
	}
}
