package distill

import (
	"fmt"
	"math"
	"slices"

	"github.com/moderuntime/mode/runtime/model"
)

// Refit options: after clustering, each layer's routing and down
// projections can be refined in closed form, one layer after another.
//
// With the routing of every calibration token fixed, the FFN output of the
// student is linear in the down projections: token t gets
// Σ_i down[:, i]·a_i(t)·m_i(t), where a_i is neuron i's activation and m_i(t)
// is 1 when neuron i is shared or its expert was selected for t. Refitting
// solves ridge least squares for all down columns jointly so that this sum
// matches a target (the dense FFN output, or what the teacher's residual
// stream needs), the ridge pulling towards the teacher's own columns.
// Routing and refit can alternate: the router is refitted onto the new
// experts' contributions, the down projections onto the new routing.

// RefitTarget chooses what the refitted layer should reproduce.
type RefitTarget int

func (t RefitTarget) String() string {
	if t == RefitResidual {
		return "residual"
	}
	return "local"
}

// MarshalText names the target in reports.
func (t RefitTarget) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

const (
	// RefitLocal matches the dense FFN applied to the same hidden rows.
	RefitLocal RefitTarget = iota
	// RefitResidual matches the teacher's residual stream after the layer:
	// target = teacher residual − student residual before the FFN, so each
	// layer also corrects the error the layers before it left.
	RefitResidual
)

// layerFit is one layer's calibration data for routing and refitting.
type layerFit struct {
	N, D, W int
	h       []float32 // [N, D] FFN inputs (normed)
	acts    []float32 // [N, W] dense neuron activations silu(g)·u
	target  []float32 // [N, D] what the layer's FFN output should be
}

// denseActs computes silu(gate·h)·(up·h) for every row of h.
func denseActs(dense *expert, h []float32, N, D int) []float32 {
	W := dense.width
	acts := make([]float32, N*W)
	g := matmul(h, dense.gate, N, D, W)
	u := matmul(h, dense.up, N, D, W)
	for i := range acts {
		acts[i] = silu(g[i]) * u[i]
	}
	return acts
}

// topK returns the k largest of logits by index, ties to the lower index,
// as routing.Select orders them (softmax is monotone).
func topK(dst []int, logits []float32, k int) []int {
	dst = dst[:0]
	for range k {
		best := -1
		for e, v := range logits {
			if slices.Contains(dst, e) {
				continue
			}
			if best < 0 || v > logits[best] {
				best = e
			}
		}
		dst = append(dst, best)
	}
	return dst
}

// neuronMask marks, for each token, which dense neurons the student uses
// given the plan's router: shared neurons always, routed ones when their
// expert is among the top k. It returns [N, W] as 0/1 bytes.
func neuronMask(p *layerPlan, f *layerFit, k int) []byte {
	E := len(p.router) / f.D // the real experts and any tiny ones
	owner := make([]int, f.W)
	for i := range owner {
		owner[i] = -1
	}
	for e, g := range p.experts {
		for _, i := range g {
			owner[i] = e
		}
	}
	logits := matmul(f.h, p.router, f.N, f.D, E)
	mask := make([]byte, f.N*f.W)
	sel := make([]int, 0, k)
	on := make([]bool, E)
	for t := 0; t < f.N; t++ {
		sel = topK(sel, logits[t*E:(t+1)*E], k)
		clear(on)
		for _, e := range sel {
			on[e] = true
		}
		m := mask[t*f.W : (t+1)*f.W]
		for i, o := range owner {
			if o < 0 || on[o] {
				m[i] = 1
			}
		}
	}
	return mask
}

// reconError is the mean squared error Σ‖y_student − target‖²/N of the
// layer's FFN output under mask with down projections down [D, W].
func reconError(f *layerFit, mask []byte, down []float32) float64 {
	var s float64
	y := make([]float32, f.D)
	z := make([]float32, f.W)
	for t := 0; t < f.N; t++ {
		a := f.acts[t*f.W : (t+1)*f.W]
		m := mask[t*f.W : (t+1)*f.W]
		for i := range z {
			z[i] = a[i] * float32(m[i])
		}
		for j := 0; j < f.D; j++ {
			y[j] = dot(down[j*f.W:(j+1)*f.W], z)
		}
		for j, v := range f.target[t*f.D : (t+1)*f.D] {
			d := float64(y[j] - v)
			s += d * d
		}
	}
	return s / float64(f.N)
}

