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
	inv, af := c.RopeFreqs()
	T := len(ids)
	emb := w(model.NameEmbed)
	x := make([][]float64, T)
	for t, id := range ids {
		x[t] = append([]float64(nil), emb[id*D:(id+1)*D]...)
	}
	for l := 0; l < c.Layers; l++ {
		n := func(s string) string { return model.LayerName(l, s) }
		h := rmsRows(x, w(n("attn_norm")), float64(c.NormEps))
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
			ropeRow(q[t], hd, t, inv, float64(af), c.RopeStyle == model.RopeInterleaved)
			ropeRow(k[t], hd, t, inv, float64(af), c.RopeStyle == model.RopeInterleaved)
		}
		att := make([][]float64, T)
		group := c.Heads / c.KVHeads
		for t := 0; t < T; t++ {
			att[t] = make([]float64, c.QDim())
			for hh := 0; hh < c.Heads; hh++ {
				kh := hh / group
				sc := make([]float64, t+1)
				mx := math.Inf(-1)
				for s := 0; s <= t; s++ {
					var d float64
					for i := 0; i < hd; i++ {
						d += q[t][hh*hd+i] * k[s][kh*hd+i]
					}
					sc[s] = d / math.Sqrt(float64(hd))
					mx = math.Max(mx, sc[s])
				}
				var sum float64
				for s := range sc {
					sc[s] = math.Exp(sc[s] - mx)
					sum += sc[s]
				}
				for s := range sc {
					for i := 0; i < hd; i++ {
						att[t][hh*hd+i] += sc[s] / sum * v[s][kh*hd+i]
					}
				}
			}
		}
		o := linear(att, w(n("wo")), nil, D)
		for t := range x {
			for i := range x[t] {
				x[t][i] += o[t][i]
			}
		}
		h = rmsRows(x, w(n("ffn_norm")), float64(c.NormEps))
		f := &c.FFN[l]
		for t := 0; t < T; t++ {
			out := make([]float64, D)
			for s, width := range f.SharedWidths {
				y := swiglu(h[t], w(model.SharedName(l, s, "gate")), w(model.SharedName(l, s, "up")), w(model.SharedName(l, s, "down")), width)
				g := 1.0
				if f.SharedGate {
					g = sigmoid(dotf(w(n("shared_gate")), h[t]))
				}
				for i := range out {
					out[i] += g * y[i]
				}
			}
			if f.Sparse() {
				for _, ch := range route(h[t], w(n("router")), w(n("router_bias")), f) {
					e := ch.e
					y := swiglu(h[t], w(model.ExpertName(l, e, "gate")), w(model.ExpertName(l, e, "up")), w(model.ExpertName(l, e, "down")), f.ExpertWidths[e])
					for i := range out {
						out[i] += ch.w * y[i]
					}
				}
			}
			for i := range x[t] {
				x[t][i] += out[i]
			}
		}
	}
	fin := rmsRows(x, w(model.NameFinalNorm), float64(c.NormEps))
	head := w(model.NameOutput)
	if c.TiedOutput {
		head = emb
	}
	return linear(fin, head, nil, c.Vocab)
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

func swiglu(x, gate, up, down []float64, width int) []float64 {
	D := len(x)
	hmid := make([]float64, width)
	for i := range hmid {
		g := dotf(gate[i*D:(i+1)*D], x)
		u := dotf(up[i*D:(i+1)*D], x)
		hmid[i] = g * sigmoid(g) * u
	}
	y := make([]float64, D)
	for i := range y {
		y[i] = dotf(down[i*width:(i+1)*width], hmid)
	}
	return y
}

func ropeRow(v []float64, hd, pos int, inv []float32, af float64, interleaved bool) {
	half := hd / 2
	for h := 0; h+hd <= len(v); h += hd {
		for i := 0; i < half; i++ {
			a, b := h+i, h+i+half
			if interleaved {
				a, b = h+2*i, h+2*i+1
			}
			ang := float64(pos) * float64(inv[i])
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
