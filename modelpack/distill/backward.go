package distill

import (
	"math"
	"slices"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
)

// grads holds the gradients of the trainable parameters: every router and,
// when experts are trained, every expert's matrices and, when everything is
// trained, the attention, norms, embeddings and head too.
type grads struct {
	router  [][]float32    // per layer, like layer.router
	experts [][]expertGrad // per layer and routed expert; nil when frozen
	shared  [][]expertGrad // per layer and shared expert; nil when frozen
	// The rest is nil unless everything is trained. output is nil when the
	// head is tied to the embeddings: its gradient goes to embed.
	layers                   []layerGrad
	finalNorm, embed, output []float32
}

// expertGrad is an expert's gradients; a later block's has norm too.
type expertGrad struct {
	gate, up, down, norm []float32
	more                 []expertGrad
}

// flat lists the gradients in expertParams' order.
func (g *expertGrad) flat() [][]float32 {
	out := [][]float32{g.gate, g.up, g.down}
	for i := range g.more {
		m := &g.more[i]
		out = append(out, m.norm, m.gate, m.up, m.down)
	}
	return out
}

// expertParams lists e's parameters: the first block's gate, up and down,
// then each later block's norm, gate, up and down.
func expertParams(e *expert) [][]float32 {
	out := [][]float32{e.gate, e.up, e.down}
	for i := range e.more {
		m := &e.more[i]
		out = append(out, m.norm, m.gate, m.up, m.down)
	}
	return out
}

// layerGrad is the gradient of a layer's attention and norms; the biases
// are nil without attention biases.
type layerGrad struct{ attnNorm, ffnNorm, wq, wk, wv, wo, bq, bk, bv []float32 }

// trainScope says which parameters are trained besides the routers.
type trainScope struct{ experts, all bool }

func newGrads(n *net, sc trainScope) *grads {
	g := &grads{router: make([][]float32, len(n.layers))}
	experts := sc.experts || sc.all
	if experts {
		g.experts = make([][]expertGrad, len(n.layers))
		g.shared = make([][]expertGrad, len(n.layers))
	}
	for l, ly := range n.layers {
		g.router[l] = make([]float32, len(ly.router))
		if sc.all {
			g.layers = append(g.layers, layerGrad{})
			lg := &g.layers[l]
			for i, p := range n.layerParams(l) {
				*lg.slot(i) = make([]float32, len(p))
			}
		}
		if !experts {
			continue
		}
		for _, e := range ly.experts {
			g.experts[l] = append(g.experts[l], newExpertGrad(e))
		}
		for _, e := range ly.shared {
			g.shared[l] = append(g.shared[l], newExpertGrad(e))
		}
	}
	if sc.all {
		g.finalNorm, g.embed = make([]float32, len(n.finalNorm)), make([]float32, len(n.embed))
		if !n.cfg.TiedOutput {
			g.output = make([]float32, len(n.output))
		}
	}
	return g
}

// layerParams lists layer l's attention and norm weights in the order of
// layerGrad.slot.
func (n *net) layerParams(l int) [][]float32 {
	ly := &n.layers[l]
	p := [][]float32{ly.attnNorm, ly.ffnNorm, ly.wq, ly.wk, ly.wv, ly.wo}
	if ly.bq != nil {
		p = append(p, ly.bq, ly.bk, ly.bv)
	}
	return p
}

func (lg *layerGrad) slot(i int) *[]float32 {
	return [...]*[]float32{&lg.attnNorm, &lg.ffnNorm, &lg.wq, &lg.wk, &lg.wv, &lg.wo, &lg.bq, &lg.bk, &lg.bv}[i]
}

func (lg *layerGrad) flat() [][]float32 {
	out := [][]float32{lg.attnNorm, lg.ffnNorm, lg.wq, lg.wk, lg.wv, lg.wo}
	if lg.bq != nil {
		out = append(out, lg.bq, lg.bk, lg.bv)
	}
	return out
}

func newExpertGrad(e expert) expertGrad {
	g := expertGrad{gate: make([]float32, len(e.gate)), up: make([]float32, len(e.up)), down: make([]float32, len(e.down))}
	if e.norm != nil {
		g.norm = make([]float32, len(e.norm))
	}
	for _, m := range e.more {
		g.more = append(g.more, newExpertGrad(m))
	}
	return g
}

