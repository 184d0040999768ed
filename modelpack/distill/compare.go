package distill

import (
	"errors"
	"fmt"

	"github.com/moderuntime/mode/runtime/model"
)

// Compare measures student against teacher on seqs with the held-out
// columns of a distillation report: top-1 agreement (overall and by the
// teacher's margin), KL(teacher‖student), both perplexities, parameters,
// FLOPs per token and how the student's routers used their experts. The
// student may be any model with the teacher's vocabulary — a distilled
// mixture, or a quantised pack of the teacher itself — so a student can be
// judged on text it was not distilled or held out on.
func Compare(teacher, student *model.Model, seqs [][]int, threads int) (*Report, error) {
	tc, sc := &teacher.Config, &student.Config
	if err := tc.Validate(); err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("student: %w", err)
	}
	if tc.Vocab != sc.Vocab {
		return nil, fmt.Errorf("teacher vocab %d and student vocab %d differ", tc.Vocab, sc.Vocab)
	}
	if len(seqs) == 0 {
		return nil, errors.New("no sequences to compare on")
	}
	maxSeq := min(tc.MaxSeq, sc.MaxSeq)
	for _, s := range seqs {
		if len(s) > maxSeq {
			return nil, fmt.Errorf("sequence of %d tokens is longer than the context %d", len(s), maxSeq)
		}
		for _, id := range s {
			if id < 0 || id >= tc.Vocab {
				return nil, fmt.Errorf("token id %d outside the vocab of %d", id, tc.Vocab)
			}
		}
	}
	tn, err := newNet(teacher)
	if err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	r, err := evaluate(tn, student, seqs, threads)
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
