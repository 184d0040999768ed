package distill

import (
	"fmt"
	"math"
	"slices"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
)

// expert is one gated block: gate and up are [width, dim], down is
// [dim, width], all row-major float32, with act its activation ("" is
// silu). A deeper expert (model.ExpertArch) has more blocks, each with the
// RMSNorm weight norm [dim] of its input: block b runs on norm(h + the
// outputs of blocks before it) and the expert's output is the sum of its
// blocks' outputs.
type expert struct {
	width          int
	gate, up, down []float32
	act            model.Activation
	norm           []float32 // a later block's; nil for a first block
	more           []expert  // later blocks
}

// layer holds one decoder layer's weights in float32.
type layer struct {
	attnNorm, ffnNorm []float32
	wq, wk, wv, wo    []float32
	bq, bk, bv        []float32 // nil without attention biases
	shared, experts   []expert
	router            []float32 // [len(experts), dim]; nil for a dense layer
	route             *model.Router
	// auxTau scales the router logits the load-balancing and z-losses see
	// during training (TrainOptions.AuxLogitScale); 0 is 1.
	auxTau float32
	// expertChoice routes the layer by expert choice (each expert takes
	// its top-C tokens of the sequence) while it is set; training sets it
	// for TrainOptions.ExpertChoiceLayers, inference never does.
	expertChoice bool
	// tiny is how many of experts, at the end, are tiny (TinyOptions),
	// and tinyTau their threshold: each tiny router row is tinyTau times
	// the sum of the real rows.
	tiny    int
	tinyTau float32
}

// net is a model decoded to float32 for the distiller's own forward and
// backward passes. It runs whole sequences without a KV cache, which is
// what calibration, evaluation and training need.
type net struct {
	cfg                      model.Config
	embed, finalNorm, output []float32 // output aliases embed when tied
	layers                   []layer
	invFreq                  []float32
	attnFactor               float32
	// allRows runs every routed expert on every token, selected or not, so
	// that the backward pass can give routers dense gradients
	// (TrainOptions.DenseRouter). The output still sums the selected ones;
	// an expert's y holds the skipped tokens' outputs too, its other
	// activations only the selected tokens'.
	allRows bool
}

// isRouter reports whether the parameter slice p is one of the layers'
// routers (the same backing array, as params returns them).
func (n *net) isRouter(p []float32) bool {
	for _, ly := range n.layers {
		if len(p) > 0 && len(ly.router) > 0 && &p[0] == &ly.router[0] {
			return true
		}
	}
	return false
}