// flat lists the gradient slices in the order params lists the parameters:
// per layer the router and the experts' matrices, then (when everything is
// trained) per layer the attention and norms, the final norm, the
// embeddings and an untied head.
func (g *grads) flat() [][]float32 {
	var out [][]float32
	for l := range g.router {
		out = append(out, g.router[l])
		if g.experts == nil {
			continue
		}
		for _, e := range g.experts[l] {
			out = append(out, e.flat()...)
		}
		for _, e := range g.shared[l] {
			out = append(out, e.flat()...)
		}
	}
	if g.layers == nil {
		return out
	}
	for l := range g.layers {
		out = append(out, g.layers[l].flat()...)
	}
	out = append(out, g.finalNorm, g.embed)
	if g.output != nil {
		out = append(out, g.output)
	}
	return out
}

// params lists the trainable parameter slices of n, matching grads.flat.
func (n *net) params(sc trainScope) [][]float32 {
	var out [][]float32
	for _, ly := range n.layers {
		out = append(out, ly.router)
		if !sc.experts && !sc.all {
			continue
		}
		for i := range ly.experts {
			out = append(out, expertParams(&ly.experts[i])...)
		}
		for i := range ly.shared {
			out = append(out, expertParams(&ly.shared[i])...)
		}
	}
	if !sc.all {
		return out
	}
	for l := range n.layers {
		out = append(out, n.layerParams(l)...)
	}
	out = append(out, n.finalNorm, n.embed)
	if !n.cfg.TiedOutput {
		out = append(out, n.output)
	}
	return out
}

func (g *grads) zero() {
	for _, s := range g.flat() {
		clear(s)
	}
}

// lossWeights are the coefficients of the training loss
// L = lm·L_LM + kl·KL(p_teacher‖p_student) + am·L_argmax + lb·E·Σ f_i·P_i +
// z·mean(lse²) + ec·L_ec, where L_argmax is the cross-entropy of the
// teacher's most likely next token and L_ec the token-choice auxiliary
// loss of the expert-choice layers (ecAuxBack).
//
// cc weighs the compute-aware router loss (computeBack).
type lossWeights struct{ lm, kl, am, lb, z, ec, cc float32 }

// lossParts is the unscaled sum of each loss term over the positions or
// (layer, sequence) pairs it is averaged over.
// routed is not a loss: the mean neurons of the selected routed experts
// per token, summed over layers (what the compute loss trades off).
// real is, per layer, the mean number of real (not tiny) experts per
// token.
type lossParts struct {
	lm, kl, am, lb, z, ec, cc, routed float64
	real                              []float64
}

// outputLoss computes the LM, KL and teacher-argmax terms at every position
// but the last (which has no next token) and returns dL/dlogits scaled by
// scale. The KL and argmax terms need the teacher's logits; without them
// they are left out.
func outputLoss(student, teacher []float32, ids []int, V int, w lossWeights, scale float32) ([]float32, lossParts) {
	T := len(ids)
	d := make([]float32, T*V)
	var lp lossParts
	ps, pt := make([]float64, V), make([]float64, V)
	for t := 0; t+1 < T; t++ {
		ls := logSoftmax(ps, student[t*V:(t+1)*V])
		y := ids[t+1]
		lp.lm -= ls[y]
		row := d[t*V : (t+1)*V]
		coef := w.lm // of the student's probabilities in the gradient
		if teacher != nil && w.kl != 0 {
			lt := logSoftmax(pt, teacher[t*V:(t+1)*V])
			for i := range lt {
				p := math.Exp(lt[i])
				lp.kl += p * (lt[i] - ls[i])
				row[i] -= w.kl * float32(p) * scale
			}
			coef += w.kl
		}
		if teacher != nil && w.am != 0 {
			a := argmax(teacher[t*V : (t+1)*V])
			lp.am -= ls[a]
			row[a] -= w.am * scale
			coef += w.am
		}
		for i := range ls {
			row[i] += coef * float32(math.Exp(ls[i])) * scale
		}
		row[y] -= w.lm * scale
	}
	return d, lp
}

// logSoftmax writes log softmax(x) to dst in float64.
func logSoftmax(dst []float64, x []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	lse := m + math.Log(s)
	for i, v := range x {
		dst[i] = float64(v) - lse
	}
	return dst
}

