package cpu

import (
	"cmp"
	"runtime"
	"slices"
	"sync/atomic"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
)

// moeFast is the routed part of MoE on the fast path, for layers whose
// experts are single gated blocks (no deeper blocks). All the experts the
// batch uses run together, in two parallel phases for one token, four for a batch, whatever their
// number:
//
//  0. (more than one token) each expert's tokens are gathered and
//     quantised once for its gate and up projections;
//  1. gate and up of every expert, split in items of (expert, 64 rows):
//     the item that computes rows r0..r1 of both applies the activation to
//     them and quantises them for the down projection, so no other phase is
//     needed between the two products; the experts with the most tokens go
//     first, so the last items to be claimed are small;
//  2. down of every expert, split by output rows: an item computes its rows
//     for every expert and token, then adds them into the output in each
//     token's rank order. For a batch, that is two phases: down in items
//     of (expert, 64 output rows), then the sums, split by output rows.
//
// The split of a decode step used to be three or six hand-offs between the
// goroutines per expert (24 to 48 for OLMoE's top-8 per layer), each with
// too little work, about 300 KB of weights, for the second goroutine to
// wake up in time to share it; then two per layer, each over all the
// experts' bytes. With at least two experts per goroutine (OLMoE's top-8
// on two) it is one: each goroutine claims whole experts, gate, up and
// down one after another (phase 5), streaming whole matrices, and the
// caller adds the results (RATIONALE.md, "Decode on two threads"). Every output is still summed in the same order whatever
// the split or the batch: the products are MulQuantized's or mulRows',
// which do not depend on the row range, and each (token, rank) result is
// added in rank order, as the general path does.
func (b *Backend) moeFast(d *buf, x []float32, T, D int, routes [][]routing.Choice, K int, f *backend.FFN) bool {
	m := &b.moe
	order := m.order
	for _, e := range order {
		if len(f.Experts[e].More) > 0 {
			return false
		}
	}
	j := &m.job
	j.b, j.f, j.x, j.T, j.D, j.K, j.routes, j.out = b, f, x, T, D, K, routes, d.f
	if cap(j.exps) < len(order) {
		j.exps = make([]moeExp, len(order), len(f.Experts))
		m.xqs = make([]tensor.Q16Rows, len(f.Experts))
		m.hqs = make([]tensor.Q16Rows, len(f.Experts))
	}
	j.exps = j.exps[:len(order)]
	var nx, nh, ny int
	var quantX bool
	for i, e := range order {
		ex := f.Experts[e]
		gate := ex.Gate.(*weight)
		s := m.byExpert[e]
		m.byExpert[e] = s[:0] // the slots stay readable until the next MoE
		j.exps[i] = moeExp{e: e, n: len(s), width: gate.rows, gate: gate, up: ex.Up.(*weight), down: ex.Down.(*weight), act: ex.Act, slots: s}
		quantX = quantX || gate.quantised() || j.exps[i].up.quantised()
		if j.exps[i].readsX() {
			nx += len(s) * D
		}
		if j.exps[i].down.quantised() {
			m.hqa.Plan(j.exps[i].down.m, len(s), gate.rows)
		} else {
			nh += len(s) * gate.rows
		}
		ny += len(s) * D
	}
	j.quantX = quantX
	if T > 1 {
		m.fx = grow(m.fx, nx)
		if quantX {
			for _, e := range j.exps {
				m.xqa.Plan(e.xFormat(), e.n, D)
			}
			m.xqa.Reset()
		}
	} else if quantX {
		// For the first expert's format: q4_0 also keeps the layout its
		// one-row decode kernel reads (Q16Rows.ResizeFor).
		b.xq.QuantizeFor(j.exps[0].gate.m, x[:D], 1, D)
	}
	m.hqa.Reset()
	m.h1, m.y = grow(m.h1, nh), grow(m.y, ny)
	m.ys = grow(m.ys, T*K)
	// Largest first: phase 1 hands out its items in this order.
	slices.SortStableFunc(j.exps, func(a, c moeExp) int { return cmp.Compare(c.n*c.width, a.n*a.width) })
	nx, nh, ny = 0, 0, 0
	items, itemsD, work0, work1, work2 := 0, 0, 0, 0, 0
	j.c1 = 64
	for i := range j.exps {
		e := &j.exps[i]
		n, w := e.n, e.width
		if T > 1 {
			// Phase 0 gathers the expert's tokens into x for the
			// products that read them in f32; when gate and up are both
			// quantised it quantises them from the batch's rows instead.
			e.x = nil
			if e.readsX() {
				e.x = m.fx[nx : nx+n*D]
				nx += n * D
			}
			if quantX {
				e.xq = &m.xqs[i]
				e.xq.ResizeIn(&m.xqa, e.xFormat(), n, D)
			}
			work0 += 8 * n * D
		} else {
			e.x, e.xq = x[:D], &b.xq
		}
		// A quantised down projection reads the hidden rows from hq,
		// which gateUp fills from rows computed in its goroutine's
		// scratch; another reads them from h1.
		if e.down.quantised() {
			e.hq = &m.hqs[i]
			e.hq.ResizeIn(&m.hqa, e.down.m, n, w)
		} else {
			e.hq = nil
			e.h1 = m.h1[nh : nh+n*w]
			nh += n * w
		}
		e.y = m.y[ny : ny+n*D]
		ny += n * D
		for r, sl := range e.slots {
			m.ys[sl] = e.y[r*D : (r+1)*D]
		}
		e.item0 = items
		items += (w + j.c1 - 1) / j.c1
		e.item0d = itemsD
		itemsD += (D + j.c1 - 1) / j.c1
		work1 += 2 * n * w * D
		work2 += n * w * D
	}
	j.items = items
	if T > 1 {
		j.phase = 0
		b.split(len(j.exps), work0, 1, j)
	}
	chunk := max(4, (D/(8*b.threads)+3)&^3)
	if T == 1 && wholeExperts(j.exps, b.threads) {
		// Decode with experts enough to share: whole experts, gate, up
		// and down, one after another on each goroutine, the down
		// projections' rows shared at the end (runWholeExperts); then the
		// sums on this one.
		j.phase = 5
		j.nextExp.Store(0)
		if cap(j.downs) < len(j.exps) {
			j.downs = make([]atomic.Uint64, len(j.exps), len(f.Experts))
			j.ready = make([]atomic.Bool, len(j.exps), len(f.Experts))
		}
		j.downs, j.ready = j.downs[:len(j.exps)], j.ready[:len(j.exps)]
		for i := range j.exps {
			j.downs[i].Store(uint64((D+j.c1-1)/j.c1) << 32)
			j.ready[i].Store(false)
		}
		b.split(b.threads, work1+work2, 1, j)
		j.combine(0, D)
	} else if T == 1 {
		j.phase = 1
		b.split(items, work1, 1, j)
		j.phase = 2
		b.split(D, work2, chunk, j)
	} else {
		j.phase = 1
		b.split(items, work1, 1, j)
		// A batch's down projections in items of (expert, 64 rows), as
		// phase 1's: by output rows alone, an item was every expert's
		// rows for all the batch's tokens, a sixteenth of the layer, and
		// the goroutine left with the last waited long for the other.
		j.phase = 3
		b.split(itemsD, work2, 1, j)
		j.phase = 4
		b.split(D, T*K*D, chunk, j)
	}
	for i := range j.exps {
		j.exps[i] = moeExp{}
	}
	j.f, j.x, j.routes, j.out = nil, nil, nil, nil
	clear(m.ys)
	return true
}

