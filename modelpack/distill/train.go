package distill

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// TrainOptions configures the optional fine-tuning after initialisation.
type TrainOptions struct {
	Steps int     // optimiser steps; 0 skips training
	LR    float64 // Adam learning rate
	// Cosine decays the learning rate from LR to 0 over the steps (after a
	// warm-up of 5 % of them) instead of keeping it constant.
	Cosine bool
	// LMWeight weighs L_LM, the cross-entropy of the sequence's own next
	// token; 0 trains on the teacher's distribution (KL) alone, which does
	// not fit the sampled text.
	LMWeight float64
	KLWeight float64 // λ of KL(p_teacher‖p_student)
	// ArgmaxWeight weighs the cross-entropy of the teacher's most likely
	// next token: it trains for greedy agreement directly.
	ArgmaxWeight float64
	LBWeight     float64 // weight of the load-balancing loss E·Σ f_i·P_i
	ZWeight      float64 // weight of the router z-loss mean(logsumexp(logits)²)
	// AuxLogitScale multiplies the router logits the load-balancing loss
	// and the z-loss are computed on (0: 1). Fitted routers give logits of
	// at most 1e-4 (unitLogit), at which every softmax score is 1/E and
	// both losses are constants; 1e4 brings the largest calibration logit
	// to 1, where they measure and change the routing. Selection and the
	// routed weights still use the logits as they are.
	AuxLogitScale float64
	Experts       bool // also train the experts, not only the routers
	// All trains every weight of the student: routers, experts, attention,
	// norms, embeddings and head.
	All bool
	// RouterLR, when positive, sets each router's learning rate to RouterLR
	// times the RMS of its initial weights, so that the step is relative to
	// the router's scale (fitted routers are scaled to tiny logits, which an
	// absolute step of LR would wipe out at once); 0 uses LR. Negative
	// freezes the routers.
	RouterLR float64
	Batch    int // sequences per step; 0 means 8
	// Fresh, when positive, trains on up to this many new sequences sampled
	// from the teacher (seeds disjoint from the calibration sample's; any
	// that equals a held-out sequence is dropped) instead of the calibration
	// sequences. Each step takes the next Batch of them, sampling each when
	// first needed and keeping the teacher's logits from the sampling pass;
	// past Fresh sequences they are reused from the start.
	Fresh int
	// SeqLen is the length of the fresh sequences; 0 means the longest
	// calibration sequence.
	SeqLen int
	// EMA, when in (0, 1), keeps an exponential moving average of the
	// trained weights with this decay per step and stores the average, not
	// the last step's weights (Polyak averaging): the last steps' gradient
	// noise averages out instead of landing in the student.
	EMA float64
	// DenseRouter also gives each router a gradient for the experts it did
	// not select: every routed expert runs on every training token, and an
	// unselected expert e gets the logit gradient it would get if it were
	// selected with weight scale·s_e/Σ_top s (a straight-through surrogate,
	// as in dense-backpropagation MoE training). Top-k selection otherwise
	// only ever compares the experts already chosen, so a router cannot
	// learn that a token is better served by one it skipped. The selected
	// experts' gradients stay exact; the unselected experts' forward pass
	// is the cost.
	DenseRouter bool
	// ExpertChoiceLayers routes the first N layers by expert choice while
	// training: in each sequence every expert takes its top C =
	// T·top_k/E tokens by router score (expertChoice), so every expert
	// trains on the same number of tokens whatever the router's balance.
	// Inference always routes by token choice (top_k per token on the same
	// logits); ExpertChoiceAux and ExpertChoiceAnneal make that hand-over
	// cheap.
	ExpertChoiceLayers int
	// ExpertChoiceAux weighs the token-choice auxiliary loss of the
	// expert-choice layers: the cross-entropy of the router's per-token
	// softmax (over logits times AuxLogitScale) against the experts that
	// took the token (ecAuxBack).
	ExpertChoiceAux float64
	// ExpertChoiceAnneal, in [0, 1], is the fraction of the last steps
	// that route every layer by token choice, so that the experts and
	// later layers adapt to the routing inference will use.
	ExpertChoiceAnneal float64
	// ComputeWeight weighs the compute-aware router loss: per layer and
	// sequence the mean over tokens of Σ_e p(e|token)·cost(e)/c̄, with p the
	// router softmax at AuxLogitScale, cost(e) the expert's neurons and c̄
	// their mean over the layer's experts (computeBack). With tiny experts
	// (TinyOptions) it is meant to move tokens whose FFN contribution
	// matters little to the cheap experts.
	ComputeWeight float64
	// ComputeTarget, when positive, makes ComputeWeight the starting value
	// of a Lagrange multiplier for the constraint "mean routed neurons per
	// token and layer ≤ ComputeTarget": after each step the weight moves
	// by ComputeRate·(routed/ComputeTarget − 1), floored at 0 (dual
	// ascent). On stories260K neither a fixed weight nor the multiplier
	// held a budget (docs/distill-pareto.md): the loss reaches every
	// expert's logit while the task loss reaches only the selected ones',
	// so routing fell to the floor of top-k minus the tiny experts and
	// stayed there; TinyBudget holds it by control instead.
	ComputeTarget float64
	ComputeRate   float64
	// TinyBudget, when positive, holds each layer's mean number of real
	// experts per training token at this by control instead of a loss:
	// after every step each layer's tiny router rows are set to τ_l times
	// the sum of its real rows (as TinyOptions initialises them) and τ_l
	// moves by TinyGain·(the batch's mean real experts − TinyBudget), a
	// proportional controller on the threshold (the tiny rows' own
	// gradient steps are overwritten).
	TinyBudget float64
	TinyGain   float64
	// ExpertClip, when positive, clips each expert's gradient (routed and
	// shared, all of its blocks together) to this L2 norm per step,
	// separately for each expert (clipExperts). Needs Experts or All.
	ExpertClip float64
}

