package distill

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
)

// Report describes a student against its teacher. Held-out figures are over
// every position of the held-out sequences that has a next token.
type Report struct {
	Experts  int    `json:"experts"`
	TopK     int    `json:"top_k"`
	Balanced bool   `json:"balanced"`
	Shared   int    `json:"shared"`
	Seed     uint64 `json:"seed"`
	// Tiny echoes the tiny experts' options (the last Tiny.Experts of
	// each layer's experts); nil without them.
	Tiny *TinyOptions `json:"tiny,omitempty"`

	CalibrationTokens int `json:"calibration_tokens"`
	HeldoutPositions  int `json:"heldout_positions"`

	KL            float64 `json:"kl_teacher_student"` // mean nats per position
	Top1Agreement float64 `json:"top1_agreement"`     // student argmax == teacher argmax
	// ByMargin splits the held-out positions by the teacher's margin, its
	// top-1 minus top-2 probability: where the teacher hesitates, a small
	// error flips the greedy token.
	ByMargin          []MarginBucket `json:"agreement_by_teacher_margin"`
	TeacherPerplexity float64        `json:"teacher_perplexity"`
	StudentPerplexity float64        `json:"student_perplexity"`

	TeacherParams int64 `json:"teacher_params"`
	TotalParams   int64 `json:"total_params"`
	// ActiveParams counts the shared parts and the top_k widest experts;
	// MeanActiveParams uses the experts the held-out tokens actually chose.
	ActiveParams     int64   `json:"active_params"`
	MeanActiveParams float64 `json:"mean_active_params"`
	// FLOPs per token are multiply-adds ×2 of every matrix product plus
	// attention at the held-out sequences' mean context length.
	TeacherFLOPs float64 `json:"teacher_flops_per_token"`
	StudentFLOPs float64 `json:"student_flops_per_token"`
	FLOPsRatio   float64 `json:"flops_ratio"`

	// ExpertChoice is the held-out comparison of the same student with
	// its first TrainOptions.ExpertChoiceLayers layers routed by expert
	// choice over each sequence, as in training (non-causal: a token's
	// experts depend on later tokens), against which the figures above,
	// by token choice as at inference, measure the hand-over.
	ExpertChoice *RoutingEval `json:"expert_choice_heldout,omitempty"`

	Refit   *RefitOptions `json:"refit,omitempty"`
	Layers  []LayerReport `json:"layers"`
	Train   *TrainReport  `json:"train,omitempty"`
	Seconds float64       `json:"seconds"`
}

// RoutingEval is a student's held-out figures under another routing.
type RoutingEval struct {
	Layers            int     `json:"layers"`
	KL                float64 `json:"kl_teacher_student"`
	Top1Agreement     float64 `json:"top1_agreement"`
	StudentPerplexity float64 `json:"student_perplexity"`
}

// MarginBucket is the held-out positions whose teacher margin is in
// [From, To) and the student's top-1 agreement on them.
type MarginBucket struct {
	From      float64 `json:"from"`
	To        float64 `json:"to"`
	Positions int     `json:"positions"`
	Agreement float64 `json:"agreement"`
}

// marginEdges bound the ByMargin buckets.
var marginEdges = []float64{0, 0.05, 0.1, 0.2, 0.4, 1.0000001}

// margin returns the top-1 minus top-2 probability of log-probabilities lp.
func margin(lp []float64) float64 {
	a, b := math.Inf(-1), math.Inf(-1)
	for _, v := range lp {
		if v > a {
			a, b = v, a
		} else if v > b {
			b = v
		}
	}
	return math.Exp(a) - math.Exp(b)
}

// marginBucket returns the index of the ByMargin bucket of margin m.
func marginBucket(m float64) int {
	b := 0
	for b+2 < len(marginEdges) && m >= marginEdges[b+1] {
		b++
	}
	return b
}

