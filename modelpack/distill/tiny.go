package distill

import (
	"fmt"
	"math"
	"slices"

	"github.com/moderuntime/mode/runtime/routing"
)

// TinyOptions adds cheap experts to every layer's routed pool, for
// compute-adaptive routing: with a top-k larger than the budget of real
// experts, a token whose FFN contribution is spread over many experts
// takes more of them and one whose contribution is concentrated takes
// fewer, filling its other slots with tiny experts that cost a few
// neurons each.
type TinyOptions struct {
	// Experts is the number of tiny experts per layer (K), appended after
	// the E real ones.
	Experts int `json:"experts"`
	// Width is each tiny expert's width (0 means 1). A tiny expert's gate
	// and up rows are copies of the layer's most active teacher neurons'
	// and its down projection starts at zero: it contributes nothing until
	// training grows it.
	Width int `json:"width"`
	// Budget is the mean number of real experts per token the tiny
	// experts' router rows are initialised for (0 means top-k − K, at
	// least 1). Each tiny row is τ·Σ_e r_e: the real rows are fitted to
	// the experts' shares of the FFN output, which sum to 1, so their sum
	// is the ridge fit of the constant 1 and the tiny logit is a
	// threshold τ on the fitted shares. τ is set so that the calibration
	// tokens use Budget real experts on average; each token then uses the
	// real experts whose share exceeds τ (at least top-k − K, at most
	// top-k).
	Budget float64 `json:"budget"`
}

func (o TinyOptions) width() int { return max(1, o.Width) }

func (o TinyOptions) budget(topK int) float64 {
	if o.Budget > 0 {
		return o.Budget
	}
	return float64(max(1, topK-o.Experts))
}

func (o TinyOptions) check(experts, topK int) error {
	if o.Experts < 0 || o.Width < 0 || o.Budget < 0 {
		return fmt.Errorf("--tiny-experts %d, --tiny-width %d, --tiny-budget %v: must not be negative", o.Experts, o.Width, o.Budget)
	}
	if o.Experts == 0 {
		return nil
	}
	lo, hi := float64(max(0, topK-o.Experts)), float64(min(topK, experts))
	if b := o.budget(topK); b < lo || b > hi {
		return fmt.Errorf("--tiny-budget %v: with top-%d of %d real and %d tiny experts a token uses %v to %v real experts", b, topK, experts, o.Experts, lo, hi)
	}
	return nil
}

// realCount is how many of the E real experts (the first E of logits'
// rows of E+K) top-k selection gives a token whose tiny experts all have
// the logit th: those above th, at least k − K and at most k.
func realCount(logits []float32, th float32, k, K int) int {
	n := 0
	for _, v := range logits {
		if v >= th { // ties go to the lower index, a real expert
			n++
		}
	}
	return min(max(n, k-K), k, len(logits))
}

// addTinyRows appends K threshold rows τ·Σ_e r_e to the plan's router of E
// real rows, τ chosen by bisection so that the rows h [N, D] use budget
// real experts on average under top-k routing (TinyOptions.Budget). It
// returns the mean it reached.
func addTinyRows(p *layerPlan, h []float32, N, D, k int, o TinyOptions) float64 {
	E := len(p.experts)
	r := p.router[:E*D]
	sum := realSum(r, E, D)
	logits := matmul(h, r, N, D, E)
	base := matmul(h, sum, N, D, 1)
	mean := func(tau float32) float64 {
		n := 0
		for t := 0; t < N; t++ {
			n += realCount(logits[t*E:(t+1)*E], tau*base[t], k, o.Experts)
		}
		return float64(n) / float64(N)
	}
	// The mean count falls as τ grows (base ≈ 1 > 0 for nearly every
	// token); search τ over a range wide enough for any share.
	want := o.budget(k)
	hi := bisectDown(-4, 4, 60, func(tau float32) bool { return mean(tau) > want })
	// hi is the smallest τ found with mean ≤ want: the budget is not
	// exceeded.
	p.router = append(slices.Clone(r), make([]float32, o.Experts*D)...)
	setTinyRows(p.router, E, D, hi, sum)
	p.tinyTau = float64(hi)
	return mean(hi)
}