// wholeExperts reports whether a decode's experts es (largest first) go to
// the pool's threads goroutines whole rather than by rows: when there are
// at least two per goroutine, or as many goroutines' worth of experts that
// all cost the same (Mixtral's top-2 on two threads). A goroutine then
// reads its experts' three matrices each in one stream and the layer
// needs one hand-off instead of two; by rows, the goroutines took turns
// at 64-row items of the same matrices, each stream restarting at every
// item (RATIONALE.md, "Decode hands out whole experts"). Experts of
// different widths (a distilled model's) too few to balance keep the rows.
func wholeExperts(es []moeExp, threads int) bool {
	if len(es) >= 2*threads {
		return true
	}
	if len(es) == 0 || len(es)%threads != 0 {
		return false
	}
	for _, e := range es[1:] {
		if e.n*e.width != es[0].n*es[0].width {
			return false
		}
	}
	return true
}

// moeExp is one expert's share of a moeTask.
type moeExp struct {
	e, n, width    int // expert, tokens, hidden width
	gate, up, down *weight
	act            model.Activation
	slots          []int     // the (token, rank) slots routed here, t·K+k
	x              []float32 // its tokens' inputs, n×D (nil in a batch whose gate and up are quantised: xq alone)
	xq             *tensor.Q16Rows
	h1             []float32       // n×width: gate, then the activation (when the down projection is not quantised)
	hq             *tensor.Q16Rows // h1 quantised (when it is)
	y              []float32       // n×D: the down projection
	item0, item0d  int             // its first item of phase 1, of phase 3
}

