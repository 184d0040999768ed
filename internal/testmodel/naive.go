package testmodel

import (
	"math"
	"sort"

	"github.com/moderuntime/mode/runtime/model"
)

// Logits runs the whole sequence through m in float64 with no KV cache, no
// batching and no grouping, following the HF reference implementations
// line by line, and returns the logits at every position. Capacity limits
// are not modelled: compare against single-token routing or batches whose
// capacity is not reached.
func Logits(m *model.Model, ids []int) [][]float64 {
	return logits(m, ids, func(int) int { return len(ids) })
}

// DecodeLogits is Logits for the sequence fed one token per forward call,
// as transformers' generate decodes: it differs from Logits only under
// dynamic NTK RoPE, whose frequencies follow each call's length.
func DecodeLogits(m *model.Model, ids []int) [][]float64 {
	return logits(m, ids, func(t int) int { return t + 1 })
}

// logits computes position t (its q, k and v) in a forward call that
// ends at callEnd(t).
func logits(m *model.Model, ids []int, callEnd func(t int) int) [][]float64 {
	c := &m.Config
	w := func(name string) []float64 {
		t := m.Weights[name]
		if t == nil {
			return nil
		}
		f, err := t.Float32s()
		if err != nil {
			panic(err)
		}
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return out
	}
	D, hd := c.Dim, c.HeadDim
	T := len(ids)
	emb := w(model.NameEmbed)
	x := make([][]float64, T)
	// Granite (transformers' modeling_granitemoe.py): embeddings ×
	// embedding_multiplier, scores × attention_multiplier instead of
	// ÷ √head_dim, block outputs × residual_multiplier, logits ÷
	// logits_scaling. 0 in the config means the usual value.
	mult := func(v float32) float64 {
		if v == 0 {
			return 1
		}
		return float64(v)
	}
	embMul, resMul := mult(c.EmbedScale), mult(c.ResidualScale)
	attnMul := 1 / math.Sqrt(float64(hd))
	if c.AttnScale != 0 {
		attnMul = float64(c.AttnScale)
	}
	for t, id := range ids {
		x[t] = append([]float64(nil), emb[id*D:(id+1)*D]...)
		for i := range x[t] {
			x[t][i] *= embMul
		}
	}
	for l := 0; l < c.Layers; l++ {
		n := func(s string) string { return model.LayerName(l, s) }
		h := rmsRows(x, w(n("attn_norm")), float64(c.NormEps))
		var att [][]float64
		if c.MLA != nil {
			att = mlaNaive(c, l, h, w, callEnd)
		} else {
			q := linear(h, w(n("wq")), w(n("bq")), c.QDim())
			k := linear(h, w(n("wk")), w(n("bk")), c.KVDim())
			v := linear(h, w(n("wv")), nil, c.KVDim())
			if b := w(n("bv")); b != nil {
				v = linear(h, w(n("wv")), b, c.KVDim())
			}
			if qn := w(n("q_norm")); qn != nil {
				q = rmsRows(q, qn, float64(c.NormEps))
				k = rmsRows(k, w(n("k_norm")), float64(c.NormEps))
			}
			for t := 0; t < T; t++ {
				inv, af := ropeFreqs(c, callEnd(t))
				ropeRow(q[t], hd, t, inv, af, c.RopeStyle == model.RopeInterleaved)
				ropeRow(k[t], hd, t, inv, af, c.RopeStyle == model.RopeInterleaved)
			}
			att = make([][]float64, T)
			group := c.Heads / c.KVHeads
			for t := 0; t < T; t++ {
				att[t] = make([]float64, c.QDim())
				for hh := 0; hh < c.Heads; hh++ {
					kh := hh / group
					sc := make([]float64, t+1)
					mx := math.Inf(-1)
					// gpt-oss (eager_attention_forward in HF's
					// modeling_gpt_oss.py): the head's sink logit joins the
					// softmax, then its probability is dropped.
					sinks := w(n("sinks"))
					if sinks != nil {
						mx = sinks[hh]
					}
					// Sliding window: HF's sliding_window_overlay keeps
					// kv_idx > q_idx - sliding_window.
					win := c.Window(l)
					for s := 0; s <= t; s++ {
						if win > 0 && s <= t-win {
							sc[s] = math.Inf(-1)
							continue
						}
						var d float64
						for i := 0; i < hd; i++ {
							d += q[t][hh*hd+i] * k[s][kh*hd+i]
						}
						sc[s] = d * attnMul
						mx = math.Max(mx, sc[s])
					}
					var sum float64
					for s := range sc {
						sc[s] = math.Exp(sc[s] - mx)
						sum += sc[s]
					}
					if sinks != nil {
						sum += math.Exp(sinks[hh] - mx)
					}
					for s := range sc {
						for i := 0; i < hd; i++ {
							att[t][hh*hd+i] += sc[s] / sum * v[s][kh*hd+i]
						}
					}
				}
			}
		}
		o := linear(att, w(n("wo")), w(n("bo")), D)
		for t := range x {
			for i := range x[t] {
				x[t][i] += o[t][i] * resMul
			}
		}
		h = rmsRows(x, w(n("ffn_norm")), float64(c.NormEps))
		f := &c.FFN[l]
		for t := 0; t < T; t++ {
			out := make([]float64, D)
			for s, width := range f.SharedWidths {
				y := biasedExpert(h[t], w(model.SharedName(l, s, "gate")), w(model.SharedName(l, s, "up")), w(model.SharedName(l, s, "down")), width, f, nil, nil, nil)
				g := 1.0
				if f.SharedGate {
					g = sigmoid(dotf(w(n("shared_gate")), h[t]))
				}
				for i := range out {
					out[i] += g * y[i]
				}
			}
			if f.Sparse() {
				var chosen []choice
				if c.Arch == "gpt_oss" {
					chosen = routeTopKSoftmax(h[t], w(n("router")), w(n("router_logit_bias")), f.Router.TopK)
				} else if c.MLA != nil {
					chosen = routeDeepSeek(h[t], w(n("router")), w(n("router_bias")), f)
				} else {
					chosen = route(h[t], w(n("router")), w(n("router_bias")), f)
				}
				for _, ch := range chosen {
					e := ch.e
					var y []float64
					if f.ExpertBias || f.Act == model.ActSwiGLUClamped {
						wd := f.ExpertWidths[e]
						var gb, ub, db []float64
						if f.ExpertBias {
							gb, ub, db = w(n("expert_gate_bias"))[e*wd:(e+1)*wd], w(n("expert_up_bias"))[e*wd:(e+1)*wd], w(n("expert_down_bias"))[e*D:(e+1)*D]
						}
						y = biasedExpert(h[t], w(model.ExpertName(l, e, "gate")), w(model.ExpertName(l, e, "up")), w(model.ExpertName(l, e, "down")), wd, f, gb, ub, db)
					} else {
						y = deepExpert(h[t], f.Arch(e), f.BlockWidths(e), float64(c.NormEps),
							func(b int, part string) []float64 { return w(model.BlockName(l, e, b, part)) })
					}
					for i := range out {
						out[i] += ch.w * y[i]
					}
				}
			}
			for i := range x[t] {
				x[t][i] += out[i] * resMul
			}
		}
	}
	fin := rmsRows(x, w(model.NameFinalNorm), float64(c.NormEps))
	head := w(model.NameOutput)
	if c.TiedOutput {
		head = emb
	}
	logits := linear(fin, head, nil, c.Vocab)
	for _, row := range logits {
		for i := range row {
			row[i] /= mult(c.LogitScale)
		}
	}
	return logits
}

