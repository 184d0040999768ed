package distill

import (
	"context"
	"math"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
)

// TestForwardMatchesReference: the distiller's own forward pass agrees with
// the float64 reference on a dense model, a routed one and one whose
// experts differ in depth and activation, and with the engine that will
// run the pack.
func TestForwardMatchesReference(t *testing.T) {
	teacher := denseTeacher(40)
	moe := moeConfig(teacher.Config)
	deep := moeConfig(teacher.Config)
	for l := range deep.FFN {
		deep.FFN[l].ExpertArch = []model.ExpertArch{{Extra: []int{10}}, {Act: model.ActGELUTanh, Extra: []int{6, 12}}, {Act: model.ActReLU2}, {}}
	}
	ids := randomSeqs(1, 12, 97, 3)[0]
	for name, m := range map[string]*model.Model{"dense": teacher, "moe": testmodel.Random(moe, 5), "deep": testmodel.Random(deep, 5)} {
		t.Run(name, func(t *testing.T) {
			got := mustNet(t, m).forward(ids).logits
			matchesReference(t, got, m, ids)
			e, err := engine.New(cpu.New(cpu.Options{Threads: 1}), m, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			last, err := e.Forward(context.Background(), ids)
			if err != nil {
				t.Fatal(err)
			}
			p, V := len(ids)-1, m.Config.Vocab
			for i := 0; i < V; i++ {
				if d := math.Abs(float64(got[p*V+i] - last[i])); d > 1e-3 {
					t.Fatalf("engine logit %d: got %v, engine %v", i, got[p*V+i], last[i])
				}
			}
		})
	}
}
