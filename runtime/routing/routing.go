package routing

import (
	"math"

	"github.com/moderuntime/mode/runtime/model"
)

// Choice is one routed expert of one token and the weight its output gets.
type Choice struct {
	Expert int
	Weight float32
}

// Scores turns router logits into expert scores, in float32 as the HF
// implementations compute them (softmax in float32 over all experts).
func Scores(dst, logits []float32, s model.Scoring) {
	switch s {
	case model.Sigmoid:
		for i, x := range logits {
			dst[i] = Sigmoid(x)
		}
	default:
		Softmax(dst, logits)
	}
}

// Softmax writes softmax(x) to dst (which may alias x), subtracting the
// maximum first for stability, summing in order.
func Softmax(dst, x []float32) {
	if len(x) == 0 {
		return
	}
	m := x[0]
	for _, v := range x[1:] {
		if v > m {
			m = v
		}
	}
	var sum float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - m)))
		dst[i] = e
		sum += e
	}
	for i := range x {
		dst[i] /= sum
	}
}

// Sigmoid is 1/(1+e^-x) in float32.
func Sigmoid(x float32) float32 { return 1 / (1 + float32(math.Exp(float64(-x)))) }

// Select appends to dst the TopK experts of one token given its router
// logits. bias, when non-nil, is added to the scores to choose experts but
// the weights come from the unbiased scores (DeepSeek-V3's selection bias).
// Ties go to the lower expert index. With r.Groups > 0 only the experts of
// the token's r.TopKGroups best groups are candidates (LimitGroups).
// scratch must hold 3*len(logits).
func Select(dst []Choice, logits, bias []float32, r *model.Router, scratch []float32) []Choice {
	n := len(logits)
	scores, sel := scratch[:n], scratch[n:2*n]
	Scores(scores, logits, r.Scoring)
	copy(sel, scores)
	if bias != nil {
		for i := range sel {
			sel[i] += bias[i]
		}
	}
	if r.Groups > 0 {
		LimitGroups(sel, r, scratch[2*n:3*n])
	}
	start := len(dst)
	for k := 0; k < r.TopK; k++ {
		best := -1
		for i, v := range sel {
			if math.IsInf(float64(v), -1) && best >= 0 {
				continue
			}
			if best < 0 || v > sel[best] {
				best = i
			}
		}
		dst = append(dst, Choice{Expert: best, Weight: scores[best]})
		sel[best] = float32(math.Inf(-1))
	}
	picked := dst[start:]
	if r.NormTopK {
		var sum float32
		for _, c := range picked {
			sum += c.Weight
		}
		if sum > 0 {
			for i := range picked {
				picked[i].Weight /= sum
			}
		}
	}
	if s := r.Scale(); s != 1 {
		for i := range picked {
			picked[i].Weight *= s
		}
	}
	return dst
}

// ApplyCapacity enforces the router's expert capacity on a batch of
// per-token choices (in token order) and returns how many assignments
// overflowed; limit comes from model.Router.Capacity. Slots are granted by rank first (every token's first choice
// before any token's second), then by token order, so a token's best expert
// is the last thing it loses. An overflowing assignment moves to the
// fallback expert with its weight (merging with a choice of the fallback the
// token already has), or is dropped when the fallback is the shared expert:
// the token then keeps only its shared-expert output for that slot.
// Capacity never applies to a batch of one token.
func ApplyCapacity(choices [][]Choice, limit, fallback, experts int) (overflow int) {
	if limit <= 0 || len(choices) <= 1 {
		return 0
	}
	ranks := 0
	for _, cs := range choices {
		ranks = max(ranks, len(cs))
	}
	load := make([]int, experts)
	for rank := 0; rank < ranks; rank++ {
		for t := range choices {
			if rank >= len(choices[t]) {
				continue
			}
			c := &choices[t][rank]
			if c.Expert == fallback {
				continue // the fallback takes every token it is given
			}
			if load[c.Expert] < limit {
				load[c.Expert]++
				continue
			}
			overflow++
			c.Expert = fallback // FallbackShared (-1) marks it dropped
		}
	}
	for t, cs := range choices {
		choices[t] = compact(cs)
	}
	return overflow
}

// compact removes dropped choices (Expert < 0) and merges repeated experts
// into their first occurrence, in place.
func compact(cs []Choice) []Choice {
	out := cs[:0]
next:
	for _, c := range cs {
		if c.Expert < 0 {
			continue
		}
		for i := range out {
			if out[i].Expert == c.Expert {
				out[i].Weight += c.Weight
				continue next
			}
		}
		out = append(out, c)
	}
	return out
}

// LimitGroups sets to -Inf the selection scores of every expert outside
// the r.TopKGroups best of r.Groups equal groups, as DeepSeek's MoEGate
// does before its top-k (modeling_deepseek.py): a group scores its largest
// selection score (model.GroupMax, topk_method group_limited_greedy) or the
// sum of its two largest (model.GroupTop2Sum, noaux_tc, where the selection
// scores include e_score_correction_bias). Ties go to the lower group.
// The reference masks with 0.0 where this masks with -Inf: the two differ
// only when fewer than top_k experts of the chosen groups score above 0,
// which sigmoid and softmax scores never do without a negative selection
// bias; -Inf keeps the choice within the chosen groups, as the method
// intends. scratch must hold r.Groups values.
func LimitGroups(sel []float32, r *model.Router, scratch []float32) {
	g := r.Groups
	size := len(sel) / g
	gs := scratch[:g]
	for i := range gs {
		grp := sel[i*size : (i+1)*size]
		switch r.GroupScore {
		case model.GroupTop2Sum:
			a, b := float32(math.Inf(-1)), float32(math.Inf(-1)) // a >= b
			for _, v := range grp {
				if v > a {
					a, b = v, a
				} else if v > b {
					b = v
				}
			}
			gs[i] = a + b
		default: // model.GroupMax
			m := grp[0]
			for _, v := range grp[1:] {
				m = max(m, v)
			}
			gs[i] = m
		}
	}
	// Mark the TopKGroups best groups by setting their score to +Inf,
	// then mask every group not marked.
	for k := 0; k < r.TopKGroups; k++ {
		best := -1
		for i, v := range gs {
			if math.IsInf(float64(v), 1) {
				continue
			}
			if best < 0 || v > gs[best] {
				best = i
			}
		}
		if best < 0 {
			break
		}
		gs[best] = float32(math.Inf(1))
	}
	for i, v := range gs {
		if !math.IsInf(float64(v), 1) {
			for j := i * size; j < (i+1)*size; j++ {
				sel[j] = float32(math.Inf(-1))
			}
		}
	}
}