// LayerReport describes one layer's experts and how the held-out tokens
// used them.
type LayerReport struct {
	ExpertWidths []int     `json:"expert_widths"`
	SharedWidth  int       `json:"shared_width"`
	Utilisation  []float64 `json:"utilisation"` // share of routed assignments per expert
	// EntropyFraction is the entropy of Utilisation over log(experts): 1 is
	// perfectly even use.
	EntropyFraction float64 `json:"entropy_fraction"`
	RouterFitTop1   float64 `json:"router_fit_top1"` // on calibration, vs the largest contributor
	// RefitErrorBefore and RefitErrorAfter are the FFN reconstruction error
	// on the calibration tokens, relative to the target's mean square,
	// before and after the least-squares refit (0 without one).
	RefitErrorBefore float64 `json:"refit_error_before,omitempty"`
	RefitErrorAfter  float64 `json:"refit_error_after,omitempty"`
	// Experts describes each routed expert.
	Experts []ExpertReport `json:"experts,omitempty"`
}

// ExpertReport is one routed expert: its architecture, its share of the
// routed assignments on the held-out text, and what one use of it costs.
type ExpertReport struct {
	Act         model.Activation `json:"act"`
	BlockWidths []int            `json:"block_widths"`
	Utilisation float64          `json:"utilisation"`
	Params      int64            `json:"params"`
	FLOPs       float64          `json:"flops_per_use"` // 2 per multiply-add, plus the later blocks' norms and adds
	// CalibError is the expert's share of the layer's FFN reconstruction
	// error on the calibration tokens routed to it, before its
	// architecture changed (distill with ArchOptions only); Deepened says
	// the "highest error gets a second block" rule chose it.
	CalibError float64 `json:"calibration_error,omitempty"`
	Deepened   bool    `json:"deepened,omitempty"`
}

// pass is one sequence run through teacher and student: their logits,
// positions × vocab, and their routing choices per layer and position (nil
// for a dense layer).
type pass struct {
	teacher, student               []float32
	teacherChoices, studentChoices [][][]routing.Choice
}

// netPasses runs sequences through the distiller's own networks, the
// student's first ecLayers layers routed by expert choice over each
// sequence (as during training) instead of by token choice.
func netPasses(tn *net, student *model.Model, ecLayers int) (func(w int, ids []int) (pass, error), error) {
	sn, err := newNet(student)
	if err != nil {
		return nil, fmt.Errorf("student: %w", err)
	}
	for l := range sn.layers {
		sn.layers[l].expertChoice = l < ecLayers && sn.layers[l].route != nil
	}
	return func(_ int, ids []int) (pass, error) {
		tt, st := tn.forward(ids), sn.forward(ids)
		p := pass{teacher: tt.logits, student: st.logits, studentChoices: make([][][]routing.Choice, len(st.layers))}
		for l := range st.layers {
			p.studentChoices[l] = st.layers[l].choices
		}
		return p, nil
	}, nil
}

