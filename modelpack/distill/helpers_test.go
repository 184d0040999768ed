package distill

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/model"
)

// denseTeacher is the engine tests' "llama" family: a small random dense
// model with a tied head and grouped k/v heads.
func denseTeacher(width int) *model.Model {
	c := testmodel.Config(32, 3, 4, 2, 97)
	c.TiedOutput = true
	for range c.Layers {
		c.FFN = append(c.FFN, model.FFN{SharedWidths: []int{width}})
	}
	return testmodel.Random(c, 7)
}

// moeConfig is c with every layer's FFN made a routed layer of four experts
// of different widths (top-2, normalised, scaled by 2) beside a 6-neuron
// shared expert: the student shape the gradient and forward tests use.
func moeConfig(c model.Config) model.Config {
	c.FFN = nil
	for range c.Layers {
		c.FFN = append(c.FFN, model.FFN{ExpertWidths: []int{8, 16, 12, 4}, SharedWidths: []int{6},
			Router: &model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true, ScalingFactor: 2}})
	}
	return c
}

// randomSeqs returns n sequences of length T of random token ids.
func randomSeqs(n, T, vocab int, seed uint64) [][]int {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]int, n)
	for i := range out {
		out[i] = make([]int, T)
		for t := range out[i] {
			out[i][t] = r.IntN(vocab)
		}
	}
	return out
}

func mustNet(t testing.TB, m *model.Model) *net {
	t.Helper()
	n, err := newNet(m)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// matchesReference fails t unless logits (positions × vocab, from the
// distiller's network) are within 1e-3 of the naive float64 reference
// forward pass of m over ids.
func matchesReference(t testing.TB, logits []float32, m *model.Model, ids []int) {
	t.Helper()
	want := testmodel.Logits(m, ids)
	V := m.Config.Vocab
	for p := range ids {
		for i := 0; i < V; i++ {
			if d := math.Abs(float64(logits[p*V+i]) - want[p][i]); d > 1e-3 {
				t.Fatalf("pos %d logit %d: network %v, reference %v", p, i, logits[p*V+i], want[p][i])
			}
		}
	}
}