// backward propagates dlogits through the network recorded in tr and adds
// the parameter gradients to g. The router auxiliary losses of each layer
// are added with weight w.lb·auxScale, w.z·auxScale and w.ec·auxScale;
// their unscaled values are returned.
func (n *net) backward(tr *trace, dlogits []float32, g *grads, w lossWeights, auxScale float32) lossParts {
	c := &n.cfg
	D, T, QD, KD := c.Dim, tr.T, c.QDim(), c.KVDim()
	var aux lossParts
	all := g.layers != nil
	// dw returns the gradient slot of a weight, or nil when it is frozen.
	dw := func(s []float32) []float32 {
		if all {
			return s
		}
		return nil
	}
	dfin := make([]float32, T*D)
	head := g.output
	if c.TiedOutput {
		head = g.embed
	}
	matmulBack(dfin, dw(head), tr.fin, n.output, dlogits, T, D, c.Vocab)
	dx := rmsBack(tr.xOut, n.finalNorm, tr.rmsF, dfin, dw(g.finalNorm), T, D)
	for l := len(n.layers) - 1; l >= 0; l-- {
		ly, lc := &n.layers[l], &tr.layers[l]
		var lg layerGrad
		if all {
			lg = g.layers[l]
		}
		dh := make([]float32, T*D)
		a := n.ffnBack(l, ly, lc, dx, dh, g, w, auxScale, T)
		aux.lb += a.lb
		aux.z += a.z
		aux.ec += a.ec
		aux.cc += a.cc
		aux.routed += a.routed
		if aux.real == nil {
			aux.real = make([]float64, len(n.layers))
		}
		if len(a.real) > 0 {
			aux.real[l] = a.real[0]
		}
		dxMid := rmsBack(lc.xMid, ly.ffnNorm, lc.rms2, dh, lg.ffnNorm, T, D)
		for i := range dxMid {
			dxMid[i] += dx[i]
		}
		dao := make([]float32, T*QD)
		matmulBack(dao, lg.wo, lc.ao, ly.wo, dxMid, T, QD, D)
		dq, dk, dv := n.attentionBack(lc, dao, T)
		n.rope(dq, T, QD, true)
		n.rope(dk, T, KD, true)
		if lg.bq != nil {
			biasBack(lg.bq, dq, T)
			biasBack(lg.bk, dk, T)
			biasBack(lg.bv, dv, T)
		}
		dxn := make([]float32, T*D)
		matmulBack(dxn, lg.wq, lc.xn, ly.wq, dq, T, D, QD)
		matmulBack(dxn, lg.wk, lc.xn, ly.wk, dk, T, D, KD)
		matmulBack(dxn, lg.wv, lc.xn, ly.wv, dv, T, D, KD)
		dx = rmsBack(lc.xIn, ly.attnNorm, lc.rms1, dxn, lg.attnNorm, T, D)
		for i := range dx {
			dx[i] += dxMid[i]
		}
	}
	if all {
		for t, id := range tr.ids {
			axpy(g.embed[id*D:(id+1)*D], 1, dx[t*D:(t+1)*D])
		}
	}
	return aux
}

// biasBack adds the column sums of dy [T, len(db)] to db.
func biasBack(db, dy []float32, T int) {
	for t := 0; t < T; t++ {
		axpy(db, 1, dy[t*len(db):(t+1)*len(db)])
	}
}