// TrainReport summarises a training run.
type TrainReport struct {
	Steps         int     `json:"steps"`
	LR            float64 `json:"lr"`
	Cosine        bool    `json:"cosine,omitempty"`
	LMWeight      float64 `json:"lm_weight"`
	KLWeight      float64 `json:"kl_weight"`
	ArgmaxWeight  float64 `json:"argmax_weight,omitempty"`
	LBWeight      float64 `json:"lb_weight"`
	ZWeight       float64 `json:"z_weight"`
	AuxLogitScale float64 `json:"aux_logit_scale,omitempty"`
	Experts       bool    `json:"train_experts"`
	All           bool    `json:"train_all,omitempty"`
	RouterLR      float64 `json:"router_lr,omitempty"`
	EMA           float64 `json:"ema,omitempty"`
	DenseRouter   bool    `json:"dense_router,omitempty"`
	// ExpertChoice* and ExpertClip echo the options; ECSteps is how many
	// steps routed by expert choice and Clipped how many (step, expert)
	// gradients the per-expert clip scaled down.
	ExpertChoiceLayers int     `json:"expert_choice_layers,omitempty"`
	ExpertChoiceAux    float64 `json:"expert_choice_aux,omitempty"`
	ExpertChoiceAnneal float64 `json:"expert_choice_anneal,omitempty"`
	ECSteps            int     `json:"expert_choice_steps,omitempty"`
	ExpertClip         float64 `json:"expert_clip,omitempty"`
	ComputeWeight      float64 `json:"compute_weight,omitempty"`
	ComputeTarget      float64 `json:"compute_target,omitempty"`
	ComputeRate        float64 `json:"compute_rate,omitempty"`
	ComputeWeightLast  float64 `json:"compute_weight_last,omitempty"`
	TinyBudget         float64 `json:"tiny_budget,omitempty"`
	TinyGain           float64 `json:"tiny_gain,omitempty"`
	// RealFirst and RealLast are the mean real experts per token and
	// layer with tiny experts at the first and last step.
	RealFirst float64 `json:"real_experts_first,omitempty"`
	RealLast  float64 `json:"real_experts_last,omitempty"`
	// RoutedFirst and RoutedLast are the mean neurons of the selected
	// routed experts per token and layer at the first and last step.
	RoutedFirst float64 `json:"routed_neurons_first,omitempty"`
	RoutedLast  float64 `json:"routed_neurons_last,omitempty"`
	Clipped     int     `json:"expert_clipped,omitempty"`
	Batch       int     `json:"batch"`
	// Sequences and Tokens describe the training data: the calibration
	// sequences, or the fresh teacher samples.
	Sequences int     `json:"sequences"`
	Tokens    int     `json:"tokens"`
	Fresh     bool    `json:"fresh"`
	Dropped   int     `json:"fresh_dropped_as_heldout,omitempty"`
	FirstLoss float64 `json:"first_loss"`
	LastLoss  float64 `json:"last_loss"`
	Seconds   float64 `json:"seconds"`
}

