package engine_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
)

func family(name string, topAll bool) model.Config { return testmodel.Family(name, topAll) }

var families = append(append(append([]string(nil), testmodel.Families...), testmodel.GptOssFamilies...), testmodel.DeepSeekFamilies...)

// TestFamiliesMatchNaive compares the engine's logits with testmodel's
// float64 reference at every position, decoding one token at a time and
// prefilling in batches, for every family; and, with top_k = n_experts and
// renormalisation, against the dense weighted sum over all experts. The
// models are f32, so the fast path differs from the exact one only by
// reassociated sums and must meet the same bound.
func TestFamiliesMatchNaive(t *testing.T) {
	ids := []int{0, 5, 17, 42, 3, 96, 11, 64, 8, 30, 2, 71}
	for _, name := range families {
		for _, topAll := range []bool{false, true} {
			for _, exact := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/topAll=%v/exact=%v", name, topAll, exact), func(t *testing.T) {
					cfg := family(name, topAll)
					m := testmodel.Random(cfg, 7)
					want := testmodel.Logits(m, ids)
					wantDecode := testmodel.DecodeLogits(m, ids) // differs under dynamic NTK RoPE only

					// decode: one token per forward, every position checked
					e, err := engine.New(cpu.New(cpu.Options{Exact: exact}), m, engine.Options{})
					if err != nil {
						t.Fatal(err)
					}
					for p, id := range ids {
						got, err := e.Forward(context.Background(), []int{id})
						if err != nil {
							t.Fatal(err)
						}
						checkClose(t, fmt.Sprintf("decode pos %d", p), got, wantDecode[p])
					}
					// prefill: batches of 5 rows, the last row's logits checked
					e2, err := engine.New(cpu.New(cpu.Options{Exact: exact}), m, engine.Options{MaxBatch: 5, LazyExperts: true})
					if err != nil {
						t.Fatal(err)
					}
					got, err := e2.Forward(context.Background(), ids)
					if err != nil {
						t.Fatal(err)
					}
					checkClose(t, "prefill", got, want[len(ids)-1])
					// prefill ending at every position: a prompt of each
					// length in one call (its own reference under dynamic NTK)
					for n := 1; n < len(ids); n++ {
						e2.Reset()
						got, err := e2.Forward(context.Background(), ids[:n])
						if err != nil {
							t.Fatal(err)
						}
						checkClose(t, fmt.Sprintf("prefill of %d", n), got, testmodel.Logits(m, ids[:n])[n-1])
					}
				})
			}
		}
	}
}

func checkClose(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	var maxDiff, maxAbs float64
	for i, w := range want {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i])-w))
		maxAbs = math.Max(maxAbs, math.Abs(w))
	}
	if maxDiff > 1e-4*math.Max(1, maxAbs) {
		t.Errorf("%s: logits differ from the naive reference by %.3g (max |logit| %.3g)", what, maxDiff, maxAbs)
	}
}