// ffnBack adds to dh the gradient of the layer's FFN output (dout) with
// respect to its input, and the router and expert gradients to g.
func (n *net) ffnBack(l int, ly *layer, lc *layerCache, dout, dh []float32, g *grads, w lossWeights, auxScale float32, T int) lossParts {
	D := n.cfg.Dim
	var gs []expertGrad
	if g.shared != nil {
		gs = g.shared[l]
	}
	for s := range ly.shared {
		var eg *expertGrad
		if gs != nil {
			eg = &gs[s]
		}
		rows, ones := make([]int, T), make([]float32, T)
		for t := range rows {
			rows[t], ones[t] = t, 1
		}
		expertBack(&ly.shared[s], &lc.sharedAct[s], eg, rows, ones, dout, lc.h, dh, D, n.cfg.NormEps)
	}
	if ly.route == nil {
		return lossParts{}
	}
	E := len(ly.experts)
	k := float32(ly.route.TopK)
	scale := ly.route.Scale()
	dl := make([]float32, T*E)
	var ds []float32 // dense-router surrogate terms: they train the router, not its input
	if n.allRows {
		ds = make([]float32, T*E)
	}
	counts := make([]float64, E)
	rows := make([][]int, E)        // tokens routed to each expert
	weights := make([][]float32, E) // and their weights
	for t := 0; t < T; t++ {
		var gw [64]float32 // dL/d(weight) of each choice; top_k is small
		gws := gw[:0]
		if len(lc.choices[t]) > len(gw) {
			gws = make([]float32, 0, len(lc.choices[t]))
		}
		var mean float32
		for _, ch := range lc.choices[t] {
			e := ch.Expert
			counts[e]++
			do := dout[t*D : (t+1)*D]
			gv := dot(do, lc.expertAct[e].y[t*D:(t+1)*D])
			gws = append(gws, gv)
			mean += gv * ch.Weight
			rows[e] = append(rows[e], t)
			weights[e] = append(weights[e], ch.Weight)
		}
		// weight_i = scale·softmax over the selected logits, so
		// d weight_i / d logit_j = weight_i·(δij − weight_j/scale).
		mean /= scale
		if !ly.route.NormTopK {
			panic("distill: backward assumes norm_topk_prob routing")
		}
		for i, ch := range lc.choices[t] {
			dl[t*E+ch.Expert] += ch.Weight * (gws[i] - mean)
		}
		if ds != nil {
			n.unselectedBack(lc, dout[t*D:(t+1)*D], ds[t*E:(t+1)*E], t, scale, mean)
		}
	}
	for e := range ly.experts {
		var eg *expertGrad
		if g.experts != nil {
			eg = &g.experts[l][e]
		}
		expertBack(&ly.experts[e], &lc.expertAct[e], eg, rows[e], weights[e], dout, lc.h, dh, D, n.cfg.NormEps)
	}
	aux := lossParts{routed: routedNeurons(ly, lc.choices), real: []float64{realExperts(ly, lc.choices)}}
	if w.cc != 0 {
		scores, _, tau := auxScores(ly, lc, T, E)
		costs := make([]float64, E)
		for e := range ly.experts {
			costs[e] = float64(ly.experts[e].neurons())
		}
		aux.cc = computeBack(scores, costs, dl, T, E, tau, w.cc*auxScale)
	}
	if w.lb != 0 || w.z != 0 {
		// The auxiliary losses see the logits times tau (layer.auxTau):
		// selection depends only on their order, and the fitted routers'
		// logits are so small that at scale 1 every score is 1/E, the
		// load-balancing loss is 1 and the z-loss ln(E)² whatever the
		// routing.
		scores, logits, tau := auxScores(ly, lc, T, E)
		// P_i is the mean softmax probability, f_i the share of the T·k
		// assignments: uniform routing gives E·Σ f_i·P_i = 1.
		P := make([]float64, E)
		for t := 0; t < T; t++ {
			for e := 0; e < E; e++ {
				P[e] += float64(scores[t*E+e]) / float64(T)
			}
		}
		cf := make([]float32, E)
		for e := range counts {
			f := counts[e] / (float64(T) * float64(k))
			aux.lb += float64(E) * f * P[e]
			cf[e] = w.lb * auxScale * float32(float64(E)*f/float64(T))
		}
		for t := 0; t < T; t++ {
			p := scores[t*E : (t+1)*E]
			row := dl[t*E : (t+1)*E]
			lse := logSumExp(logits[t*E : (t+1)*E])
			aux.z += lse * lse / float64(T)
			zc := w.z * auxScale * float32(2*lse/float64(T))
			var s float32
			for e := range p {
				s += cf[e] * p[e]
			}
			for e := range p {
				row[e] += tau * (p[e]*(cf[e]-s) + zc*p[e])
			}
		}
	}
	if ly.expertChoice && w.ec != 0 {
		aux.ec = ecAuxBack(lc.choices, lc.logits, dl, T, E, ly.auxTau, w.ec*auxScale)
	}
	matmulBack(dh, g.router[l], lc.h, ly.router, dl, T, D, E)
	if ds != nil && g.router[l] != nil {
		weightGrad(g.router[l], lc.h, ds, T, D, E)
	}
	return aux
}