// maxTeacherCache bounds the bytes of teacher logits kept between steps;
// beyond it the teacher is rerun for every batch.
const maxTeacherCache = 512 << 20

// trainData gives the training sequences: get returns sequence i and,
// when KL is trained, the teacher's logits for it. Worker w of trainOn's
// goroutines calls get(w, i); ids is nil for a sequence to skip.
type trainData struct {
	n   int
	get func(w, i int) (ids []int, teacher []float32, err error)
}

// cachedTeacher returns a function giving the teacher's logits for a
// sequence by index, cached while the total fits in maxTeacherCache.
func cachedTeacher(tn *net, n, totalTokens int) func(i int, ids []int) []float32 {
	cache := int64(totalTokens)*int64(tn.cfg.Vocab)*4 <= maxTeacherCache
	var mu sync.Mutex
	logits := make([][]float32, n)
	return func(i int, ids []int) []float32 {
		mu.Lock()
		c := logits[i]
		mu.Unlock()
		if c != nil {
			return c
		}
		c = tn.forward(ids).logits
		if cache {
			mu.Lock()
			logits[i] = c
			mu.Unlock()
		}
		return c
	}
}

// seqData serves fixed sequences (the calibration set).
func seqData(tn *net, seqs [][]int, kl bool) trainData {
	teacher := cachedTeacher(tn, len(seqs), tokens(seqs))
	return trainData{n: len(seqs), get: func(_, i int) ([]int, []float32, error) {
		if !kl {
			return seqs[i], nil, nil
		}
		return seqs[i], teacher(i, seqs[i]), nil
	}}
}

// trainNet fine-tunes sn's routers (and experts) with Adam on the loss
// lm·L_LM + λ·KL + w_lb·lb + w_z·z, the teacher tn frozen, on seqs.
func trainNet(sn, tn *net, seqs [][]int, o TrainOptions, threads int, logf func(string, ...any)) (*TrainReport, error) {
	rep, err := trainOn(sn, seqData(tn, seqs, o.KLWeight != 0 || o.ArgmaxWeight != 0), o, threads, logf)
	if err != nil {
		return nil, err
	}
	rep.Sequences, rep.Tokens = len(seqs), tokens(seqs)
	return rep, nil
}