// readsX reports whether e's gate or up product reads its tokens' inputs
// in f32 (a batch gathers them into x), rather than quantised alone.
func (e *moeExp) readsX() bool { return !e.gate.quantised() || !e.up.quantised() }

// xFormat is the matrix whose format e's quantised inputs are laid out
// for in prefill (Q16Arena: for that format's products alone): gate's,
// or up's when gate reads them in f32; none when gate and up are
// quantised in two formats, whose kernels then share the plain layout.
func (e *moeExp) xFormat() *tensor.Matrix {
	switch {
	case !e.gate.quantised():
		return e.up.m
	case e.up.quantised() && e.up.m.DType() != e.gate.m.DType():
		return nil
	}
	return e.gate.m
}

// moeTask is one moeFast call's phases (see moeFast); it lives in the
// Backend so that handing it to the pool allocates nothing.
type moeTask struct {
	b         *Backend
	f         *backend.FFN
	x         []float32
	T, D, K   int
	routes    [][]routing.Choice
	out       []float32
	exps      []moeExp
	quantX    bool
	phase, c1 int
	items     int

	// Phase 5: the next expert to claim; per expert, its down
	// projection's chunks of c1 rows not yet claimed (the first in the
	// low 32 bits, one past the last in the high) and whether its gate
	// and up are done (its hidden rows quantised: hq).
	nextExp atomic.Int64
	downs   []atomic.Uint64
	ready   []atomic.Bool
}

func (j *moeTask) run(worker, lo, hi int) {
	switch j.phase {
	case 0:
		for _, e := range j.exps[lo:hi] {
			if e.x == nil {
				for r, sl := range e.slots {
					t := sl / j.K
					e.xq.QuantizeBlocksFrom(j.x[t*j.D:(t+1)*j.D], r*j.D/32)
				}
				continue
			}
			for r, sl := range e.slots {
				t := sl / j.K
				copy(e.x[r*j.D:(r+1)*j.D], j.x[t*j.D:(t+1)*j.D])
			}
			if j.quantX {
				e.xq.QuantizeBlocks(e.x, 0, e.n*j.D/32)
			}
		}
	case 1:
		i := 0
		for it := lo; it < hi; it++ {
			for i+1 < len(j.exps) && j.exps[i+1].item0 <= it {
				i++
			}
			e := &j.exps[i]
			r0 := (it - e.item0) * j.c1
			j.gateUp(worker, e, r0, min(r0+j.c1, e.width))
		}
	case 2:
		j.down(worker, lo, hi)
		j.combine(lo, hi)
	case 3:
		i := 0
		for it := lo; it < hi; it++ {
			for i+1 < len(j.exps) && j.exps[i+1].item0d <= it {
				i++
			}
			e := &j.exps[i]
			r0 := (it - e.item0d) * j.c1
			j.downExpert(worker, e, r0, min(r0+j.c1, j.D))
		}
	case 4:
		j.combine(lo, hi)
	case 5:
		j.runWholeExperts(worker)
	}
}

