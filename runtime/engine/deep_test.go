package engine_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestZeroBlockIsShallow checks that a depth-2 expert whose second block's
// down projection is zero computes exactly the depth-1 expert: the blocks'
// outputs are summed (never h_d − x recomputed), so adding a zero block
// changes no bit, on the exact and the fast path, decoding and prefilling.
// Distillation relies on it: a new block starts at zero and the student
// starts where it was.
func TestZeroBlockIsShallow(t *testing.T) {
	ids := []int{0, 5, 17, 42, 3, 96, 11, 64}
	for _, act := range []model.Activation{model.ActSiLU, model.ActGELUTanh, model.ActReLU2} {
		for _, exact := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/exact=%v", act, exact), func(t *testing.T) {
				shallow := testmodel.Family("mode", true)
				for l := range shallow.FFN {
					f := &shallow.FFN[l]
					f.ExpertArch = make([]model.ExpertArch, len(f.ExpertWidths))
					for e := range f.ExpertArch {
						f.ExpertArch[e].Act = act
					}
				}
				ms := testmodel.Random(shallow, 11)
				deep := testmodel.Family("mode", true)
				deep.FFN = slices.Clone(deep.FFN)
				md := &model.Model{Config: deep, Weights: model.Weights{}}
				for k, v := range ms.Weights {
					md.Weights[k] = v
				}
				for l := range deep.FFN {
					f := &deep.FFN[l]
					f.ExpertArch = slices.Clone(shallow.FFN[l].ExpertArch)
					for e := range f.ExpertArch {
						f.ExpertArch[e].Extra = []int{8 + 8*e}
					}
				}
				r := testmodel.Random(deep, 12) // random norm, gate and up for the new blocks
				for _, sp := range deep.Spec() {
					if _, ok := md.Weights[sp.Name]; ok {
						continue
					}
					md.Weights[sp.Name] = r.Weights[sp.Name]
					if sp.Name[len(sp.Name)-len(".down"):] == ".down" {
						md.Weights[sp.Name] = tensor.FromF32(sp.Name, sp.Shape, make([]float32, sp.Shape[0]*sp.Shape[1]))
					}
				}
				for _, batch := range []int{1, 5} {
					run := func(m *model.Model) []float32 {
						e, err := engine.New(cpu.New(cpu.Options{Exact: exact}), m, engine.Options{MaxBatch: batch})
						if err != nil {
							t.Fatal(err)
						}
						var out []float32
						for i := 0; i < len(ids); i += batch {
							got, err := e.Forward(context.Background(), ids[i:min(i+batch, len(ids))])
							if err != nil {
								t.Fatal(err)
							}
							out = append(out, got...)
						}
						return out
					}
					a, b := run(ms), run(md)
					for i := range a {
						if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
							t.Fatalf("batch %d: logit %d: depth 1 %v, depth 2 with a zero block %v", batch, i, a[i], b[i])
						}
					}
				}
			})
		}
	}
}
