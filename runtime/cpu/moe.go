package cpu

import (
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
)

// MoE computes each token's FFN output: the shared experts (scaled by the
// sigmoid gate when there is one) plus the weighted routed experts.
//
// Tokens are grouped by expert so a prefill batch runs each expert once over
// all the tokens routed to it; each result lands in a (token, rank) slot and
// the slots are summed per token in rank order, so the output does not
// depend on how tokens were grouped.
//
// With peers (SetPeers), the peers are asked for their shares of the
// routed experts first, computed meanwhile, and added last.
func (b *Backend) MoE(dst, x backend.Buf, r backend.Routes, f *backend.FFN) {
	asked := r != nil && len(b.peers) > 0 && b.askPeers(x.(*buf), r.(*cpuRoutes).c, f)
	b.moeLocal(dst, x, r, f)
	if asked {
		b.gatherPeers(dst.(*buf).f)
	}
}

// moeLocal is MoE on this instance's own experts (or shares of them).
func (b *Backend) moeLocal(dst, x backend.Buf, r backend.Routes, f *backend.FFN) {
	d, s := dst.(*buf), x.(*buf)
	T, D := s.rows, s.cols
	m := &b.moe
	clear(d.f)
	var g []float32
	if f.SharedGate != nil && len(f.Shared) > 0 {
		// The gate is a [1, D] matrix: one output per token.
		m.g = grow(m.g, T)
		g = m.g
		b.matmul(g, 1, s.f, T, D, f.SharedGate.(*weight))
	}
	for _, e := range f.Shared {
		y := b.expert(s.f, T, D, e, f, -1)
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
	rt := r.(*cpuRoutes)
	defer b.recycleRoutes(rt)
	routes := rt.c
	K := 0
	for _, cs := range routes {
		K = max(K, len(cs))
	}
	if K == 0 {
		return
	}
	// Group (token, rank) slots by expert, in order of first use.
	if len(m.byExpert) < len(f.Experts) {
		m.byExpert = make([][]int, len(f.Experts))
	}
	order := m.order[:0]
	for t, cs := range routes {
		for k, c := range cs {
			if len(m.byExpert[c.Expert]) == 0 {
				order = append(order, c.Expert)
			}
			m.byExpert[c.Expert] = append(m.byExpert[c.Expert], t*K+k)
		}
	}
	m.order = order
	if !b.exact && !b.generalMoE && b.moeFast(d, s.f, T, D, routes, K, f) {
		return
	}
	// Slots not written (a token routed to fewer than K experts) are
	// never read, so the reused memory need not be cleared.
	m.slots = grow(m.slots, T*K*D)
	slots := m.slots
	for _, e := range order {
		idx := m.byExpert[e]
		m.byExpert[e] = idx[:0]
		m.xe = grow(m.xe, len(idx)*D)
		xe := m.xe
		for n, sl := range idx {
			copy(xe[n*D:(n+1)*D], s.row(sl/K))
		}
		y := b.expert(xe, len(idx), D, f.Experts[e], f, e)
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

// moeScratch is the memory MoE reuses from one call to the next.
type moeScratch struct {
	g, slots, xe, h1, h3, y []float32
	acc, hn                 []float32 // deeper experts: the blocks' sum, the next block's input
	byExpert                [][]int   // slots routed to each expert
	order                   []int     // experts in order of first use

	// the fast path's (moeFast)
	job      moeTask
	fx       []float32        // the experts' gathered inputs
	ys       [][]float32      // per (token, rank) slot, its expert's output row
	xqs, hqs []tensor.Q16Rows // per expert of a batch: its inputs, its hidden rows, quantised
	xqa, hqa tensor.Q16Arena  // the storage of xqs and hqs
}

// expert runs one expert over n rows of x: its first block
// down(act(gate·x) ⊙ up·x) (with routed expert idx's biases and the layer's
// clamped activation when the layer has them; idx is -1 for a shared
// expert) and, for a deeper expert, each later block over RMSNorm(x + the
// sum so far), adding the blocks' outputs in block order. The result is
// scratch memory, valid until the next call.
func (b *Backend) expert(x []float32, n, dim int, e *backend.Expert, f *backend.FFN, idx int) []float32 {
	y := b.block(x, n, dim, e.Gate, e.Up, e.Down, e.Act, f, idx)
	if len(e.More) == 0 {
		return y
	}
	m := &b.moe
	m.acc, m.hn = grow(m.acc, n*dim), grow(m.hn, n*dim)
	acc, hn := m.acc, m.hn
	copy(acc, y)
	for _, bl := range e.More {
		for i := range acc {
			hn[i] = x[i] + acc[i]
		}
		nw := bl.Norm.(*weight).f
		for r := 0; r < n; r++ {
			row := hn[r*dim : (r+1)*dim]
			rmsnorm(row, row, nw, f.NormEps)
		}
		// later blocks have no biases (validation refuses deep experts in
		// layers that have them)
		y := b.block(hn, n, dim, bl.Gate, bl.Up, bl.Down, e.Act, f, -1)
		for i, v := range y {
			acc[i] += v
		}
	}
	return acc
}

// block runs one gated block over n rows of x: down(act(gate·x) ⊙ up·x),
// or the layer's clamped SwiGLU and expert idx's biases where f has them.
// The result is scratch memory, valid until the next call.
func (b *Backend) block(x []float32, n, dim int, gw, uw, dw backend.Weight, act model.Activation, f *backend.FFN, idx int) []float32 {
	gate, up, down := gw.(*weight), uw.(*weight), dw.(*weight)
	width := gate.rows
	m := &b.moe
	m.h1, m.h3 = grow(m.h1, n*width), grow(m.h3, n*width)
	h1, h3 := m.h1, m.h3
	b.matmul(h1, width, x, n, dim, gate)
	b.matmul(h3, width, x, n, dim, up)
	var gb, ub, db []float32
	if idx >= 0 && f.GateBias != nil {
		gb = f.GateBias.(*weight).f[idx*width : (idx+1)*width]
		ub = f.UpBias.(*weight).f[idx*width : (idx+1)*width]
		db = f.DownBias.(*weight).f[idx*dim : (idx+1)*dim]
		addRows(h1, gb)
		addRows(h3, ub)
	}
	activate(h1, h3, act, f, !b.exact)
	m.y = grow(m.y, n*dim)
	y := m.y
	b.matmul(y, dim, h1, n, width, down)
	if db != nil {
		addRows(y, db)
	}
	return y
}

// clampedSwiGLU is gpt-oss's activation of one gate and up value, as
// GptOssExperts.forward in HF's modeling_gpt_oss.py computes it: gate
// clamped above at limit, up to ±limit, then (up + 1) · gate · σ(alpha·gate).
func clampedSwiGLU(g, u, alpha, limit float32) float32 {
	g = min(g, limit)
	u = max(min(u, limit), -limit)
	glu := float32(g * routing.Sigmoid(float32(alpha*g)))
	return float32((u + 1) * glu)
}

// addRows adds bias to each len(bias)-wide row of x.
func addRows(x, bias []float32) {
	for o := 0; o < len(x); o += len(bias) {
		r := x[o : o+len(bias)]
		for i, v := range bias {
			r[i] += v
		}
	}
}

// GELUTanh is GELU's tanh approximation 0.5·v·(1+tanh(√(2/π)(v+0.044715v³))),
// computed as v·sigmoid(2√(2/π)(v+0.044715v³)) (the same function, since
// 0.5(1+tanh z) = sigmoid(2z)) so that it rests on exp alone, as the WGSL
// kernels do.
func GELUTanh(v float32) float32 {
	z := float32(1.5957691216057308) * (v + float32(0.044715)*float32(float32(v*v)*v))
	return v * routing.Sigmoid(z)
}

// ReLU2 is max(v, 0)².
func ReLU2(v float32) float32 {
	r := max(v, 0)
	return r * r
}