// refitDown solves min Σ_t ‖down'·(a(t)⊙m(t)) − target(t)‖² +
// λ‖down' − prior‖² for down' [D, W], where λ = ridge·trace(G)/W of the
// masked activations' Gram matrix G.
func refitDown(f *layerFit, mask []byte, prior []float32, ridge float64) ([]float32, error) {
	W, D := f.W, f.D
	G := make([]float64, W*W)
	B := make([]float64, W*D)
	idx := make([]int, 0, W)
	val := make([]float64, 0, W)
	for t := 0; t < f.N; t++ {
		a := f.acts[t*W : (t+1)*W]
		m := mask[t*W : (t+1)*W]
		idx, val = idx[:0], val[:0]
		for i, v := range a {
			if m[i] != 0 && v != 0 {
				idx = append(idx, i)
				val = append(val, float64(v))
			}
		}
		y := f.target[t*D : (t+1)*D]
		for p, i := range idx {
			vi := val[p]
			row := G[i*W : (i+1)*W]
			for q := p; q < len(idx); q++ {
				row[idx[q]] += vi * val[q]
			}
			br := B[i*D : (i+1)*D]
			for j, yj := range y {
				br[j] += vi * float64(yj)
			}
		}
	}
	var tr float64
	for i := 0; i < W; i++ {
		for j := 0; j < i; j++ {
			G[i*W+j] = G[j*W+i]
		}
		tr += G[i*W+i]
	}
	lambda := ridge*tr/float64(W) + 1e-9
	for i := 0; i < W; i++ {
		G[i*W+i] += lambda
		for j := 0; j < D; j++ {
			B[i*D+j] += lambda * float64(prior[j*W+i])
		}
	}
	if err := cholesky(G, W); err != nil {
		return nil, fmt.Errorf("down-projection refit: %w", err)
	}
	down := make([]float32, D*W)
	col := make([]float64, W)
	for j := 0; j < D; j++ {
		for i := 0; i < W; i++ {
			col[i] = B[i*D+j]
		}
		cholSolve(G, W, col)
		for i := 0; i < W; i++ {
			down[j*W+i] = float32(col[i])
		}
	}
	return down, nil
}

// fitPlanRouter refits p.router on f.h onto the normalised contributions of
// the experts with down projections down, returning the router's top-1 fit
// (unscaled: logits keep their fitted size).
func fitPlanRouter(p *layerPlan, f *layerFit, down []float32) (float64, error) {
	E := len(p.experts)
	y := contributions(f.acts, f.N, down, f.D, f.W, p.experts)
	r, err := fitRouter(f.h, f.N, f.D, y, E)
	if err != nil {
		return 0, err
	}
	logits := matmul(f.h, r, f.N, f.D, E)
	hit := 0
	for t := 0; t < f.N; t++ {
		if argmax(logits[t*E:(t+1)*E]) == argmax(y[t*E:(t+1)*E]) {
			hit++
		}
	}
	p.router = r
	return float64(hit) / float64(f.N), nil
}

// scaleRouter shrinks r so that its largest logit on h is unitLogit.
func scaleRouter(r, h []float32, N, D int) {
	E := len(r) / D
	logits := matmul(h, r, N, D, E)
	var big float32
	for _, v := range logits {
		big = max(big, float32(math.Abs(float64(v))))
	}
	if big > 0 {
		s := unitLogit / big
		for i := range r {
			r[i] *= s
		}
	}
}

// refineLayer alternates router fits and down-projection refits on f for
// iters rounds and keeps the round with the smallest reconstruction error.
// It returns the error of the teacher's down projections under the
// initial routing and the final error.
func refineLayer(p *layerPlan, f *layerFit, dense []float32, k, iters int, ridge float64, refitRouter bool, tiny TinyOptions) (before, after float64, err error) {
	down := dense
	if p.down != nil {
		down = p.down
	}
	if refitRouter {
		if p.fitTop1, err = fitPlanRouter(p, f, down); err != nil {
			return 0, 0, err
		}
		if tiny.Experts > 0 {
			addTinyRows(p, f.h, f.N, f.D, k, tiny)
		}
	}
	mask := neuronMask(p, f, k)
	before = reconError(f, mask, down)
	best, bestRouter, bestDown := before, slices.Clone(p.router), down
	for it := 0; it < iters; it++ {
		if it > 0 {
			if _, err = fitPlanRouter(p, f, down); err != nil {
				return 0, 0, err
			}
			if tiny.Experts > 0 {
				addTinyRows(p, f.h, f.N, f.D, k, tiny)
			}
			mask = neuronMask(p, f, k)
		}
		if down, err = refitDown(f, mask, dense, ridge); err != nil {
			return 0, 0, err
		}
		if e := reconError(f, mask, down); e < best {
			best, bestRouter, bestDown = e, slices.Clone(p.router), down
		}
	}
	p.router, p.down = bestRouter, bestDown
	if bestDown != nil && &bestDown[0] == &dense[0] {
		p.down = nil
	}
	return before, best, nil
}

// RefitOptions configures the closed-form refinement after clustering.
type RefitOptions struct {
	// Iters is the number of down-projection refits per layer, each after
	// refitting the router onto the previous round's experts (the first
	// uses the initial router); 0 refits nothing.
	Iters int `json:"iters"`
	// Sequential fits layer l on the hidden states of the student whose
	// layers before l are already distilled, rather than the teacher's, so
	// that later layers see (and fit to) the inputs they will get.
	Sequential bool `json:"sequential"`
	// Target is what each layer's FFN output is fitted to.
	Target RefitTarget `json:"target"`
	// Ridge scales the penalty towards the teacher's down columns, relative
	// to the mean diagonal of the activations' Gram matrix; 0 means 1e-3.
	Ridge float64 `json:"ridge"`
}

