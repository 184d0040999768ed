package testmodel

import (
	"math"
	"sort"

	"github.com/moderuntime/mode/runtime/model"
)

// mlaNaive is DeepseekV2Attention.forward (modeling_deepseek.py, eager
// attention) in float64 over all T rows of h, written as that code reads:
// each head's k is cat(k_nope, k_pe) with k_pe shared, RoPE is applied the HF way
// (q_pe.view(d/2, 2).transpose then rotate_half), and the scores are scaled
// by softmax_scale = q_head_dim^-0.5 · yarn_get_mscale(factor,
// mscale_all_dim)². It returns the [T, heads·v_head_dim] input of o_proj.
func mlaNaive(c *model.Config, l int, h [][]float64, w func(string) []float64, callEnd func(int) int) [][]float64 {
	m := c.MLA
	n := func(s string) string { return model.LayerName(l, s) }
	H, N, P, V, R := c.Heads, m.NopeDim, m.RopeDim, m.VDim, m.KVLoraRank
	T := len(h)
	var q [][]float64
	if m.QLoraRank > 0 {
		qa := rmsRows(linear(h, w(n("wq_a")), nil, m.QLoraRank), w(n("q_a_norm")), float64(c.NormEps))
		q = linear(qa, w(n("wq_b")), nil, H*(N+P))
	} else {
		q = linear(h, w(n("wq")), nil, H*(N+P))
	}
	ckv := linear(h, w(n("wkv_a")), nil, R+P)
	lat := make([][]float64, T)
	kpe := make([][]float64, T)
	for t := range ckv {
		lat[t] = ckv[t][:R]
		kpe[t] = ckv[t][R:]
	}
	kv := linear(rmsRows(lat, w(n("kv_a_norm")), float64(c.NormEps)), w(n("wkv_b")), nil, H*(N+V))
	// apply_rotary_pos_emb: de-interleave, then q·cos + rotate_half(q)·sin
	rot := func(x []float64, pos int) []float64 {
		inv, af := ropeFreqs(c, callEnd(pos))
		half := P / 2
		y := make([]float64, P)
		for i := 0; i < half; i++ {
			y[i], y[half+i] = x[2*i], x[2*i+1]
		}
		out := make([]float64, P)
		for i := 0; i < P; i++ {
			ang := float64(pos) * inv[i%half]
			var rh float64 // rotate_half(y)[i] = cat(-y[half:], y[:half])[i]
			if i < half {
				rh = -y[i+half]
			} else {
				rh = y[i-half]
			}
			out[i] = y[i]*math.Cos(ang)*af + rh*math.Sin(ang)*af
		}
		return out
	}
	scale := 1 / math.Sqrt(float64(N+P))
	if s := c.RopeScale; s != nil && s.Type == "yarn" && s.MscaleAllDim != 0 {
		ms := 0.1*s.MscaleAllDim*math.Log(s.Factor) + 1
		if s.Factor <= 1 {
			ms = 1
		}
		scale *= ms * ms
	}
	keys := make([][][]float64, T) // [t][head] = cat(k_nope, k_pe)
	vals := make([][][]float64, T)
	for t := 0; t < T; t++ {
		kp := rot(kpe[t], t)
		for hh := 0; hh < H; hh++ {
			row := kv[t][hh*(N+V) : (hh+1)*(N+V)]
			keys[t] = append(keys[t], append(append([]float64(nil), row[:N]...), kp...))
			vals[t] = append(vals[t], row[N:])
		}
	}
	att := make([][]float64, T)
	for t := 0; t < T; t++ {
		att[t] = make([]float64, H*V)
		for hh := 0; hh < H; hh++ {
			qh := q[t][hh*(N+P) : (hh+1)*(N+P)]
			query := append(append([]float64(nil), qh[:N]...), rot(qh[N:], t)...)
			sc := make([]float64, t+1)
			mx := math.Inf(-1)
			for s := 0; s <= t; s++ {
				sc[s] = dotf(query, keys[s][hh]) * scale
				mx = math.Max(mx, sc[s])
			}
			var sum float64
			for s := range sc {
				sc[s] = math.Exp(sc[s] - mx)
				sum += sc[s]
			}
			for s := range sc {
				for i := 0; i < V; i++ {
					att[t][hh*V+i] += sc[s] / sum * vals[s][hh][i]
				}
			}
		}
	}
	return att
}

// routeDeepSeek is MoEGate.forward (modeling_deepseek.py, V3's): scores
// by softmax or sigmoid; the selection scores add e_score_correction_bias
// when there is one; with n_group, groups score their max
// (group_limited_greedy) or the sum of their top two (noaux_tc) and only
// the topk_group best groups' experts stay candidates; the top_k
// candidates weigh by their unbiased scores, normalised to sum 1 (plus
// 1e-20) when norm_topk_prob and top_k > 1, then times
// routed_scaling_factor.
func routeDeepSeek(x, router, bias []float64, f *model.FFN) []choice {
	r := f.Router
	E := len(f.ExpertWidths)
	scores := make([]float64, E)
	for e := range scores {
		scores[e] = dotf(router[e*len(x):(e+1)*len(x)], x)
	}
	if r.Scoring == model.Sigmoid {
		for e, v := range scores {
			scores[e] = sigmoid(v)
		}
	} else {
		mx := math.Inf(-1)
		for _, v := range scores {
			mx = math.Max(mx, v)
		}
		var sum float64
		for e, v := range scores {
			scores[e] = math.Exp(v - mx)
			sum += scores[e]
		}
		for e := range scores {
			scores[e] /= sum
		}
	}
	sel := append([]float64(nil), scores...)
	for e := range sel {
		if bias != nil {
			sel[e] += bias[e]
		}
	}
	if r.Groups > 0 {
		size := E / r.Groups
		gs := make([]float64, r.Groups)
		for g := range gs {
			grp := append([]float64(nil), sel[g*size:(g+1)*size]...)
			sort.Sort(sort.Reverse(sort.Float64Slice(grp)))
			if r.GroupScore == model.GroupTop2Sum {
				gs[g] = grp[0] + grp[1]
			} else {
				gs[g] = grp[0]
			}
		}
		order := make([]int, r.Groups)
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return gs[order[a]] > gs[order[b]] })
		keep := make([]bool, r.Groups)
		for _, g := range order[:r.TopKGroups] {
			keep[g] = true
		}
		for e := range sel {
			if !keep[e/size] {
				sel[e] = math.Inf(-1)
			}
		}
	}
	idx := make([]int, E)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return sel[idx[a]] > sel[idx[b]] })
	out := make([]choice, r.TopK)
	var sum float64
	for i := range out {
		out[i] = choice{idx[i], scores[idx[i]]}
		sum += out[i].w
	}
	for i := range out {
		if r.TopK > 1 && r.NormTopK {
			out[i].w /= sum + 1e-20
		}
		out[i].w *= float64(r.Scale())
	}
	return out
}
