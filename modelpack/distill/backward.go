package distill

import (
	"math"
)

// grads holds the gradients of the trainable parameters: every router and,
// when experts are trained, every expert's matrices.
type grads struct {
	router  [][]float32    // per layer, like layer.router
	experts [][]expertGrad // per layer and routed expert; nil when frozen
	shared  [][]expertGrad // per layer and shared expert; nil when frozen
}

type expertGrad struct{ gate, up, down []float32 }

func newGrads(n *net, experts bool) *grads {
	g := &grads{router: make([][]float32, len(n.layers))}
	if experts {
		g.experts = make([][]expertGrad, len(n.layers))
		g.shared = make([][]expertGrad, len(n.layers))
	}
	for l, ly := range n.layers {
		g.router[l] = make([]float32, len(ly.router))
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
	return g
}

func newExpertGrad(e expert) expertGrad {
	return expertGrad{make([]float32, len(e.gate)), make([]float32, len(e.up)), make([]float32, len(e.down))}
}

// flat lists the gradient slices in the order params lists the parameters.
func (g *grads) flat() [][]float32 {
	var out [][]float32
	for l := range g.router {
		out = append(out, g.router[l])
		if g.experts == nil {
			continue
		}
		for _, e := range g.experts[l] {
			out = append(out, e.gate, e.up, e.down)
		}
		for _, e := range g.shared[l] {
			out = append(out, e.gate, e.up, e.down)
		}
	}
	return out
}

// params lists the trainable parameter slices of n, matching grads.flat.
func (n *net) params(experts bool) [][]float32 {
	var out [][]float32
	for _, ly := range n.layers {
		out = append(out, ly.router)
		if !experts {
			continue
		}
		for _, e := range ly.experts {
			out = append(out, e.gate, e.up, e.down)
		}
		for _, e := range ly.shared {
			out = append(out, e.gate, e.up, e.down)
		}
	}
	return out
}

func (g *grads) zero() {
	for _, s := range g.flat() {
		clear(s)
	}
}

// lossWeights are the coefficients of the training loss
// L = L_LM + kl·KL(p_teacher‖p_student) + lb·E·Σ f_i·P_i + z·mean(lse²).
type lossWeights struct{ kl, lb, z float32 }

// lossParts is the unscaled sum of each loss term over the positions or
// (layer, sequence) pairs it is averaged over.
type lossParts struct{ lm, kl, lb, z float64 }

// outputLoss computes the LM and KL terms at every position but the last
// (which has no next token) and returns dL/dlogits scaled by scale.
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
		if teacher != nil && w.kl != 0 {
			lt := logSoftmax(pt, teacher[t*V:(t+1)*V])
			for i := range lt {
				p := math.Exp(lt[i])
				lp.kl += p * (lt[i] - ls[i])
				row[i] -= w.kl * float32(p) * scale
			}
		}
		for i := range ls {
			row[i] += (1 + w.kl) * float32(math.Exp(ls[i])) * scale
		}
		row[y] -= scale
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
// are added with weight w.lb·auxScale and w.z·auxScale; their unscaled
// values are returned.
func (n *net) backward(tr *trace, dlogits []float32, g *grads, w lossWeights, auxScale float32) lossParts {
	c := &n.cfg
	D, T, QD, KD := c.Dim, tr.T, c.QDim(), c.KVDim()
	var aux lossParts
	dfin := make([]float32, T*D)
	matmulBack(dfin, nil, tr.fin, n.output, dlogits, T, D, c.Vocab)
	dx := rmsBack(tr.xOut, n.finalNorm, tr.rmsF, dfin, T, D)
	for l := len(n.layers) - 1; l >= 0; l-- {
		ly, lc := &n.layers[l], &tr.layers[l]
		dh := make([]float32, T*D)
		a := n.ffnBack(l, ly, lc, dx, dh, g, w, auxScale, T)
		aux.lb += a.lb
		aux.z += a.z
		dxMid := rmsBack(lc.xMid, ly.ffnNorm, lc.rms2, dh, T, D)
		for i := range dxMid {
			dxMid[i] += dx[i]
		}
		dao := make([]float32, T*QD)
		matmulBack(dao, nil, lc.ao, ly.wo, dxMid, T, QD, D)
		dq, dk, dv := n.attentionBack(lc, dao, T)
		n.rope(dq, T, QD, true)
		n.rope(dk, T, KD, true)
		dxn := make([]float32, T*D)
		matmulBack(dxn, nil, lc.xn, ly.wq, dq, T, D, QD)
		matmulBack(dxn, nil, lc.xn, ly.wk, dk, T, D, KD)
		matmulBack(dxn, nil, lc.xn, ly.wv, dv, T, D, KD)
		dx = rmsBack(lc.xIn, ly.attnNorm, lc.rms1, dxn, T, D)
		for i := range dx {
			dx[i] += dxMid[i]
		}
	}
	return aux
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
		for t := 0; t < T; t++ {
			expertBack(&ly.shared[s], &lc.sharedAct[s], eg, t, 1, dout[t*D:(t+1)*D], lc.h[t*D:(t+1)*D], dh[t*D:(t+1)*D], D)
		}
	}
	if ly.route == nil {
		return lossParts{}
	}
	E := len(ly.experts)
	k := float32(ly.route.TopK)
	scale := ly.route.Scale()
	dl := make([]float32, T*E)
	counts := make([]float64, E)
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
			var eg *expertGrad
			if g.experts != nil {
				eg = &g.experts[l][e]
			}
			expertBack(&ly.experts[e], &lc.expertAct[e], eg, t, ch.Weight, do, lc.h[t*D:(t+1)*D], dh[t*D:(t+1)*D], D)
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
	}
	var aux lossParts
	if w.lb != 0 || w.z != 0 {
		// P_i is the mean softmax probability, f_i the share of the T·k
		// assignments: uniform routing gives E·Σ f_i·P_i = 1.
		P := make([]float64, E)
		for t := 0; t < T; t++ {
			for e := 0; e < E; e++ {
				P[e] += float64(lc.scores[t*E+e]) / float64(T)
			}
		}
		cf := make([]float32, E)
		for e := range counts {
			f := counts[e] / (float64(T) * float64(k))
			aux.lb += float64(E) * f * P[e]
			cf[e] = w.lb * auxScale * float32(float64(E)*f/float64(T))
		}
		for t := 0; t < T; t++ {
			p := lc.scores[t*E : (t+1)*E]
			row := dl[t*E : (t+1)*E]
			lse := logSumExp(lc.logits[t*E : (t+1)*E])
			aux.z += lse * lse / float64(T)
			zc := w.z * auxScale * float32(2*lse/float64(T))
			var s float32
			for e := range p {
				s += cf[e] * p[e]
			}
			for e := range p {
				row[e] += p[e]*(cf[e]-s) + zc*p[e]
			}
		}
	}
	matmulBack(dh, g.router[l], lc.h, ly.router, dl, T, D, E)
	return aux
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