// trainOn is trainNet on any source of sequences.
func trainOn(sn *net, data trainData, o TrainOptions, threads int, logf func(string, ...any)) (*TrainReport, error) {
	start := time.Now()
	B := o.Batch
	if B <= 0 {
		B = 8
	}
	B = min(B, data.n)
	if err := o.checkExpertChoice(len(sn.layers)); err != nil {
		return nil, err
	}
	lw := lossWeights{lm: float32(o.LMWeight), kl: float32(o.KLWeight), am: float32(o.ArgmaxWeight), lb: float32(o.LBWeight), z: float32(o.ZWeight), ec: float32(o.ExpertChoiceAux), cc: float32(o.ComputeWeight)}
	nw := workers(B, threads)
	gw := make([]*grads, nw)
	sc := trainScope{experts: o.Experts, all: o.All}
	for w := range gw {
		gw[w] = newGrads(sn, sc)
	}
	params := sn.params(sc)
	lrs := make([]float64, len(params))
	for i := range lrs {
		lrs[i] = o.LR
	}
	if o.RouterLR != 0 {
		for i, p := range params {
			if sn.isRouter(p) {
				lrs[i] = max(0, o.RouterLR) * rms(p)
			}
		}
	}
	opt := newAdam(params, lrs)
	V := sn.cfg.Vocab
	rep := &TrainReport{Steps: o.Steps, LR: o.LR, Cosine: o.Cosine, LMWeight: o.LMWeight, KLWeight: o.KLWeight, ArgmaxWeight: o.ArgmaxWeight,
		LBWeight: o.LBWeight, ZWeight: o.ZWeight, AuxLogitScale: o.AuxLogitScale, Experts: o.Experts, All: o.All, RouterLR: o.RouterLR, EMA: o.EMA, DenseRouter: o.DenseRouter, Batch: B,
		ExpertChoiceLayers: o.ExpertChoiceLayers, ExpertChoiceAux: o.ExpertChoiceAux, ExpertChoiceAnneal: o.ExpertChoiceAnneal, ExpertClip: o.ExpertClip, ComputeWeight: o.ComputeWeight,
		ComputeTarget: o.ComputeTarget, ComputeRate: o.ComputeRate, TinyBudget: o.TinyBudget, TinyGain: o.TinyGain}
	if o.ComputeWeight < 0 || o.ComputeTarget < 0 || o.ComputeRate < 0 {
		return nil, fmt.Errorf("training: compute weight %v, target %v and rate %v must not be negative", o.ComputeWeight, o.ComputeTarget, o.ComputeRate)
	}
	if o.EMA < 0 || o.EMA >= 1 {
		return nil, fmt.Errorf("training: EMA decay %v is not in [0, 1)", o.EMA)
	}
	sn.allRows = o.DenseRouter
	defer func() { sn.allRows = false }()
	if o.AuxLogitScale < 0 || math.IsInf(o.AuxLogitScale, 0) || math.IsNaN(o.AuxLogitScale) {
		return nil, fmt.Errorf("training: aux logit scale %v must be a positive number (0: 1)", o.AuxLogitScale)
	}
	for l := range sn.layers {
		sn.layers[l].auxTau = float32(o.AuxLogitScale)
	}
	defer func() {
		for l := range sn.layers {
			sn.layers[l].auxTau = 0
			sn.layers[l].expertChoice = false
		}
	}()
	// The last ExpertChoiceAnneal of the steps route by token choice.
	ecUntil := 0
	if o.ExpertChoiceLayers > 0 {
		ecUntil = o.Steps - int(math.Round(o.ExpertChoiceAnneal*float64(o.Steps)))
	}
	var avg *ema
	if o.EMA > 0 {
		avg = newEMA(params, lrs, o.EMA)
	}
	L := len(sn.layers)
	ids := make([][]int, B)
	teach := make([][]float32, B)
	errs := make([]error, B)
	// Worker w takes batch entries w, w+nw, ... so that the gradient sums
	// run in the same order every time.
	each := func(fn func(w, j int)) {
		var wg sync.WaitGroup
		for w := 0; w < nw; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for j := w; j < B; j += nw {
					fn(w, j)
				}
			}(w)
		}
		wg.Wait()
	}
	for step := 0; step < o.Steps; step++ {
		ec := step < ecUntil
		if ec {
			rep.ECSteps++
		}
		for l := range sn.layers {
			sn.layers[l].expertChoice = ec && l < o.ExpertChoiceLayers && sn.layers[l].route != nil
		}
		each(func(w, j int) {
			ids[j], teach[j], errs[j] = data.get(w, (step*B+j)%data.n)
		})
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("training: %w", err)
		}
		positions := 0
		for _, s := range ids {
			positions += max(0, len(s)-1)
		}
		if positions <= 0 {
			return nil, fmt.Errorf("training: batch of %d sequences has no next-token positions", B)
		}
		scale := 1 / float32(positions)
		auxScale := 1 / float32(B*L)
		parts := make([]lossParts, B)
		for w := range gw {
			gw[w].zero()
		}
		each(func(w, j int) {
			if len(ids[j]) < 2 {
				return
			}
			if lw.kl == 0 && lw.am == 0 {
				teach[j] = nil
			}
			st := sn.forward(ids[j])
			d, lp := outputLoss(st.logits, teach[j], ids[j], V, lw, scale)
			aux := sn.backward(st, d, gw[w], lw, auxScale)
			lp.lb, lp.z, lp.ec, lp.cc, lp.routed, lp.real = aux.lb, aux.z, aux.ec, aux.cc, aux.routed, aux.real
			parts[j] = lp
		})
		var sum lossParts
		for _, p := range parts {
			sum.lm += p.lm
			sum.kl += p.kl
			sum.am += p.am
			sum.lb += p.lb
			sum.z += p.z
			sum.ec += p.ec
			sum.cc += p.cc
			sum.routed += p.routed
			if sum.real == nil {
				sum.real = make([]float64, L)
			}
			for l, v := range p.real {
				sum.real[l] += v / float64(B)
			}
		}
		loss := (o.LMWeight*sum.lm+o.KLWeight*sum.kl+o.ArgmaxWeight*sum.am)/float64(positions) + (o.LBWeight*sum.lb+o.ZWeight*sum.z+o.ExpertChoiceAux*sum.ec+float64(lw.cc)*sum.cc)/float64(B*L)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil, fmt.Errorf("training diverged at step %d (loss %v); lower --lr", step, loss)
		}
		routed := sum.routed / float64(B*L)
		if step == 0 {
			rep.FirstLoss, rep.RoutedFirst = loss, routed
		}
		rep.LastLoss, rep.RoutedLast = loss, routed
		var real float64
		tl := 0
		for l, v := range sum.real {
			if sn.layers[l].tiny > 0 {
				real += v
				tl++
			}
		}
		if tl > 0 {
			real /= float64(tl)
			if step == 0 {
				rep.RealFirst = real
			}
			rep.RealLast = real
		}
		cw := lw.cc
		g := gw[0].flat()
		for w := 1; w < nw; w++ {
			for i, s := range gw[w].flat() {
				for j, v := range s {
					g[i][j] += v
				}
			}
		}
		rep.Clipped += clipExperts(gw[0], o.ExpertClip)
		opt.step(params, g, lrFactor(step, o.Steps, o.Cosine))
		if o.ComputeTarget > 0 {
			lw.cc = float32(max(0, float64(lw.cc)+o.ComputeRate*(routed/o.ComputeTarget-1)))
		}
		rep.ComputeWeightLast = float64(lw.cc)
		if o.TinyBudget > 0 {
			for l := range sn.layers {
				if sn.layers[l].tiny > 0 {
					sn.layers[l].controlTiny(sum.real[l], o.TinyBudget, o.TinyGain)
				}
			}
		}
		if avg != nil {
			avg.update(params)
		}

		if step%10 == 0 || step == o.Steps-1 {
			ecs := ""
			switch {
			case ec && o.ExpertChoiceAux != 0:
				ecs = fmt.Sprintf(", expert choice aux %.3f", sum.ec/float64(B*L))
			case ec:
				ecs = ", expert choice"
			}
			if cw != 0 || o.ComputeTarget > 0 {
				ecs += fmt.Sprintf(", compute %.4f at weight %.3g", sum.cc/float64(B*L), cw)
			}
			ecs += fmt.Sprintf(", routed neurons %.2f", routed)
			if tl > 0 {
				ecs += fmt.Sprintf(", real experts %.3f", real)
			}
			logf("step %d/%d: loss %.4f (lm %.4f, kl %.4f, argmax %.4f, lb %.3f, z %.3f%s)", step+1, o.Steps, loss,
				sum.lm/float64(positions), sum.kl/float64(positions), sum.am/float64(positions), sum.lb/float64(B*L), sum.z/float64(B*L), ecs)
		}
	}
	if avg != nil {
		avg.store(params)
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// ema is an exponential moving average of the trained parameters after
// each step. It starts from zero and is debiased the way Adam's moments
// are, so it is a weighted mean of the steps' weights alone.
type ema struct {
	decay float64
	t     int
	sum   [][]float32 // biased average; nil for a frozen parameter
}

func newEMA(params [][]float32, lrs []float64, decay float64) *ema {
	e := &ema{decay: decay, sum: make([][]float32, len(params))}
	for i, p := range params {
		if lrs[i] != 0 {
			e.sum[i] = make([]float32, len(p))
		}
	}
	return e
}

func (e *ema) update(params [][]float32) {
	e.t++
	d := float32(e.decay)
	for i, p := range params {
		s := e.sum[i]
		for j := range s {
			s[j] = d*s[j] + (1-d)*p[j]
		}
	}
}

// store writes the debiased average into params.
func (e *ema) store(params [][]float32) {
	if e.t == 0 {
		return
	}
	c := float32(1 - math.Pow(e.decay, float64(e.t)))
	for i, p := range params {
		for j := range e.sum[i] {
			p[j] = e.sum[i][j] / c
		}
	}
}

func rms(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(max(1, len(x))))
}