type choice struct {
	e int
	w float64
}

func route(x, router, bias []float64, f *model.FFN) []choice {
	E := len(f.ExpertWidths)
	r := f.Router
	logits := make([]float64, E)
	for e := range logits {
		logits[e] = dotf(router[e*len(x):(e+1)*len(x)], x)
	}
	scores := make([]float64, E)
	if r.Scoring == model.Sigmoid {
		for e, v := range logits {
			scores[e] = sigmoid(v)
		}
	} else {
		mx := math.Inf(-1)
		for _, v := range logits {
			mx = math.Max(mx, v)
		}
		var sum float64
		for e, v := range logits {
			scores[e] = math.Exp(v - mx)
			sum += scores[e]
		}
		for e := range scores {
			scores[e] /= sum
		}
	}
	idx := make([]int, E)
	for i := range idx {
		idx[i] = i
	}
	sel := func(e int) float64 {
		if bias != nil {
			return scores[e] + bias[e]
		}
		return scores[e]
	}
	sort.SliceStable(idx, func(a, b int) bool { return sel(idx[a]) > sel(idx[b]) })
	out := make([]choice, r.TopK)
	var sum float64
	for i := range out {
		out[i] = choice{idx[i], scores[idx[i]]}
		sum += out[i].w
	}
	scale := float64(r.Scale())
	for i := range out {
		if r.NormTopK {
			out[i].w /= sum
		}
		out[i].w *= scale
	}
	return out
}