// bisectDown halves [lo, hi] steps times around the point where over
// turns false, for an over that is true below it and false above (a
// count that falls as x grows, say, being over a budget), and returns
// the upper end: the smallest x found where over is false, if hi is one.
func bisectDown[F float32 | float64](lo, hi F, steps int, over func(F) bool) F {
	for range steps {
		mid := (lo + hi) / 2
		if over(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// tinyNeurons returns, for K tiny experts of width w, the teacher neurons
// whose gate and up rows each copies: the layer's most active ones in
// order of mean |activation|, skipping the shared expert's, reused from
// the start when there are fewer than K·w.
func tinyNeurons(order []int, shared []int, K, w int) [][]int {
	var pool []int
	for _, i := range order {
		if !slices.Contains(shared, i) {
			pool = append(pool, i)
		}
	}
	out := make([][]int, K)
	for j := range out {
		for i := 0; i < w; i++ {
			out[j] = append(out[j], pool[(j*w+i)%len(pool)])
		}
	}
	return out
}

// neurons is what one use of the expert costs in neurons: the sum
// of its blocks' widths (the compute loss's cost(e); FLOPs are 6·dim per
// neuron).
func (e *expert) neurons() int {
	n := e.width
	for _, b := range e.more {
		n += b.width
	}
	return n
}

// computeBack adds the compute-aware router loss of one layer and
// sequence to dl [T, E], the router logit gradients, with weight
// coef: L = (1/T)·Σ_t Σ_e p(e|t)·cost(e)/c̄, where p is the softmax of the
// logits times tau (as the load-balancing loss sees them) and c̄ the mean
// cost over the layer's experts. Minimising it moves probability from
// expensive experts to cheap ones, most where the task loss resists least.
// dL/dlogit_j = tau·p_j·(c_j/c̄ − Σ_e p_e·c_e/c̄)/T. It returns L.
func computeBack(scores []float32, costs []float64, dl []float32, T, E int, tau, coef float32) float64 {
	var mean float64
	for _, c := range costs {
		mean += c
	}
	mean /= float64(E)
	rel := make([]float32, E)
	for e, c := range costs {
		rel[e] = float32(c / mean)
	}
	var L float64
	for t := 0; t < T; t++ {
		p := scores[t*E : (t+1)*E]
		var lt float32
		for e := range p {
			lt += p[e] * rel[e]
		}
		L += float64(lt) / float64(T)
		row := dl[t*E : (t+1)*E]
		c := coef * tau / float32(T)
		for e := range p {
			row[e] += c * p[e] * (rel[e] - lt)
		}
	}
	return L
}

// auxScores returns the router softmax and logits the auxiliary losses see
// (the layer's logits times its auxTau) and the tau used.
func auxScores(ly *layer, lc *layerCache, T, E int) (scores, logits []float32, tau float32) {
	tau = ly.auxTau
	if tau == 0 || tau == 1 {
		return lc.scores, lc.logits, 1
	}
	logits = make([]float32, T*E)
	for i, v := range lc.logits {
		logits[i] = tau * v
	}
	scores = make([]float32, T*E)
	for t := 0; t < T; t++ {
		routing.Softmax(scores[t*E:(t+1)*E], logits[t*E:(t+1)*E])
	}
	return scores, logits, tau
}

// routedNeurons is the mean over tokens of the neurons of the experts each
// token selected in one layer (what training logs as the routed cost).
func routedNeurons(ly *layer, choices [][]routing.Choice) float64 {
	var n float64
	for _, cs := range choices {
		for _, ch := range cs {
			n += float64(ly.experts[ch.Expert].neurons())
		}
	}
	return n / math.Max(1, float64(len(choices)))
}

// realExperts is the mean over tokens of the real (not tiny) experts each
// token selected in one layer.
func realExperts(ly *layer, choices [][]routing.Choice) float64 {
	real := len(ly.experts) - ly.tiny
	var n float64
	for _, cs := range choices {
		for _, ch := range cs {
			if ch.Expert < real {
				n++
			}
		}
	}
	return n / math.Max(1, float64(len(choices)))
}

// controlTiny moves the layer's tiny threshold by gain·(real − budget),
// real being the batch's mean real experts per token, and rewrites the
// tiny router rows as tinyTau times the sum of the real rows
// (TrainOptions.TinyBudget).
func (ly *layer) controlTiny(real, budget, gain float64) {
	E := len(ly.experts)
	R := E - ly.tiny
	D := len(ly.router) / E
	ly.tinyTau += float32(gain * (real - budget))
	setTinyRows(ly.router, R, D, ly.tinyTau, realSum(ly.router, R, D))
}

// realSum is Σ_e r_e over the first real rows of router (rows of D).
func realSum(router []float32, real, D int) []float32 {
	sum := make([]float32, D)
	for e := 0; e < real; e++ {
		axpy(sum, 1, router[e*D:(e+1)*D])
	}
	return sum
}

// setTinyRows sets every row of router after the first real ones to
// tau·sum: the tiny experts' threshold rows (addTinyRows, controlTiny).
func setTinyRows(router []float32, real, D int, tau float32, sum []float32) {
	for e := real; e < len(router)/D; e++ {
		row := router[e*D : (e+1)*D]
		for i, v := range sum {
			row[i] = tau * v
		}
	}
}