// unselectedBack adds to dl, token t's router logit gradients, the dense
// surrogate for the experts it did not select (TrainOptions.DenseRouter;
// the caller applies it to the router's weights only, since it is not the
// gradient of the loss):
// each gets w'·(g − mean), the formula of a selected expert, with w' the
// weight it would have had beside the selected ones (scale·s_e/Σ_top s) and
// g = dL/dw' = ⟨dout, its output⟩. An expert that would lower the loss more
// than the selected ones do on average is pushed up, one that would raise
// it is pushed down.
func (n *net) unselectedBack(lc *layerCache, do, dl []float32, t int, scale, mean float32) {
	E, D := len(dl), n.cfg.Dim
	s := lc.scores[t*E : (t+1)*E]
	choices := lc.choices[t]
	var top float32
	for _, ch := range choices {
		top += s[ch.Expert]
	}
	if top <= 0 {
		return
	}
	for e := range dl {
		if slices.ContainsFunc(choices, func(ch routing.Choice) bool { return ch.Expert == e }) {
			continue
		}
		w := scale * s[e] / top
		dl[e] += w * (dot(do, lc.expertAct[e].y[t*D:(t+1)*D]) - mean)
	}
}

func logSumExp(x []float32) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

// expertBack backpropagates weight_r·expert(h_t) for the tokens t = rows[r]
// given dout, adding to dh and, when eg is not nil, to the expert's
// gradients. The rows are gathered so that the products run as small
// matrix products.
//
// A deeper expert's output is s_d − h with s_0 = h and s_b = s_{b−1} +
// B_b(n_b(s_{b−1})) (n_1 the identity), so with G = dL/d(output) the
// gradient of s_d is G, each block adds its input gradient on the way
// down, and dh gains dL/ds_0 − G.
func expertBack(e *expert, a *ffnAct, eg *expertGrad, rows []int, weights []float32, dout, h, dh []float32, D int, eps float32) {
	n := len(rows)
	if n == 0 {
		return
	}
	gather := func(x []float32, w int) []float32 {
		out := make([]float32, n*w)
		for r, t := range rows {
			copy(out[r*w:(r+1)*w], x[t*w:(t+1)*w])
		}
		return out
	}
	dy := make([]float32, n*D)
	for r, t := range rows {
		w := weights[r]
		for i, v := range dout[t*D : (t+1)*D] {
			dy[r*D+i] = w * v
		}
	}
	if len(e.more) == 0 {
		dhs := blockBack(e, a, eg, rows, dy, gather(h, D), D)
		for r, t := range rows {
			axpy(dh[t*D:(t+1)*D], 1, dhs[r*D:(r+1)*D])
		}
		return
	}
	gs := slices.Clone(dy)
	for b := len(e.more) - 1; b >= 0; b-- {
		bl, ba := &e.more[b], &a.more[b]
		var bg *expertGrad
		var dNorm []float32
		if eg != nil {
			bg = &eg.more[b]
			dNorm = bg.norm
		}
		dxn := blockBack(bl, &ba.act, bg, rows, gs, gather(ba.xn, D), D)
		inv := make([]float32, n)
		for r, t := range rows {
			inv[r] = ba.inv[t]
		}
		din := rmsBack(gather(ba.in, D), bl.norm, inv, dxn, dNorm, n, D)
		for i, v := range din {
			gs[i] += v
		}
	}
	dxs := blockBack(e, a, eg, rows, gs, gather(h, D), D)
	for r, t := range rows {
		o := dh[t*D : (t+1)*D]
		for i := range o {
			o[i] += gs[r*D+i] + dxs[r*D+i] - dy[r*D+i]
		}
	}
}

// blockBack backpropagates one gated block whose output gradient, gathered
// for the tokens rows, is dy [n, dim] and whose gathered inputs are xs,
// adding to the block's gradients in eg when not nil, and returns the
// gradient of xs.
func blockBack(e *expert, a *ffnAct, eg *expertGrad, rows []int, dy, xs []float32, D int) []float32 {
	W, n := e.width, len(rows)
	as := make([]float32, n*W)
	for r, t := range rows {
		copy(as[r*W:(r+1)*W], a.a[t*W:(t+1)*W])
	}
	var dDown, dGate, dUp []float32
	if eg != nil {
		dDown, dGate, dUp = eg.down, eg.gate, eg.up
	}
	da := make([]float32, n*W)
	matmulBack(da, dDown, as, e.down, dy, n, W, D)
	dg, du := da, make([]float32, n*W) // dg overwrites da in place
	silu := e.act == "" || e.act == model.ActSiLU
	for r, t := range rows {
		gr, ur, sr := a.g[t*W:(t+1)*W], a.u[t*W:(t+1)*W], a.s[t*W:(t+1)*W]
		for j := 0; j < W; j++ {
			s, d := sr[j], da[r*W+j]
			if silu {
				du[r*W+j] = d * gr[j] * s
				dg[r*W+j] = d * ur[j] * s * (1 + gr[j]*(1-s))
				continue
			}
			f, _ := actF(e.act, gr[j])
			du[r*W+j] = d * f
			dg[r*W+j] = d * ur[j] * s // s holds act'(g)
		}
	}
	dxs := make([]float32, n*D)
	matmulBack(dxs, dGate, xs, e.gate, dg, n, D, W)
	matmulBack(dxs, dUp, xs, e.up, du, n, D, W)
	return dxs
}

