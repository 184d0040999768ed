package cpu

import (
	"math"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/tensor"
)

func up(t *testing.T, b *Backend, shape []int, v ...float32) backend.Weight {
	t.Helper()
	w, err := b.Upload(tensor.FromF32("w", shape, v))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestMoEHandWorked: x = [1, 0]; one shared expert of width 1 with gate row
// [2, 0], up row [1, 0], down column [1, 2] gives silu(2)·1·[1, 2]; the
// Qwen2-style shared gate [ln 3, 0] scales it by sigmoid(ln 3) = 0.75. A
// routed expert (width 1: gate [1,0], up [3,0], down [1,-1]) with weight 0.5
// adds 0.5·silu(1)·3·[1, -1].
func TestMoEHandWorked(t *testing.T) {
	b := New(Options{Threads: 1})
	x, _ := b.NewBuf(1, 2)
	copy(x.(*buf).f, []float32{1, 0})
	shared := &backend.Expert{Gate: up(t, b, []int{1, 2}, 2, 0), Up: up(t, b, []int{1, 2}, 1, 0), Down: up(t, b, []int{2, 1}, 1, 2)}
	routed := &backend.Expert{Gate: up(t, b, []int{1, 2}, 1, 0), Up: up(t, b, []int{1, 2}, 3, 0), Down: up(t, b, []int{2, 1}, 1, -1)}
	silu := func(v float64) float64 { return v / (1 + math.Exp(-v)) }
	tests := []struct {
		name   string
		ffn    backend.FFN
		routes backend.Routes
		want   []float64
	}{
		{"ungated shared (dense)", backend.FFN{Shared: []*backend.Expert{shared}}, nil, []float64{silu(2), 2 * silu(2)}},
		{"gated shared", backend.FFN{Shared: []*backend.Expert{shared}, SharedGate: up(t, b, []int{1, 2}, float32(math.Log(3)), 0)}, nil,
			[]float64{0.75 * silu(2), 1.5 * silu(2)}},
		{"shared plus routed", backend.FFN{Shared: []*backend.Expert{shared}, Experts: []*backend.Expert{nil, routed}},
			cpuRoutes{{{Expert: 1, Weight: 0.5}}},
			[]float64{silu(2) + 1.5*silu(1), 2*silu(2) - 1.5*silu(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := b.NewBuf(1, 2)
			b.MoE(out, x, tt.routes, &tt.ffn)
			for i, w := range tt.want {
				if g := out.(*buf).f[i]; math.Abs(float64(g)-w) > 1e-6 {
					t.Fatalf("out = %v, want %v", out.(*buf).f, tt.want)
				}
			}
		})
	}
}