// newNet decodes m. It rejects the features the backward pass does not
// implement rather than silently computing something else.
func newNet(m *model.Model) (*net, error) {
	c := m.Config
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.EmbedScale != 0 || c.AttnScale != 0 || c.ResidualScale != 0 || c.LogitScale != 0 {
		return nil, fmt.Errorf("Granite's multipliers (embedding %v, attention %v, residual %v, logits %v) are not supported by the distiller",
			c.EmbedScale, c.AttnScale, c.ResidualScale, c.LogitScale)
	}
	if c.MLA != nil {
		return nil, fmt.Errorf("multi-head latent attention (DeepSeek) is not supported by the distiller")
	}
	if c.QKNorm != model.QKNormNone {
		return nil, fmt.Errorf("qk_norm %q is not supported by the distiller", c.QKNorm)
	}
	get := func(name string) ([]float32, error) {
		t, ok := m.Weights[name]
		if !ok || t == nil {
			return nil, fmt.Errorf("missing tensor %s", name)
		}
		v, err := t.Float32s()
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		return v, nil
	}
	n := &net{cfg: c}
	var err error
	if n.embed, err = get(model.NameEmbed); err != nil {
		return nil, err
	}
	if n.finalNorm, err = get(model.NameFinalNorm); err != nil {
		return nil, err
	}
	n.output = n.embed
	if !c.TiedOutput {
		if n.output, err = get(model.NameOutput); err != nil {
			return nil, err
		}
	}
	n.invFreq, n.attnFactor = c.RopeFreqs()
	expertOf := func(name func(string) string, width int) (expert, error) {
		e := expert{width: width}
		var err error
		if e.gate, err = get(name("gate")); err != nil {
			return e, err
		}
		if e.up, err = get(name("up")); err != nil {
			return e, err
		}
		e.down, err = get(name("down"))
		return e, err
	}
	for l := 0; l < c.Layers; l++ {
		f := &c.FFN[l]
		if f.SharedGate {
			return nil, fmt.Errorf("layer %d: gated shared experts are not supported by the distiller", l)
		}
		var ly layer
		for _, p := range []struct {
			dst  *[]float32
			name string
		}{{&ly.attnNorm, "attn_norm"}, {&ly.ffnNorm, "ffn_norm"}, {&ly.wq, "wq"}, {&ly.wk, "wk"}, {&ly.wv, "wv"}, {&ly.wo, "wo"}} {
			if *p.dst, err = get(model.LayerName(l, p.name)); err != nil {
				return nil, err
			}
		}
		if c.AttnBias {
			for _, p := range []struct {
				dst  *[]float32
				name string
			}{{&ly.bq, "bq"}, {&ly.bk, "bk"}, {&ly.bv, "bv"}} {
				if *p.dst, err = get(model.LayerName(l, p.name)); err != nil {
					return nil, err
				}
			}
		}
		for s, w := range f.SharedWidths {
			e, err := expertOf(func(p string) string { return model.SharedName(l, s, p) }, w)
			if err != nil {
				return nil, err
			}
			ly.shared = append(ly.shared, e)
		}
		if f.Sparse() {
			if f.Router.SelectionBias || f.Router.CapacityFactor > 0 {
				return nil, fmt.Errorf("layer %d: selection bias and capacity limits are not supported by the distiller", l)
			}
			r := *f.Router
			ly.route = &r
			if ly.router, err = get(model.LayerName(l, "router")); err != nil {
				return nil, err
			}
			for e, w := range f.ExpertWidths {
				ex, err := expertOf(func(p string) string { return model.ExpertName(l, e, p) }, w)
				if err != nil {
					return nil, err
				}
				arch := f.Arch(e)
				ex.act = arch.Act
				for b, bw := range arch.Extra {
					bl, err := expertOf(func(p string) string { return model.BlockName(l, e, b+1, p) }, bw)
					if err != nil {
						return nil, err
					}
					if bl.norm, err = get(model.BlockName(l, e, b+1, "norm")); err != nil {
						return nil, err
					}
					bl.act = arch.Act
					ex.more = append(ex.more, bl)
				}
				ly.experts = append(ly.experts, ex)
			}
		}
		n.layers = append(n.layers, ly)
	}
	return n, nil
}

// layerCache keeps what the backward pass of one layer needs.
type layerCache struct {
	xIn, xn, q, k, v, ao, xMid, h []float32 // [T, width] activations
	rms1, rms2                    []float32 // [T] inverse RMS of the norms' inputs
	probs                         []float32 // [heads, T, T] attention probabilities
	logits, scores                []float32 // [T, E] router logits and softmax
	choices                       [][]routing.Choice
	sharedAct                     []ffnAct
	expertAct                     []ffnAct // per routed expert, rows of tokens routed to it
}

// ffnAct is one expert's activations: g and u are [T, width] (rows of
// tokens that did not use the expert stay zero), s is sigmoid(g) for silu
// and act'(g) otherwise, a the neuron activations act(g)·u and y its
// output [T, dim] (a deeper expert's: the sum of its blocks'). more holds
// the later blocks' activations.
type ffnAct struct {
	g, u, s, a, y []float32
	more          []blockAct
}

// blockAct is a later block's: in = h + the earlier blocks' outputs, xn
// its norm with inverse RMS inv [T], act the block's own activations on xn.
type blockAct struct {
	in, xn, inv []float32
	act         ffnAct
}

// trace is a forward pass over one sequence: the logits and, when kept, the
// per-layer caches.
type trace struct {
	T      int
	ids    []int
	layers []layerCache
	xOut   []float32 // residual stream after the last layer
	rmsF   []float32
	fin    []float32 // final-normed rows
	logits []float32 // [T, vocab]
}