// evaluate compares student with the teacher on heldout, each sequence
// run through both by run (worker w of threads).
func evaluate(teacher, c *model.Config, heldout [][]int, threads int, run func(w int, ids []int) (pass, error)) (*Report, error) {
	V, L := c.Vocab, c.Layers
	type seqStats struct {
		n, agree         int
		kl, nllT, nllS   float64
		ctx              float64
		counts           [][]float64 // [layer][expert]
		routedWidthToken float64     // summed over layers and tokens, in FLOPs/(6·dim)
		routedParams     float64     // parameters of the routed experts used, summed likewise
		routedTeacher    float64     // the same for the teacher
		tokens           int
		mPos, mAgree     []int // per margin bucket
	}
	stats := make([]seqStats, len(heldout))
	errs := make([]error, len(heldout))
	parallel(len(heldout), threads, func(w, i int) {
		ids := heldout[i]
		ps, err := run(w, ids)
		if err != nil {
			errs[i] = err
			return
		}
		s := &stats[i]
		lt, ls := make([]float64, V), make([]float64, V)
		s.mPos, s.mAgree = make([]int, len(marginEdges)-1), make([]int, len(marginEdges)-1)
		for t := 0; t+1 < len(ids); t++ {
			logSoftmax(lt, ps.teacher[t*V:(t+1)*V])
			logSoftmax(ls, ps.student[t*V:(t+1)*V])
			for j := range lt {
				s.kl += math.Exp(lt[j]) * (lt[j] - ls[j])
			}
			b := marginBucket(margin(lt))
			s.mPos[b]++
			if argmax(lt) == argmax(ls) {
				s.agree++
				s.mAgree[b]++
			}
			s.nllT -= lt[ids[t+1]]
			s.nllS -= ls[ids[t+1]]
			s.n++
		}
		s.tokens = len(ids)
		for l, cs := range ps.teacherChoices {
			for _, tc := range cs {
				for _, ch := range tc {
					s.routedTeacher += float64(teacher.FFN[l].ExpertWidths[ch.Expert])
				}
			}
		}
		s.counts = make([][]float64, L)
		for l, cs := range ps.studentChoices {
			if cs == nil {
				continue
			}
			widths := c.FFN[l].ExpertWidths
			s.counts[l] = make([]float64, len(widths))
			for _, tc := range cs {
				for _, ch := range tc {
					s.counts[l][ch.Expert]++
					p, f := expertCost(c, l, ch.Expert)
					s.routedWidthToken += f / (6 * float64(c.Dim))
					s.routedParams += float64(p)
				}
			}
		}
		for t := range ids {
			s.ctx += float64(t + 1)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r := &Report{Layers: make([]LayerReport, L)}
	for b := 0; b+1 < len(marginEdges); b++ {
		r.ByMargin = append(r.ByMargin, MarginBucket{From: marginEdges[b], To: min(1, marginEdges[b+1])})
	}
	var kl, nllT, nllS, ctx, routed, routedT, routedP float64
	agree, toks := 0, 0
	for l := range r.Layers {
		f := &c.FFN[l]
		lr := &r.Layers[l]
		lr.ExpertWidths = f.ExpertWidths
		if len(f.SharedWidths) > 0 {
			lr.SharedWidth = f.SharedWidths[0]
		}
		lr.Utilisation = make([]float64, len(f.ExpertWidths))
	}
	for _, s := range stats {
		r.HeldoutPositions += s.n
		agree += s.agree
		kl += s.kl
		nllT += s.nllT
		nllS += s.nllS
		ctx += s.ctx
		toks += s.tokens
		routed += s.routedWidthToken
		routedP += s.routedParams
		routedT += s.routedTeacher
		for b := range r.ByMargin {
			r.ByMargin[b].Positions += s.mPos[b]
			r.ByMargin[b].Agreement += float64(s.mAgree[b])
		}
		for l, cs := range s.counts {
			for e, v := range cs {
				r.Layers[l].Utilisation[e] += v
			}
		}
	}
	if r.HeldoutPositions == 0 {
		return nil, fmt.Errorf("held-out sequences have no next-token positions")
	}
	for b := range r.ByMargin {
		if p := r.ByMargin[b].Positions; p > 0 {
			r.ByMargin[b].Agreement /= float64(p)
		}
	}
	n := float64(r.HeldoutPositions)
	r.KL, r.Top1Agreement = kl/n, float64(agree)/n
	r.TeacherPerplexity, r.StudentPerplexity = math.Exp(nllT/n), math.Exp(nllS/n)
	for l := range r.Layers {
		u := r.Layers[l].Utilisation
		var sum, h float64
		for _, v := range u {
			sum += v
		}
		for e := range u {
			u[e] /= sum
			if u[e] > 0 {
				h -= u[e] * math.Log(u[e])
			}
		}
		if len(u) > 1 {
			r.Layers[l].EntropyFraction = h / math.Log(float64(len(u)))
		} else {
			r.Layers[l].EntropyFraction = 1
		}
		f := &c.FFN[l]
		for e := range u {
			p, fl := expertCost(c, l, e)
			r.Layers[l].Experts = append(r.Layers[l].Experts, ExpertReport{Act: f.Arch(e).Activation(), BlockWidths: f.BlockWidths(e),
				Utilisation: u[e], Params: p, FLOPs: fl})
		}
	}
	r.TeacherParams, _ = teacher.Params()
	r.TotalParams, r.ActiveParams = c.Params()
	meanRouted := routed / float64(toks) // routed neurons per token, all layers
	var nonRouted int64
	for _, sp := range c.Spec() {
		if sp.Expert < 0 {
			k := int64(1)
			for _, d := range sp.Shape {
				k *= int64(d)
			}
			nonRouted += k
		}
	}
	if c.TiedOutput {
		nonRouted += int64(c.Vocab) * int64(c.Dim)
	}
	r.MeanActiveParams = float64(nonRouted) + routedP/float64(toks)
	meanCtx := ctx / float64(toks)
	r.TeacherFLOPs = flops(teacher, meanCtx, routedT/float64(toks))
	r.StudentFLOPs = flops(c, meanCtx, meanRouted)
	r.FLOPsRatio = r.StudentFLOPs / r.TeacherFLOPs
	return r, nil
}

// flops estimates the floating-point operations of one token: 2 per
// multiply-add of every projection, the router, the shared FFN widths plus
// routedWidth routed neurons (summed over layers), attention over ctx
// positions and the output head.
func flops(c *model.Config, ctx, routedWidth float64) float64 {
	D := float64(c.Dim)
	var f float64
	for l := 0; l < c.Layers; l++ {
		f += 2 * D * float64(2*c.QDim()+2*c.KVDim())
		f += 4 * float64(c.QDim()) * ctx
		ffn := &c.FFN[l]
		for _, w := range ffn.SharedWidths {
			f += 6 * D * float64(w)
		}
		if ffn.Sparse() {
			f += 2 * D * float64(len(ffn.ExpertWidths))
		}
	}
	f += 6 * D * routedWidth
	f += 2 * D * float64(c.Vocab)
	return f
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	switch {
	case r.CalibrationTokens > 0:
		ew.printf("MoDE distillation: %d experts, top-%d, balanced %v, shared %d, seed %d\n", r.Experts, r.TopK, r.Balanced, r.Shared, r.Seed)
	case r.Experts > 0: // Compare
		ew.printf("student: %d experts, top-%d, shared %d\n", r.Experts, r.TopK, r.Shared)
	default:
		ew.printf("student: dense\n")
	}
	if t := r.Tiny; t != nil {
		ew.printf("tiny experts: %d per layer of width %d (the last %d of each layer), thresholds for %g real experts per token\n", t.Experts, t.Width, t.Experts, t.Budget)
	}
	if f := r.Refit; f != nil {
		ew.printf("refit: %d rounds, sequential %v, target %v, ridge %g\n", f.Iters, f.Sequential, f.Target, f.Ridge)
	}
	if r.CalibrationTokens > 0 {
		ew.printf("calibration tokens %d, held-out positions %d\n", r.CalibrationTokens, r.HeldoutPositions)
	} else {
		ew.printf("positions compared %d\n", r.HeldoutPositions)
	}
	for l, lr := range r.Layers {
		if len(lr.ExpertWidths) == 0 {
			ew.printf("layer %d: dense FFN width %d\n", l, lr.SharedWidth)
			continue
		}
		ew.printf("layer %d: widths %v shared %d, utilisation entropy %.3f of max", l, lr.ExpertWidths, lr.SharedWidth, lr.EntropyFraction)
		if r.CalibrationTokens > 0 {
			ew.printf(", router fit top-1 %.3f", lr.RouterFitTop1)
		}
		if lr.RefitErrorBefore > 0 {
			ew.printf(", FFN error %.3f -> %.3f after refit", lr.RefitErrorBefore, lr.RefitErrorAfter)
		}
		ew.printf("\n")
		for e, x := range lr.Experts {
			ew.printf("  expert %d: %s blocks %v, utilisation %.3f, %d params, %.0f FLOPs per use", e, x.Act, x.BlockWidths, x.Utilisation, x.Params, x.FLOPs)
			if x.CalibError > 0 {
				ew.printf(", calibration error share %.4f", x.CalibError)
			}
			if x.Deepened {
				ew.printf(" (deepened)")
			}
			ew.printf("\n")
		}
	}
	on := "held-out"
	if r.CalibrationTokens == 0 {
		on = "compared"
	}
	ew.printf("%s: top-1 agreement %.4f, KL(teacher||student) %.5f nats\n", on, r.Top1Agreement, r.KL)
	ew.printf("agreement by teacher margin (top-1 minus top-2 probability):")
	for _, b := range r.ByMargin {
		ew.printf(" [%.2f,%.2f) %d pos %.3f;", b.From, b.To, b.Positions, b.Agreement)
	}
	ew.printf("\n")
	ew.printf("perplexity: teacher %.4f, student %.4f\n", r.TeacherPerplexity, r.StudentPerplexity)
	ew.printf("params: teacher %d, student total %d, active %d (top-k widest), %.0f (mean used)\n",
		r.TeacherParams, r.TotalParams, r.ActiveParams, r.MeanActiveParams)
	ew.printf("FLOPs/token: teacher %.0f, student %.0f (%.3f of the teacher)\n", r.TeacherFLOPs, r.StudentFLOPs, r.FLOPsRatio)
	if t := r.Train; t != nil {
		ew.printf("training: %d steps, loss %.4f -> %.4f, %.1fs\n", t.Steps, t.FirstLoss, t.LastLoss, t.Seconds)
		data := "calibration"
		if t.Fresh {
			data = fmt.Sprintf("fresh teacher samples (%d dropped as equal to a held-out sequence)", t.Dropped)
		}
		ew.printf("training data: %d sequences, %d tokens of %s\n", t.Sequences, t.Tokens, data)
		if t.ExpertChoiceLayers > 0 {
			ew.printf("expert choice in the first %d layers for %d of %d steps (aux weight %g)\n", t.ExpertChoiceLayers, t.ECSteps, t.Steps, t.ExpertChoiceAux)
		}
		if t.ComputeWeight > 0 || t.ComputeTarget > 0 {
			ew.printf("compute loss: weight %g -> %g (target %g routed neurons, rate %g)\n", t.ComputeWeight, t.ComputeWeightLast, t.ComputeTarget, t.ComputeRate)
		}
		if t.RoutedFirst > 0 {
			ew.printf("routed neurons per token and layer: %.2f at the first step, %.2f at the last", t.RoutedFirst, t.RoutedLast)
			if t.RealFirst > 0 {
				ew.printf("; real experts %.3f -> %.3f", t.RealFirst, t.RealLast)
			}
			if t.TinyBudget > 0 {
				ew.printf(" (held at %g by the threshold control, gain %g)", t.TinyBudget, t.TinyGain)
			}
			ew.printf("\n")
		}
		if t.ExpertClip > 0 {
			ew.printf("per-expert gradient clip %g: %d expert gradients scaled down\n", t.ExpertClip, t.Clipped)
		}
	}
	if ec := r.ExpertChoice; ec != nil {
		ew.printf("held-out with expert choice in the first %d layers (as trained): top-1 agreement %.4f, KL %.5f, perplexity %.4f; token choice (inference) loses %.4f agreement\n",
			ec.Layers, ec.Top1Agreement, ec.KL, ec.StudentPerplexity, ec.Top1Agreement-r.Top1Agreement)
	}
	if r.Seconds > 0 {
		ew.printf("time %.1fs\n", r.Seconds)
	}
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
