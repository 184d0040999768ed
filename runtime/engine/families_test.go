package engine_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
)

func family(name string, topAll bool) model.Config { return testmodel.Family(name, topAll) }

var families = testmodel.Families

// TestFamiliesMatchNaive compares the engine's logits with testmodel's
// float64 reference at every position, decoding one token at a time and
// prefilling in batches, for every family; and, with top_k = n_experts and
// renormalisation, against the dense weighted sum over all experts.
func TestFamiliesMatchNaive(t *testing.T) {
	ids := []int{0, 5, 17, 42, 3, 96, 11, 64, 8, 30, 2, 71}
	for _, name := range families {
		for _, topAll := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/topAll=%v", name, topAll), func(t *testing.T) {
				cfg := family(name, topAll)
				m := testmodel.Random(cfg, 7)
				want := testmodel.Logits(m, ids)

				// decode: one token per forward, every position checked
				e, err := engine.New(cpu.New(cpu.Options{}), m, engine.Options{})
				if err != nil {
					t.Fatal(err)
				}
				for p, id := range ids {
					got, err := e.Forward([]int{id})
					if err != nil {
						t.Fatal(err)
					}
					checkClose(t, fmt.Sprintf("decode pos %d", p), got, want[p])
				}
				// prefill: batches of 5 rows, the last row's logits checked
				e2, err := engine.New(cpu.New(cpu.Options{}), m, engine.Options{MaxBatch: 5, LazyExperts: true})
				if err != nil {
					t.Fatal(err)
				}
				got, err := e2.Forward(ids)
				if err != nil {
					t.Fatal(err)
				}
				checkClose(t, "prefill", got, want[len(ids)-1])
			})
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