// forward runs ids through the network.
func (n *net) forward(ids []int) *trace {
	c := &n.cfg
	D, T := c.Dim, len(ids)
	tr := &trace{T: T, ids: ids, layers: make([]layerCache, len(n.layers))}
	x := make([]float32, T*D)
	for t, id := range ids {
		copy(x[t*D:(t+1)*D], n.embed[id*D:(id+1)*D])
	}
	for l := range n.layers {
		x = n.layerForward(l, x, &tr.layers[l], T)
	}
	tr.xOut = x
	tr.fin, tr.rmsF = rmsNorm(x, n.finalNorm, T, D, c.NormEps)
	tr.logits = matmul(tr.fin, n.output, T, D, c.Vocab)
	return tr
}

// layerForward runs decoder layer l on the residual rows x [T, dim],
// recording what the backward pass needs in lc, and returns the residual
// after the layer.
func (n *net) layerForward(l int, x []float32, lc *layerCache, T int) []float32 {
	c := &n.cfg
	D := c.Dim
	ly := &n.layers[l]
	lc.xIn = x
	lc.xn, lc.rms1 = rmsNorm(x, ly.attnNorm, T, D, c.NormEps)
	lc.q = matmul(lc.xn, ly.wq, T, D, c.QDim())
	lc.k = matmul(lc.xn, ly.wk, T, D, c.KVDim())
	lc.v = matmul(lc.xn, ly.wv, T, D, c.KVDim())
	addBias(lc.q, ly.bq)
	addBias(lc.k, ly.bk)
	addBias(lc.v, ly.bv)
	n.rope(lc.q, T, c.QDim(), false)
	n.rope(lc.k, T, c.KVDim(), false)
	lc.ao, lc.probs = n.attention(lc.q, lc.k, lc.v, T)
	o := matmul(lc.ao, ly.wo, T, c.QDim(), D)
	lc.xMid = make([]float32, T*D)
	for i := range o {
		lc.xMid[i] = x[i] + o[i]
	}
	lc.h, lc.rms2 = rmsNorm(lc.xMid, ly.ffnNorm, T, D, c.NormEps)
	out := n.ffn(ly, lc, T)
	x = make([]float32, T*D)
	for i := range out {
		x[i] = lc.xMid[i] + out[i]
	}
	return x
}

// ffn applies one layer's shared and routed experts to the rows of lc.h.
func (n *net) ffn(ly *layer, lc *layerCache, T int) []float32 {
	D := n.cfg.Dim
	out := make([]float32, T*D)
	all := make([]bool, T)
	for t := range all {
		all[t] = true
	}
	for _, e := range ly.shared {
		a := runExpert(&e, lc.h, all, T, D, n.cfg.NormEps)
		lc.sharedAct = append(lc.sharedAct, a)
		for i, v := range a.y {
			out[i] += v
		}
	}
	if ly.route == nil {
		return out
	}
	E := len(ly.experts)
	lc.logits = matmul(lc.h, ly.router, T, D, E)
	lc.scores = make([]float32, T*E)
	lc.choices = make([][]routing.Choice, T)
	scratch := make([]float32, 2*E)
	used := make([][]bool, E)
	for e := range used {
		used[e] = make([]bool, T)
	}
	for t := 0; t < T; t++ {
		row := lc.logits[t*E : (t+1)*E]
		routing.Softmax(lc.scores[t*E:(t+1)*E], row)
		if !ly.expertChoice {
			lc.choices[t] = routing.Select(nil, row, nil, ly.route, scratch)
		}
	}
	if ly.expertChoice {
		lc.choices = expertChoice(lc.logits, lc.scores, T, E, ecCapacity(T, ly.route.TopK, E), ly.route.Scale())
	}
	for t := 0; t < T; t++ {
		for _, ch := range lc.choices[t] {
			used[ch.Expert][t] = true
		}
	}

	lc.expertAct = make([]ffnAct, E)
	for e := range ly.experts {
		lc.expertAct[e] = runExpert(&ly.experts[e], lc.h, used[e], T, D, n.cfg.NormEps)
		if n.allRows {
			// The skipped rows run separately so that the selected rows'
			// products, and so the output, are bit for bit the same.
			skipped := make([]bool, T)
			for t, u := range used[e] {
				skipped[t] = !u
			}
			y := runExpert(&ly.experts[e], lc.h, skipped, T, D, n.cfg.NormEps).y
			for t, s := range skipped {
				if s {
					copy(lc.expertAct[e].y[t*D:(t+1)*D], y[t*D:(t+1)*D])
				}
			}
		}
	}
	for t := 0; t < T; t++ {
		o := out[t*D : (t+1)*D]
		for _, ch := range lc.choices[t] {
			axpy(o, ch.Weight, lc.expertAct[ch.Expert].y[t*D:(t+1)*D])
		}
	}
	return out
}