// routeTopKSoftmax is GptOssTopKRouter.forward (HF modeling_gpt_oss.py):
// logits = W·x + b, the top k logits, then a softmax over those k alone.
func routeTopKSoftmax(x, router, bias []float64, k int) []choice {
	E := len(router) / len(x)
	logits := make([]float64, E)
	idx := make([]int, E)
	for e := range logits {
		logits[e] = dotf(router[e*len(x):(e+1)*len(x)], x)
		if bias != nil {
			logits[e] += bias[e]
		}
		idx[e] = e
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	out := make([]choice, k)
	mx := logits[idx[0]]
	var sum float64
	for i := range out {
		out[i] = choice{idx[i], math.Exp(logits[idx[i]] - mx)}
		sum += out[i].w
	}
	for i := range out {
		out[i].w /= sum
	}
	return out
}

// biasedExpert is one plain expert: SwiGLU, or gpt-oss's clamped variant
// (GptOssExperts.forward: gate clamped above at limit, up to ±limit,
// (up + 1)·gate·σ(alpha·gate)), with the biases when given.
func biasedExpert(x, gate, up, down []float64, width int, f *model.FFN, gb, ub, db []float64) []float64 {
	D := len(x)
	hmid := make([]float64, width)
	for i := range hmid {
		g := dotf(gate[i*D:(i+1)*D], x)
		u := dotf(up[i*D:(i+1)*D], x)
		if gb != nil {
			g += gb[i]
			u += ub[i]
		}
		if f.Act == model.ActSwiGLUClamped {
			lim, alpha := float64(f.Limit), float64(f.Alpha)
			g = math.Min(g, lim)
			u = math.Max(math.Min(u, lim), -lim)
			hmid[i] = (u + 1) * (g * sigmoid(alpha*g))
			continue
		}
		hmid[i] = g * sigmoid(g) * u
	}
	y := make([]float64, D)
	for i := range y {
		y[i] = dotf(down[i*width:(i+1)*width], hmid)
		if db != nil {
			y[i] += db[i]
		}
	}
	return y
}

// deepExpert is a routed expert of any architecture, written as the
// definition reads: h₀ = x, h_b = h_{b-1} + block_b(norm_b(h_{b-1})) with
// norm₁ the identity (x is already the layer's ffn_norm output), and the
// output h_d − x.
func deepExpert(x []float64, a model.ExpertArch, widths []int, eps float64, w func(block int, part string) []float64) []float64 {
	h := append([]float64(nil), x...)
	for b, width := range widths {
		in := h
		if b > 0 {
			in = rmsRows([][]float64{h}, w(b, "norm"), eps)[0]
		}
		y := gated(in, w(b, "gate"), w(b, "up"), w(b, "down"), width, a.Activation())
		next := make([]float64, len(h))
		for i := range h {
			next[i] = h[i] + y[i]
		}
		h = next
	}
	for i := range h {
		h[i] -= x[i]
	}
	return h
}

func swiglu(x, gate, up, down []float64, width int) []float64 {
	return gated(x, gate, up, down, width, model.ActSiLU)
}

// act is the gate nonlinearity in float64, from its textbook definition.
func act(a model.Activation, g float64) float64 {
	switch a {
	case model.ActGELUTanh:
		return 0.5 * g * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(g+0.044715*g*g*g)))
	case model.ActReLU2:
		r := math.Max(g, 0)
		return r * r
	}
	return g * sigmoid(g)
}

func gated(x, gate, up, down []float64, width int, a model.Activation) []float64 {
	D := len(x)
	hmid := make([]float64, width)
	for i := range hmid {
		g := dotf(gate[i*D:(i+1)*D], x)
		u := dotf(up[i*D:(i+1)*D], x)
		hmid[i] = act(a, g) * u
	}
	y := make([]float64, D)
	for i := range y {
		y[i] = dotf(down[i*width:(i+1)*width], hmid)
	}
	return y
}

func ropeRow(v []float64, hd, pos int, inv []float64, af float64, interleaved bool) {
	half := hd / 2
	for h := 0; h+hd <= len(v); h += hd {
		for i := 0; i < half; i++ {
			a, b := h+i, h+i+half
			if interleaved {
				a, b = h+2*i, h+2*i+1
			}
			ang := float64(pos) * inv[i]
			c, s := math.Cos(ang)*af, math.Sin(ang)*af
			v0, v1 := v[a], v[b]
			v[a] = v0*c - v1*s
			v[b] = v0*s + v1*c
		}
	}
}

func rmsRows(x [][]float64, w []float64, eps float64) [][]float64 {
	g := len(w)
	out := make([][]float64, len(x))
	for t, row := range x {
		out[t] = make([]float64, len(row))
		for o := 0; o < len(row); o += g {
			var ss float64
			for _, v := range row[o : o+g] {
				ss += v * v
			}
			r := 1 / math.Sqrt(ss/float64(g)+eps)
			for i := 0; i < g; i++ {
				out[t][o+i] = w[i] * row[o+i] * r
			}
		}
	}
	return out
}

func linear(x [][]float64, w, b []float64, out int) [][]float64 {
	res := make([][]float64, len(x))
	for t, row := range x {
		res[t] = make([]float64, out)
		for i := 0; i < out; i++ {
			res[t][i] = dotf(w[i*len(row):(i+1)*len(row)], row)
			if b != nil {
				res[t][i] += b[i]
			}
		}
	}
	return res
}

func dotf(a, b []float64) float64 {
	var s float64
	for i := range b {
		s += a[i] * b[i]
	}
	return s
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
