package cpu

import (
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/routing"
)

// MoE computes each token's FFN output: the shared experts (scaled by the
// sigmoid gate when there is one) plus the weighted routed experts.
//
// Tokens are grouped by expert so a prefill batch runs each expert once over
// all the tokens routed to it; each result lands in a (token, rank) slot and
// the slots are summed per token in rank order, so the output does not
// depend on how tokens were grouped.
func (b *Backend) MoE(dst, x backend.Buf, r backend.Routes, f *backend.FFN) {
	d, s := dst.(*buf), x.(*buf)
	T, D := s.rows, s.cols
	clear(d.f)
	var g []float32
	if f.SharedGate != nil && len(f.Shared) > 0 {
		// The gate is a [1, D] matrix: one output per token.
		g = make([]float32, T)
		b.matmul(g, 1, s.f, T, D, f.SharedGate.(*weight))
	}
	for _, e := range f.Shared {
		y := b.expert(s.f, T, D, e)
		if g != nil {
			for t := 0; t < T; t++ {
				gt := routing.Sigmoid(g[t])
				yr := y[t*D : (t+1)*D]
				for i := range yr {
					yr[i] *= gt
				}
			}
		}
		for i, v := range y {
			d.f[i] += v
		}
	}
	if r == nil {
		return
	}
	routes := r.(cpuRoutes)
	K := 0
	for _, cs := range routes {
		K = max(K, len(cs))
	}
	if K == 0 {
		return
	}
	// Group (token, rank) slots by expert.
	byExpert := map[int][]int{}
	var order []int
	for t, cs := range routes {
		for k, c := range cs {
			if _, ok := byExpert[c.Expert]; !ok {
				order = append(order, c.Expert)
			}
			byExpert[c.Expert] = append(byExpert[c.Expert], t*K+k)
		}
	}
	slots := make([]float32, T*K*D)
	for _, e := range order {
		idx := byExpert[e]
		xe := make([]float32, len(idx)*D)
		for n, sl := range idx {
			copy(xe[n*D:(n+1)*D], s.row(sl/K))
		}
		y := b.expert(xe, len(idx), D, f.Experts[e])
		for n, sl := range idx {
			copy(slots[sl*D:(sl+1)*D], y[n*D:(n+1)*D])
		}
	}
	for t, cs := range routes {
		out := d.row(t)
		for k, c := range cs {
			y := slots[(t*K+k)*D : (t*K+k+1)*D]
			for i, v := range y {
				out[i] += float32(c.Weight * v)
			}
		}
	}
}

// expert runs one SwiGLU expert over n rows of x: down(silu(gate·x) ⊙ up·x).
func (b *Backend) expert(x []float32, n, dim int, e *backend.Expert) []float32 {
	gate, up, down := e.Gate.(*weight), e.Up.(*weight), e.Down.(*weight)
	width := gate.rows
	h1 := make([]float32, n*width)
	h3 := make([]float32, n*width)
	b.matmul(h1, width, x, n, dim, gate)
	b.matmul(h3, width, x, n, dim, up)
	for i, v := range h1 {
		h1[i] = float32(v*routing.Sigmoid(v)) * h3[i]
	}
	y := make([]float32, n*dim)
	b.matmul(y, dim, h1, n, width, down)
	return y
}