// runExpert computes the expert for the rows marked in rows: its first
// block on h, then each later block on the norm of h plus the sum so far.
func runExpert(e *expert, h []float32, rows []bool, T, D int, eps float32) ffnAct {
	a := runBlock(e, h, rows, T, D)
	if len(e.more) == 0 {
		return a
	}
	acc := slices.Clone(a.y)
	for b := range e.more {
		bl := &e.more[b]
		in := make([]float32, T*D)
		for i := range in {
			in[i] = h[i] + acc[i]
		}
		xn, inv := rmsNorm(in, bl.norm, T, D, eps)
		ba := runBlock(bl, xn, rows, T, D)
		for i, v := range ba.y {
			acc[i] += v
		}
		a.more = append(a.more, blockAct{in: in, xn: xn, inv: inv, act: ba})
	}
	a.y = acc
	return a
}

// actF returns a non-silu activation's value and derivative at x:
// GELU-tanh as x·sigmoid(2√(2/π)(x+0.044715x³)), ReLU² as max(x, 0)².
func actF(a model.Activation, x float32) (f, d float32) {
	switch a {
	case model.ActGELUTanh:
		const c = 1.5957691216057308
		z := c * (x + 0.044715*x*x*x)
		s := sigmoid(z)
		return x * s, s + x*s*(1-s)*c*(1+3*0.044715*x*x)
	case model.ActReLU2:
		r := max(x, 0)
		return r * r, 2 * r
	}
	s := sigmoid(x)
	return x * s, s * (1 + x*(1-s))
}

// runBlock computes one gated block for the rows marked in rows.
func runBlock(e *expert, h []float32, rows []bool, T, D int) ffnAct {
	W := e.width
	a := ffnAct{g: make([]float32, T*W), u: make([]float32, T*W), s: make([]float32, T*W), a: make([]float32, T*W), y: make([]float32, T*D)}
	// Gather the rows, run them as matrix products, scatter the results.
	var idx []int
	for t, r := range rows {
		if r {
			idx = append(idx, t)
		}
	}
	n := len(idx)
	if n == 0 {
		return a
	}
	hs := make([]float32, n*D)
	for r, t := range idx {
		copy(hs[r*D:(r+1)*D], h[t*D:(t+1)*D])
	}
	g := matmul(hs, e.gate, n, D, W)
	u := matmul(hs, e.up, n, D, W)
	act := make([]float32, n*W)
	for r, t := range idx {
		gr, ur, ar := g[r*W:(r+1)*W], u[r*W:(r+1)*W], act[r*W:(r+1)*W]
		s := a.s[t*W : (t+1)*W]
		if e.act == "" || e.act == model.ActSiLU {
			for j, x := range gr {
				s[j] = sigmoid(x)
				ar[j] = x * s[j] * ur[j]
			}
		} else {
			for j, x := range gr {
				f, d := actF(e.act, x)
				s[j] = d
				ar[j] = f * ur[j]
			}
		}
		copy(a.g[t*W:(t+1)*W], gr)
		copy(a.u[t*W:(t+1)*W], ur)
		copy(a.a[t*W:(t+1)*W], ar)
	}
	y := matmul(act, e.down, n, W, D)
	for r, t := range idx {
		copy(a.y[t*D:(t+1)*D], y[r*D:(r+1)*D])
	}
	return a
}

