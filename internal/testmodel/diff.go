package testmodel

import (
	"context"
	"fmt"
	"math"
)

// Forwarder is what DecodeDiff drives: an engine.Engine.
type Forwarder interface {
	Forward(ctx context.Context, ids []int) ([]float32, error)
}

// DecodeDiff runs prompt, then steps-1 decode steps, on a and b, feeding
// both a's greedy choice (teacher forcing, so one disagreement does not
// change every later input), and returns the largest logit difference.
// check, when set, sees each step's logits and may end the run with an
// error (to require that the greedy tokens agree).
func DecodeDiff(a, b Forwarder, prompt []int, steps int, check func(step int, want, got []float32) error) (float64, error) {
	var worst float64
	in := prompt
	for s := range steps {
		want, err := a.Forward(context.Background(), in)
		if err != nil {
			return worst, fmt.Errorf("step %d: %w", s, err)
		}
		got, err := b.Forward(context.Background(), in)
		if err != nil {
			return worst, fmt.Errorf("step %d: %w", s, err)
		}
		for i := range want {
			worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
		}
		if check != nil {
			if err := check(s, want, got); err != nil {
				return worst, fmt.Errorf("step %d: %w (max logit diff so far %.3g)", s, err, worst)
			}
		}
		in = []int{Argmax(want)}
	}
	return worst, nil
}

// Argmax is the greedy choice: the largest value, the lowest index among
// equals.
func Argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