// attentionBack returns the gradients of the rotated q and k and of v given
// the gradient of the attention output.
func (n *net) attentionBack(lc *layerCache, dao []float32, T int) (dq, dk, dv []float32) {
	c := &n.cfg
	H, hd, QD, KD := c.Heads, c.HeadDim, c.QDim(), c.KVDim()
	group := H / c.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	dq = make([]float32, T*QD)
	// As in the forward pass, keys, values and their gradients are
	// transposed to [kv dim, T].
	kt, vt := transpose(lc.k, T, KD), transpose(lc.v, T, KD)
	dkt, dvt := make([]float32, KD*T), make([]float32, KD*T)
	dp := make([]float32, T)
	for h := 0; h < H; h++ {
		kh := h / group
		for t := 0; t < T; t++ {
			p := lc.probs[(h*T+t)*T : (h*T+t)*T+t+1]
			do := dao[t*QD+h*hd : t*QD+(h+1)*hd]
			dps := dp[:t+1]
			clear(dps)
			// Rows of head dimension d in the transposed layouts.
			row := func(m []float32, d int) []float32 { return m[(kh*hd+d)*T : (kh*hd+d)*T+t+1] }
			d := 0
			for ; d+4 <= hd; d += 4 {
				axpy4(dps, do[d], do[d+1], do[d+2], do[d+3], row(vt, d), row(vt, d+1), row(vt, d+2), row(vt, d+3))
				axpy4To(row(dvt, d), row(dvt, d+1), row(dvt, d+2), row(dvt, d+3), do[d], do[d+1], do[d+2], do[d+3], p)
			}
			for ; d < hd; d++ {
				axpy(dps, do[d], row(vt, d))
				axpy(row(dvt, d), do[d], p)
			}
			sum := dot(p, dps)
			for s, x := range p {
				dps[s] = x * (dps[s] - sum) * scale
			}
			qt := lc.q[t*QD+h*hd : t*QD+(h+1)*hd]
			dqt := dq[t*QD+h*hd : t*QD+(h+1)*hd]
			d = 0
			for ; d+4 <= hd; d += 4 {
				dqt[d], dqt[d+1], dqt[d+2], dqt[d+3] = dot4(dps, row(kt, d), row(kt, d+1), row(kt, d+2), row(kt, d+3))
				axpy4To(row(dkt, d), row(dkt, d+1), row(dkt, d+2), row(dkt, d+3), qt[d], qt[d+1], qt[d+2], qt[d+3], dps)
			}
			for ; d < hd; d++ {
				dqt[d] = dot(dps, row(kt, d))
				axpy(row(dkt, d), qt[d], dps)
			}
		}
	}
	return dq, transpose(dkt, KD, T), transpose(dvt, KD, T)
}

// rmsBack returns dx for y = w·x·r, r = 1/sqrt(mean(x²)+eps), given dy and
// the forward's r per row, adding the gradient of w to dw unless it is nil.
func rmsBack(x, w, inv, dy, dw []float32, T, D int) []float32 {
	dx := make([]float32, T*D)
	for t := 0; t < T; t++ {
		xr, dyr, dxr := x[t*D:(t+1)*D], dy[t*D:(t+1)*D], dx[t*D:(t+1)*D]
		r := inv[t]
		if dw != nil {
			for i, v := range xr {
				dw[i] += dyr[i] * v * r
			}
		}
		var s float32
		for i := range xr {
			s += w[i] * dyr[i] * xr[i]
		}
		c := r * r * r * s / float32(D)
		for i := range xr {
			dxr[i] = r*w[i]*dyr[i] - c*xr[i]
		}
	}
	return dx
}