// adam is the Adam optimiser over a list of parameter slices, each with its
// own learning rate (0 freezes it).
type adam struct {
	lr          []float64
	b1, b2, eps float64
	t           int
	m, v        [][]float32
}

func newAdam(params [][]float32, lr []float64) *adam {
	a := &adam{lr: lr, b1: 0.9, b2: 0.999, eps: 1e-8}
	for _, p := range params {
		a.m = append(a.m, make([]float32, len(p)))
		a.v = append(a.v, make([]float32, len(p)))
	}
	return a
}

// lrFactor is the learning-rate multiplier of step: 1, or a linear
// warm-up over the first 5 % of the steps followed by a cosine decay to 0.
func lrFactor(step, steps int, cosine bool) float64 {
	if !cosine {
		return 1
	}
	warm := max(1, steps/20)
	if step < warm {
		return float64(step+1) / float64(warm)
	}
	return 0.5 * (1 + math.Cos(math.Pi*float64(step-warm)/float64(max(1, steps-warm))))
}

func (a *adam) step(params, g [][]float32, factor float64) {
	a.t++
	c1 := 1 - math.Pow(a.b1, float64(a.t))
	c2 := 1 - math.Pow(a.b2, float64(a.t))
	b1, b2, eps := float32(a.b1), float32(a.b2), float32(a.eps)
	for i, p := range params {
		if a.lr[i] == 0 {
			continue
		}
		lr := float32(factor * a.lr[i] * math.Sqrt(c2) / c1)
		m, v, gi := a.m[i], a.v[i], g[i]
		for j := range p {
			m[j] = b1*m[j] + (1-b1)*gi[j]
			v[j] = b2*v[j] + (1-b2)*gi[j]*gi[j]
			p[j] -= lr * m[j] / (float32(math.Sqrt(float64(v[j]))) + eps)
		}
	}
}