// runWholeExperts is phase 5 on one goroutine (each of the pool's takes one
// item, and the first to finish takes the rest, which are then empty):
// it claims experts one at a time until none is left, computes each one's
// gate and up, then claims the chunks of its down projection's output
// rows from the front, in memory order. With no expert left to claim, it
// takes chunks from the back of the others' down projections, once their
// gate and up are done. Whole experts leave the goroutines' shares
// uneven: their weights come from memory at different rates (one may
// still be in the last level cache from the token before), so one
// goroutine waited for the other 11 µs of a 70 µs layer on the
// Mixtral-shaped q4_0 decode, and 21 of 190 on OLMoE's, where the last
// expert claimed is a whole expert's work (RATIONALE.md, "Decode shares
// the last down projections' rows"). A chunk's rows are the same
// products whoever computes them (mulRange's do not depend on the range).
func (j *moeTask) runWholeExperts(worker int) {
	for {
		i := int(j.nextExp.Add(1) - 1)
		if i >= len(j.exps) {
			break
		}
		e := &j.exps[i]
		j.gateUp(worker, e, 0, e.width)
		j.ready[i].Store(true)
		for {
			c, n := claimFront(&j.downs[i])
			if n == 0 {
				break
			}
			j.downExpert(worker, e, c*j.c1, min((c+n)*j.c1, j.D))
		}
	}
	// Every expert is claimed: help with the down projections left,
	// waiting for a gate and up in progress rather than leaving its
	// down projection to one goroutine. The wait yields, so that the
	// goroutine computing them runs where the pool has more goroutines
	// than Ps.
	for left := true; left; {
		left = false
		for i := range j.exps {
			if chunksLeft(&j.downs[i]) == 0 {
				continue
			}
			left = true
			if !j.ready[i].Load() {
				runtime.Gosched()
				continue
			}
			for {
				c, ok := claimBack(&j.downs[i])
				if !ok {
					break
				}
				j.downExpert(worker, &j.exps[i], c*j.c1, min((c+1)*j.c1, j.D))
			}
		}
	}
}

// claimFront takes half the chunks left of a (at least one), from the
// front: n of them from the first, c; none when n is 0. a holds the
// first chunk left in its low 32 bits and one past the last in its
// high. Halves rather than single chunks keep the owner's calls few (a
// call's fixed cost, over the 16 chunks of OLMoE's down projections,
// was the size of the imbalance it evens out) and its stream whole.
func claimFront(a *atomic.Uint64) (c, n int) {
	for {
		v := a.Load()
		f, l := uint32(v), uint32(v>>32)
		if f >= l {
			return 0, 0
		}
		k := max((l-f)/2, 1)
		if a.CompareAndSwap(v, v+uint64(k)) {
			return int(f), int(k)
		}
	}
}

// claimBack takes the last chunk left of a (see claimFront); false when
// none is.
func claimBack(a *atomic.Uint64) (int, bool) {
	for {
		v := a.Load()
		f, l := uint32(v), uint32(v>>32)
		if f >= l {
			return 0, false
		}
		if a.CompareAndSwap(v, uint64(f)|uint64(l-1)<<32) {
			return int(l - 1), true
		}
	}
}

// chunksLeft is the number of chunks claimChunk can still take from a.
func chunksLeft(a *atomic.Uint64) int {
	v := a.Load()
	f, l := uint32(v), uint32(v>>32)
	return int(max(l, f) - f)
}