func (o RefitOptions) enabled() bool { return o.Iters > 0 || o.Sequential }

func (o RefitOptions) ridge() float64 {
	if o.Ridge <= 0 {
		return 1e-3
	}
	return o.Ridge
}

// moeLayer returns the shared and routed experts of plan p cut from the
// dense FFN, with p's refitted down projections when it has them.
func moeLayer(dense *expert, p *layerPlan, D int) (shared, routed []expert) {
	down := dense.down
	if p.down != nil {
		down = p.down
	}
	cut := func(neurons []int) expert {
		g, u, d := slice(dense.gate, dense.up, down, D, dense.width, neurons)
		return expert{width: len(neurons), gate: g, up: u, down: d}
	}
	if len(p.shared) > 0 {
		shared = append(shared, cut(p.shared))
	}
	for _, g := range p.experts {
		routed = append(routed, cut(g))
	}
	for _, g := range p.tiny {
		e := cut(g)
		clear(e.down) // as build: a tiny expert starts at zero
		routed = append(routed, e)
	}
	return shared, routed
}

// refine refits every layer's routing and down projections in order
// (see RefitOptions), on the teacher's hidden states or, with
// o.Refit.Sequential, on the partly distilled student's.
func refine(tn *net, cal *calibration, seqs [][]int, plans []layerPlan, o Options, logf func(string, ...any)) error {
	ro := o.Refit
	ridge := ro.ridge()
	c := &tn.cfg
	D := c.Dim
	// sn starts as a copy of the teacher and becomes the student one layer
	// at a time; it shares the teacher's read-only weights.
	sn := *tn
	sn.layers = slices.Clone(tn.layers)
	route := &model.Router{Scoring: model.Softmax, TopK: o.TopK, NormTopK: true, ScalingFactor: float32(o.TopK)}
	// The student's residual stream entering the current layer, per
	// sequence, and where each sequence's rows start in the calibration
	// arrays.
	xs := make([][]float32, len(seqs))
	off := make([]int, len(seqs))
	for i, s := range seqs {
		if !ro.Sequential {
			break
		}
		if i > 0 {
			off[i] = off[i-1] + len(seqs[i-1])*D
		}
		xs[i] = make([]float32, len(s)*D)
		for t, id := range s {
			copy(xs[i][t*D:(t+1)*D], tn.embed[id*D:(id+1)*D])
		}
	}
	for l := range plans {
		p := &plans[l]
		dense := &tn.layers[l].shared[0]
		f := &layerFit{N: cal.N, D: D, W: dense.width}
		var xMid []float32
		if ro.Sequential {
			// The student's layer l is still dense: its attention half gives
			// the FFN inputs the distilled layer will see.
			hs := make([][2][]float32, len(seqs))
			parallel(len(seqs), o.Threads, func(_, i int) {
				var lc layerCache
				sn.layerForward(l, xs[i], &lc, len(seqs[i]))
				hs[i] = [2][]float32{lc.h, lc.xMid}
			})
			f.h = make([]float32, 0, cal.N*D)
			xMid = make([]float32, 0, cal.N*D)
			for _, v := range hs {
				f.h = append(f.h, v[0]...)
				xMid = append(xMid, v[1]...)
			}
			f.acts = denseActs(dense, f.h, f.N, D)
		} else {
			f.h, f.acts = cal.h[l], cal.acts[l]
		}
		if ro.Target == RefitResidual && xMid != nil {
			f.target = make([]float32, cal.N*D)
			for i, v := range cal.x[l] {
				f.target[i] = v - xMid[i]
			}
		} else {
			f.target = matmul(f.acts, dense.down, f.N, dense.width, D)
		}
		if o.TopK < o.Experts || o.Tiny.Experts > 0 {
			before, after, err := refineLayer(p, f, dense.down, o.TopK, ro.Iters, ridge, ro.Sequential, o.Tiny)
			if err != nil {
				return fmt.Errorf("layer %d: %w", l, err)
			}
			scaleRouter(p.router, f.h, f.N, D)
			ms := meanSquare(f.target, f.N)
			p.refit = &[2]float64{before / ms, after / ms}
			logf("layer %d: refit FFN error %.4g -> %.4g (target mean square %.4g), router top-1 fit %.3f",
				l, before, after, ms, p.fitTop1)
			if len(p.tiny) > 0 {
				logf("layer %d: tiny experts' threshold τ %.4f", l, p.tinyTau)
			}
		}
		if !ro.Sequential {
			continue
		}
		ly := &sn.layers[l]
		ly.shared, ly.experts = moeLayer(dense, p, D)
		ly.router, ly.route = p.router, route
		parallel(len(seqs), o.Threads, func(_, i int) {
			T, at := len(seqs[i]), off[i]
			lc := layerCache{h: f.h[at : at+T*D]}
			out := sn.ffn(ly, &lc, T)
			x := make([]float32, T*D)
			for j := range x {
				x[j] = xMid[at+j] + out[j]
			}
			xs[i] = x
		})
	}
	return nil
}

func meanSquare(x []float32, N int) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s / float64(N)
}
