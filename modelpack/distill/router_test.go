package distill

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFitRouter: when the best expert of each token is a linear function
// of its hidden state, the fitted router finds it for nearly every token.
func TestFitRouter(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const N, D, E = 2000, 16, 6
	H := make([]float32, N*D)
	for i := range H {
		H[i] = float32(r.NormFloat64())
	}
	truth := make([]float32, E*D)
	for i := range truth {
		truth[i] = float32(r.NormFloat64())
	}
	logits := matmul(H, truth, N, D, E)
	Y := make([]float32, N*E)
	for t := 0; t < N; t++ {
		var s float64
		for e := 0; e < E; e++ {
			v := math.Exp(float64(logits[t*E+e]))
			Y[t*E+e] = float32(v)
			s += v
		}
		for e := 0; e < E; e++ {
			Y[t*E+e] /= float32(s)
		}
	}
	W, err := fitRouter(H, N, D, Y, E)
	if err != nil {
		t.Fatal(err)
	}
	got := matmul(H, W, N, D, E)
	hit := 0
	for t := 0; t < N; t++ {
		if argmax(got[t*E:(t+1)*E]) == argmax(Y[t*E:(t+1)*E]) {
			hit++
		}
	}
	if acc := float64(hit) / N; acc < 0.85 {
		t.Errorf("router picks the best expert for %.3f of tokens, want >= 0.85", acc)
	} else {
		t.Logf("top-1 accuracy %.3f", acc)
	}
}

// TestContributions: each group's share is the norm of its partial output.
func TestContributions(t *testing.T) {
	// dim 2, width 3: neuron 0 writes (1,0), neuron 1 (0,2), neuron 2 (3,0).
	down := []float32{1, 0, 3, 0, 2, 0}
	acts := []float32{1, 1, 1}
	got := contributions(acts, 1, down, 2, 3, [][]int{{0, 2}, {1}})
	if math.Abs(float64(got[0])-4.0/6) > 1e-6 || math.Abs(float64(got[1])-2.0/6) > 1e-6 {
		t.Errorf("contributions %v, want [0.667 0.333]", got)
	}
}