// gateUp computes rows r0..r1 of expert e's gate and up projections for
// all its tokens, the activation of them, and, when the down projection is
// quantised, their quantisation (r0 and r1 are then multiples of 32, since
// the width of a block-format matrix is).
//
// The up projection's rows, and the gate's when they go on to be
// quantised, are computed into the goroutine's scratch, token t's at
// t·s + r0 with s = r1 − r0, so that a batch holds no n×width f32
// matrices for them: a 128-token prefill of the Mixtral-shaped model held
// 2.9 MB of them for the quantised rows it keeps.
func (j *moeTask) gateUp(worker int, e *moeExp, r0, r1 int) {
	b, f, w, D := j.b, j.f, e.width, j.D
	sc := &b.scratch[worker]
	s := r1 - r0
	sc.h3 = grow(sc.h3, (e.n-1)*s+r1)
	h1, s1 := e.h1, w
	if e.hq != nil {
		sc.h1 = grow(sc.h1, (e.n-1)*s+r1)
		h1, s1 = sc.h1, s
	}
	b.mulRange(worker, h1, s1, e.x, e.xq, e.n, D, e.gate, r0, r1)
	b.mulRange(worker, sc.h3, s, e.x, e.xq, e.n, D, e.up, r0, r1)
	for t := range e.n {
		g, u := h1[t*s1+r0:t*s1+r1], sc.h3[t*s+r0:t*s+r1]
		if f.GateBias != nil {
			gb := f.GateBias.(*weight).f[e.e*w+r0 : e.e*w+r1]
			ub := f.UpBias.(*weight).f[e.e*w+r0 : e.e*w+r1]
			for i := range g {
				g[i] += gb[i]
				u[i] += ub[i]
			}
		}
		activate(g, u, e.act, f, true)
		if e.hq != nil {
			e.hq.QuantizeBlocksFrom(g, (t*w+r0)/32)
		}
	}
}

// down computes output rows lo..hi of every expert's down projection for
// all its tokens.
func (j *moeTask) down(worker, lo, hi int) {
	for i := range j.exps {
		j.downExpert(worker, &j.exps[i], lo, hi)
	}
}

// downExpert computes output rows lo..hi of expert e's down projection for
// all its tokens.
func (j *moeTask) downExpert(worker int, e *moeExp, lo, hi int) {
	D := j.D
	j.b.mulRange(worker, e.y, D, e.h1, e.hq, e.n, e.width, e.down, lo, hi)
	if j.f.DownBias != nil {
		db := j.f.DownBias.(*weight).f[e.e*D+lo : e.e*D+hi]
		for t := range e.n {
			y := e.y[t*D+lo : t*D+hi]
			for i, v := range db {
				y[i] += v
			}
		}
	}
}

// combine adds output rows lo..hi of every (token, rank) result into its
// token's output, in rank order.
func (j *moeTask) combine(lo, hi int) {
	D := j.D
	ys := j.b.moe.ys
	for t, cs := range j.routes {
		out := j.out[t*D+lo : t*D+hi]
		for k, c := range cs {
			y := ys[t*j.K+k][lo:hi]
			for i, v := range y {
				out[i] += float32(c.Weight * v)
			}
		}
	}
}

// activate sets h1 to act(h1) ⊙ h3 for a block of activation act in layer
// f. SwiGLU's sigmoid uses vec.Exp on the fast path (within 2^-21 of e^x,
// RATIONALE.md) and math.Exp, as run.c, on the exact one.
func activate(h1, h3 []float32, act model.Activation, f *backend.FFN, fast bool) {
	switch {
	case f.Act == model.ActSwiGLUClamped:
		alpha, limit := f.Alpha, f.Limit
		for i, g := range h1 {
			h1[i] = clampedSwiGLU(g, h3[i], alpha, limit)
		}
	case act == model.ActGELUTanh:
		for i, v := range h1 {
			h1[i] = GELUTanh(v) * h3[i]
		}
	case act == model.ActReLU2:
		for i, v := range h1 {
			h1[i] = ReLU2(v) * h3[i]
		}
	case fast:
		siluMul(h1, h3)
	default:
		for i, v := range h1 {
			h1[i] = float32(v*routing.Sigmoid(v)) * h3[i]
		}
	}
}
