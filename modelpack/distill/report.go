package distill

import (
	"fmt"
	"io"
	"math"

	"github.com/moderuntime/mode/runtime/model"
)

// Report describes a student against its teacher. Held-out figures are over
// every position of the held-out sequences that has a next token.
type Report struct {
	Experts  int    `json:"experts"`
	TopK     int    `json:"top_k"`
	Balanced bool   `json:"balanced"`
	Shared   int    `json:"shared"`
	Seed     uint64 `json:"seed"`

	CalibrationTokens int `json:"calibration_tokens"`
	HeldoutPositions  int `json:"heldout_positions"`

	KL                float64 `json:"kl_teacher_student"` // mean nats per position
	Top1Agreement     float64 `json:"top1_agreement"`     // student argmax == teacher argmax
	TeacherPerplexity float64 `json:"teacher_perplexity"`
	StudentPerplexity float64 `json:"student_perplexity"`

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

	Layers  []LayerReport `json:"layers"`
	Train   *TrainReport  `json:"train,omitempty"`
	Seconds float64       `json:"seconds"`
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
}

// evaluate compares student with the teacher on heldout.
func evaluate(tn *net, student *model.Model, heldout [][]int, threads int) (*Report, error) {
	sn, err := newNet(student)
	if err != nil {
		return nil, fmt.Errorf("student: %w", err)
	}
	c := &student.Config
	V, L := c.Vocab, c.Layers
	type seqStats struct {
		n, agree         int
		kl, nllT, nllS   float64
		ctx              float64
		counts           [][]float64 // [layer][expert]
		routedWidthToken float64     // summed over layers and tokens
		tokens           int
	}
	stats := make([]seqStats, len(heldout))
	parallel(len(heldout), threads, func(_, i int) {
		ids := heldout[i]
		tt, st := tn.forward(ids), sn.forward(ids)
		s := &stats[i]
		lt, ls := make([]float64, V), make([]float64, V)
		for t := 0; t+1 < len(ids); t++ {
			logSoftmax(lt, tt.logits[t*V:(t+1)*V])
			logSoftmax(ls, st.logits[t*V:(t+1)*V])
			for j := range lt {
				s.kl += math.Exp(lt[j]) * (lt[j] - ls[j])
			}
			if argmax(lt) == argmax(ls) {
				s.agree++
			}
			s.nllT -= lt[ids[t+1]]
			s.nllS -= ls[ids[t+1]]
			s.n++
		}
		for t := range ids {
			s.ctx += float64(t + 1)
		}
		s.tokens = len(ids)
		s.counts = make([][]float64, L)
		for l := range st.layers {
			s.counts[l] = make([]float64, len(sn.layers[l].experts))
			for _, cs := range st.layers[l].choices {
				for _, ch := range cs {
					s.counts[l][ch.Expert]++
					s.routedWidthToken += float64(sn.layers[l].experts[ch.Expert].width)
				}
			}
		}
	})
	r := &Report{Layers: make([]LayerReport, L)}
	var kl, nllT, nllS, ctx, routed float64
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
		for l, cs := range s.counts {
			for e, v := range cs {
				r.Layers[l].Utilisation[e] += v
			}
		}
	}
	if r.HeldoutPositions == 0 {
		return nil, fmt.Errorf("held-out sequences have no next-token positions")
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
	}
	r.TeacherParams, _ = tn.cfg.Params()
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
	r.MeanActiveParams = float64(nonRouted) + 3*float64(c.Dim)*meanRouted
	meanCtx := ctx / float64(toks)
	r.TeacherFLOPs = flops(&tn.cfg, meanCtx, 0)
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
	ew.printf("MoDE distillation: %d experts, top-%d, balanced %v, shared %d, seed %d\n", r.Experts, r.TopK, r.Balanced, r.Shared, r.Seed)
	ew.printf("calibration tokens %d, held-out positions %d\n", r.CalibrationTokens, r.HeldoutPositions)
	for l, lr := range r.Layers {
		ew.printf("layer %d: widths %v shared %d, utilisation entropy %.3f of max, router fit top-1 %.3f\n",
			l, lr.ExpertWidths, lr.SharedWidth, lr.EntropyFraction, lr.RouterFitTop1)
	}
	ew.printf("held-out: top-1 agreement %.4f, KL(teacher||student) %.5f nats\n", r.Top1Agreement, r.KL)
	ew.printf("perplexity: teacher %.4f, student %.4f\n", r.TeacherPerplexity, r.StudentPerplexity)
	ew.printf("params: teacher %d, student total %d, active %d (top-k widest), %.0f (mean used)\n",
		r.TeacherParams, r.TotalParams, r.ActiveParams, r.MeanActiveParams)
	ew.printf("FLOPs/token: teacher %.0f, student %.0f (%.3f of the teacher)\n", r.TeacherFLOPs, r.StudentFLOPs, r.FLOPsRatio)
	if t := r.Train; t != nil {
		ew.printf("training: %d steps, loss %.4f -> %.4f, %.1fs\n", t.Steps, t.FirstLoss, t.LastLoss, t.Seconds)
	}
	ew.printf("time %.1fs\n", r.Seconds)
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