// expertBack backpropagates row t of weight·expert(h) given dout, adding to
// dh and, when eg is not nil, to the expert's gradients.
func expertBack(e *expert, a *ffnAct, eg *expertGrad, t int, weight float32, dout, h, dh []float32, D int) {
	W := e.width
	gr, ur := a.g[t*W:(t+1)*W], a.u[t*W:(t+1)*W]
	da := make([]float32, W)
	for i := 0; i < D; i++ {
		dy := weight * dout[i]
		if dy == 0 {
			continue
		}
		axpy(da, dy, e.down[i*W:(i+1)*W])
		if eg != nil {
			drow := eg.down[i*W : (i+1)*W]
			for j := range drow {
				drow[j] += dy * silu(gr[j]) * ur[j]
			}
		}
	}
	for j := 0; j < W; j++ {
		s := sigmoid(gr[j])
		du := da[j] * gr[j] * s
		dg := da[j] * ur[j] * s * (1 + gr[j]*(1-s))
		axpy(dh, dg, e.gate[j*D:(j+1)*D])
		axpy(dh, du, e.up[j*D:(j+1)*D])
		if eg != nil {
			axpy(eg.gate[j*D:(j+1)*D], dg, h)
			axpy(eg.up[j*D:(j+1)*D], du, h)
		}
	}
}

// attentionBack returns the gradients of the rotated q and k and of v given
// the gradient of the attention output.
func (n *net) attentionBack(lc *layerCache, dao []float32, T int) (dq, dk, dv []float32) {
	c := &n.cfg
	H, hd, QD, KD := c.Heads, c.HeadDim, c.QDim(), c.KVDim()
	group := H / c.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	dq, dk, dv = make([]float32, T*QD), make([]float32, T*KD), make([]float32, T*KD)
	dp := make([]float32, T)
	for h := 0; h < H; h++ {
		kh := h / group
		for t := 0; t < T; t++ {
			p := lc.probs[(h*T+t)*T : (h*T+t)*T+t+1]
			do := dao[t*QD+h*hd : t*QD+(h+1)*hd]
			var sum float32
			for s := range p {
				dp[s] = dot(do, lc.v[s*KD+kh*hd:s*KD+(kh+1)*hd])
				sum += p[s] * dp[s]
				axpy(dv[s*KD+kh*hd:s*KD+(kh+1)*hd], p[s], do)
			}
			qt := lc.q[t*QD+h*hd : t*QD+(h+1)*hd]
			dqt := dq[t*QD+h*hd : t*QD+(h+1)*hd]
			for s := range p {
				ds := p[s] * (dp[s] - sum) * scale
				if ds == 0 {
					continue
				}
				axpy(dqt, ds, lc.k[s*KD+kh*hd:s*KD+(kh+1)*hd])
				axpy(dk[s*KD+kh*hd:s*KD+(kh+1)*hd], ds, qt)
			}
		}
	}
	return dq, dk, dv
}

// rmsBack returns dx for y = w·x·r, r = 1/sqrt(mean(x²)+eps), given dy and
// the forward's r per row.
func rmsBack(x, w, inv, dy []float32, T, D int) []float32 {
	dx := make([]float32, T*D)
	for t := 0; t < T; t++ {
		xr, dyr, dxr := x[t*D:(t+1)*D], dy[t*D:(t+1)*D], dx[t*D:(t+1)*D]
		r := inv[t]
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