// checkExpertChoice rejects expert-choice and clipping options that
// cannot apply to a student of L layers.
func (o *TrainOptions) checkExpertChoice(L int) error {
	if o.ExpertChoiceLayers < 0 || o.ExpertChoiceLayers > L {
		return fmt.Errorf("training: --expert-choice-layers %d outside 0..%d (the student's layers)", o.ExpertChoiceLayers, L)
	}
	if !(o.ExpertChoiceAux >= 0) || math.IsInf(o.ExpertChoiceAux, 0) {
		return fmt.Errorf("training: --expert-choice-aux %v must be a non-negative number", o.ExpertChoiceAux)
	}
	if !(o.ExpertChoiceAnneal >= 0 && o.ExpertChoiceAnneal <= 1) {
		return fmt.Errorf("training: --expert-choice-anneal %v is not a fraction in [0, 1]", o.ExpertChoiceAnneal)
	}
	if !(o.ExpertClip >= 0) || math.IsInf(o.ExpertClip, 0) {
		return fmt.Errorf("training: --expert-clip %v must be a non-negative number", o.ExpertClip)
	}
	if o.ExpertClip > 0 && !o.Experts && !o.All {
		return fmt.Errorf("training: --expert-clip %v clips the experts' gradients, but the experts are not trained (add --train-experts or --train-all)", o.ExpertClip)
	}
	return nil
}