// attention is causal multi-head attention with grouped k/v heads; it
// returns the output rows and the probabilities [heads, T, T].
func (n *net) attention(q, k, v []float32, T int) (out, probs []float32) {
	c := &n.cfg
	H, hd, QD, KD := c.Heads, c.HeadDim, c.QDim(), c.KVDim()
	group := H / c.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	out = make([]float32, T*QD)
	probs = make([]float32, H*T*T)
	// Keys and values transposed to [kv dim, T]: a head's scores and
	// output are then long axpys and dots over positions.
	kt, vt := transpose(k, T, KD), transpose(v, T, KD)
	for h := 0; h < H; h++ {
		kh := h / group
		for t := 0; t < T; t++ {
			p := probs[(h*T+t)*T : (h*T+t)*T+t+1]
			qt := q[t*QD+h*hd : t*QD+(h+1)*hd]
			kr := func(d int) []float32 { return kt[(kh*hd+d)*T : (kh*hd+d)*T+t+1] }
			d := 0
			for ; d+4 <= hd; d += 4 {
				axpy4(p, qt[d]*scale, qt[d+1]*scale, qt[d+2]*scale, qt[d+3]*scale, kr(d), kr(d+1), kr(d+2), kr(d+3))
			}
			for ; d < hd; d++ {
				axpy(p, qt[d]*scale, kr(d))
			}
			m := p[0]
			for _, x := range p {
				m = max(m, x)
			}
			var sum float32
			for s, x := range p {
				e := expf(x - m)
				p[s] = e
				sum += e
			}
			inv := 1 / sum
			for s := range p {
				p[s] *= inv
			}
			o := out[t*QD+h*hd : t*QD+(h+1)*hd]
			vr := func(d int) []float32 { return vt[(kh*hd+d)*T : (kh*hd+d)*T+t+1] }
			d = 0
			for ; d+4 <= hd; d += 4 {
				o[d], o[d+1], o[d+2], o[d+3] = dot4(p, vr(d), vr(d+1), vr(d+2), vr(d+3))
			}
			for ; d < hd; d++ {
				o[d] = dot(p, vr(d))
			}
		}
	}
	return out, probs
}

// transpose returns the [cols, rows] transpose of x [rows, cols].
func transpose(x []float32, rows, cols int) []float32 {
	y := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		for c, v := range x[r*cols : (r+1)*cols] {
			y[c*rows+r] = v
		}
	}
	return y
}

// rope rotates each head of each row by its position; inverse applies the
// transpose, which is what the backward pass needs.
func (n *net) rope(x []float32, T, width int, inverse bool) {
	hd := n.cfg.HeadDim
	half := hd / 2
	inter := n.cfg.RopeStyle == model.RopeInterleaved
	for t := 0; t < T; t++ {
		row := x[t*width : (t+1)*width]
		for i := 0; i < half; i++ {
			ang := float64(t) * float64(n.invFreq[i])
			cs := float32(math.Cos(ang)) * n.attnFactor
			sn := float32(math.Sin(ang)) * n.attnFactor
			if inverse {
				sn = -sn
			}
			for h := 0; h+hd <= width; h += hd {
				a, b := h+i, h+i+half
				if inter {
					a, b = h+2*i, h+2*i+1
				}
				v0, v1 := row[a], row[b]
				row[a] = v0*cs - v1*sn
				row[b] = v0*sn + v1*cs
			}
		}
	}
}

func addBias(x, b []float32) {
	if b == nil {
		return
	}
	for o := 0; o < len(x); o += len(b) {
		for i, v := range b {
			x[o+i] += v
		}
	}
}

// rmsNorm returns w * x / rms(x) per row and the inverse RMS of each row.
func rmsNorm(x, w []float32, T, D int, eps float32) (out, inv []float32) {
	out = make([]float32, T*D)
	inv = make([]float32, T)
	for t := 0; t < T; t++ {
		row := x[t*D : (t+1)*D]
		var ss float32
		for _, v := range row {
			ss += v * v
		}
		r := float32(1 / math.Sqrt(float64(ss/float32(D)+eps)))
		inv[t] = r
		o := out[t*D : (t+1)*D]
		for i, v := range row {
			o[i] = w[i] * v * r
		}
	}
	return out, inv
}

func silu(x float32) float32 { return x * sigmoid(x) }

func sigmoid(x float32) float32 { return 1 / (1 + expf(-x)) }
