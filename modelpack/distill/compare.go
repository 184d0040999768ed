package distill

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
)

// Compare measures student against teacher on seqs with the held-out
// columns of a distillation report: top-1 agreement (overall and by the
// teacher's margin), KL(teacher‖student), both perplexities, parameters,
// FLOPs per token and how the student's routers used their experts. Both
// run on the runtime's CPU engine, quantised weights computed from their
// blocks as `mode run` does, so any pair of models with one vocabulary
// can be compared: a distilled mixture with its teacher, or a quantised
// pack with its f32 source, on text neither was fitted to.
func Compare(teacher, student *model.Model, seqs [][]int, threads int) (*Report, error) {
	tc, sc := &teacher.Config, &student.Config
	if err := teacher.Validate(false); err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	if err := student.Validate(false); err != nil {
		return nil, fmt.Errorf("student: %w", err)
	}
	if tc.Vocab != sc.Vocab {
		return nil, fmt.Errorf("teacher vocab %d and student vocab %d differ", tc.Vocab, sc.Vocab)
	}
	if len(seqs) == 0 {
		return nil, errors.New("no sequences to compare on")
	}
	if err := checkSeqs(seqs, min(tc.MaxSeq, sc.MaxSeq), tc.Vocab, "the"); err != nil {
		return nil, err
	}
	nw := workers(len(seqs), threads)
	ts, ss := make([]*decoder, nw), make([]*decoder, nw)
	for w := range nw {
		var err error
		if ts[w], err = newDecoder(teacher); err != nil {
			return nil, fmt.Errorf("teacher: %w", err)
		}
		if ss[w], err = newDecoder(student); err != nil {
			return nil, fmt.Errorf("student: %w", err)
		}
	}
	r, err := evaluate(tc, sc, seqs, nw, func(w int, ids []int) (pass, error) {
		var p pass
		var err error
		if p.teacher, p.teacherChoices, err = ts[w].run(ids); err != nil {
			return p, fmt.Errorf("teacher: %w", err)
		}
		if p.student, p.studentChoices, err = ss[w].run(ids); err != nil {
			return p, fmt.Errorf("student: %w", err)
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	for _, f := range sc.FFN {
		if f.Sparse() {
			r.Experts, r.TopK = len(f.ExpertWidths), f.Router.TopK
			if len(f.SharedWidths) > 0 {
				r.Shared = f.SharedWidths[0]
			}
			break
		}
	}
	return r, nil
}

// decoder feeds a sequence through a single-threaded engine one token at a
// time, keeping the logits after every token and the routing decisions.
type decoder struct {
	e       *engine.Engine
	vocab   int
	choices [][][]routing.Choice // [layer][position]
}

func newDecoder(m *model.Model) (*decoder, error) {
	d := &decoder{vocab: m.Config.Vocab, choices: make([][][]routing.Choice, m.Config.Layers)}
	e, err := engine.New(cpu.New(cpu.Options{Threads: 1}), m, engine.Options{Trace: func(l, _ int, r [][]routing.Choice) {
		for _, c := range r {
			d.choices[l] = append(d.choices[l], slices.Clone(c))
		}
	}})
	if err != nil {
		return nil, err
	}
	d.e = e
	return d, nil
}

// run returns the logits after each token of ids (positions × vocab) and
// the routing decisions per layer and position (nil for a dense layer).
func (d *decoder) run(ids []int) ([]float32, [][][]routing.Choice, error) {
	d.e.Reset()
	for l := range d.choices {
		d.choices[l] = nil
	}
	logits := make([]float32, 0, len(ids)*d.vocab)
	for _, id := range ids {
		l, err := d.e.Forward(context.Background(), []int{id})
		if err != nil {
			return nil, nil, err
		}
		logits = append(logits, l...)
	}
	out := make([][][]routing.Choice, len(d.choices))
	copy(out, d.choices)
	return logits, out, nil
}
