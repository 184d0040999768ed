package distill

import (
	"cmp"
	"math"
	"slices"

	"github.com/moderuntime/mode/runtime/routing"
)

// ecCapacity is how many of a group's T tokens each of E experts takes
// under expert choice when tokens use k experts on average: T·k/E,
// rounded to nearest, at least 1 and at most T.
func ecCapacity(T, k, E int) int {
	return min(T, max(1, (T*k+E/2)/E))
}

// expertChoice routes a group of T tokens by expert choice: expert e takes
// the C tokens with the highest softmax score s[t,e] (ties to the earlier
// token), so a token may get any number of experts, none included. A
// token's weights are the token-choice formula on the experts that took it
// — scale·s[t,e]/Σ s over them (norm_topk_prob) — so the backward pass and
// the experts see weights of the kind token-choice inference will give
// them. The ranking uses the log-softmax l − logsumexp(l) in float64: the
// fitted routers' logits are about 1e-4, where float32 scores near 1/E
// would tie.
func expertChoice(logits, scores []float32, T, E, C int, scale float32) [][]routing.Choice {
	ls := make([]float64, T*E)
	for t := 0; t < T; t++ {
		row := logits[t*E : (t+1)*E]
		lse := logSumExp(row)
		for e, v := range row {
			ls[t*E+e] = float64(v) - lse
		}
	}
	picked := make([][]int, T)
	order := make([]int, T)
	for e := 0; e < E; e++ {
		for t := range order {
			order[t] = t
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(ls[b*E+e], ls[a*E+e]) })
		for _, t := range order[:C] {
			picked[t] = append(picked[t], e)
		}
	}
	choices := make([][]routing.Choice, T)
	for t, es := range picked {
		var sum float32
		for _, e := range es {
			sum += scores[t*E+e]
		}
		for _, e := range es { // ascending expert order
			w := scale
			if sum > 0 {
				w = scale * scores[t*E+e] / sum
			}
			choices[t] = append(choices[t], routing.Choice{Expert: e, Weight: w})
		}
	}
	return choices
}

// ecAuxBack adds the token-choice auxiliary loss of an expert-choice layer
// (TrainOptions.ExpertChoiceAux) to the logit gradients dl [T, E] with
// weight coef and returns its unscaled value: the cross-entropy of the
// router's token-choice softmax over tau·logits against the uniform
// distribution on the experts that took the token,
//
//	L = (1/T) Σ_t −(1/|S_t|) Σ_{e∈S_t} log softmax(tau·l_t)_e,
//
// over the tokens some expert took. It trains the logits that expert
// choice only ranks per expert to rank per token the same way, which is
// what token-choice inference needs: the experts each token will get at
// inference are then the ones that were trained on it. The sets S_t are
// piecewise constant in the logits, so the gradient is
// coef·tau·(p − q)/T.
func ecAuxBack(choices [][]routing.Choice, logits, dl []float32, T, E int, tau, coef float32) float64 {
	if tau == 0 {
		tau = 1
	}
	var loss float64
	z := make([]float32, E)
	p := make([]float32, E)
	for t := 0; t < T; t++ {
		cs := choices[t]
		if len(cs) == 0 {
			continue
		}
		for e, v := range logits[t*E : (t+1)*E] {
			z[e] = tau * v
		}
		lse := logSumExp(z)
		routing.Softmax(p, z)
		q := 1 / float32(len(cs))
		row := dl[t*E : (t+1)*E]
		for e := range row {
			row[e] += coef * tau * p[e] / float32(T)
		}
		for _, ch := range cs {
			loss -= float64(q) * (float64(z[ch.Expert]) - lse) / float64(T)
			row[ch.Expert] -= coef * tau * q / float32(T)
		}
	}
	return loss
}

// clipExperts scales each trained expert's gradient (all its blocks'
// matrices and norms together) in g down to an L2 norm of at most limit
// (TrainOptions.ExpertClip) and returns how many it scaled. Routed experts
// see only their own tokens, so their gradient norms differ by the share
// of the batch routed to them; one global clip would let the busiest
// expert's spikes decide every expert's step.
func clipExperts(g *grads, limit float64) int {
	if limit <= 0 || g.experts == nil {
		return 0
	}
	n := 0
	clip := func(eg *expertGrad) {
		var ss float64
		parts := eg.flat()
		for _, s := range parts {
			for _, v := range s {
				ss += float64(v) * float64(v)
			}
		}
		norm := math.Sqrt(ss)
		if norm <= limit {
			return
		}
		f := float32(limit / norm)
		for _, s := range parts {
			for i := range s {
				s[i] *= f
			}
		}
		n++
	}
	for l := range g.experts {
		for e := range g.experts[l] {
			clip(&g.experts[l][e])
		}
		for e := range g.shared[l] {
			clip(&g.shared[l][e])
		}
	}
	return n
}
