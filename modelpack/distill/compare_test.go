package distill

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestCompare: comparing a student on the held-out sequences reproduces
// the distillation report's held-out columns; the teacher against itself
// agrees everywhere with zero KL; a quantised teacher is a dense student
// that loses a little; bad input is refused with a clear error.
func TestCompare(t *testing.T) {
	teacher := denseTeacher(40)
	seqs := randomSeqs(12, 16, 97, 5)
	train, held := seqs[:9], seqs[9:]
	student, rep, err := Distill(teacher, train, held, Options{Experts: 4, TopK: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Compare(teacher, student, held, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Compare runs the runtime's engine, the report the distiller's own
	// network: the same numbers up to float32 summation order.
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-5*math.Abs(b) }
	if got.Top1Agreement != rep.Top1Agreement || !close(got.KL, rep.KL) || !close(got.StudentPerplexity, rep.StudentPerplexity) ||
		got.HeldoutPositions != rep.HeldoutPositions || got.FLOPsRatio != rep.FLOPsRatio {
		t.Errorf("Compare %+v\ndiffers from the distillation report %+v", got, rep)
	}
	for l := range rep.Layers {
		if !slices.Equal(got.Layers[l].Utilisation, rep.Layers[l].Utilisation) {
			t.Errorf("layer %d: utilisation %v, report %v", l, got.Layers[l].Utilisation, rep.Layers[l].Utilisation)
		}
	}
	if got.Experts != 4 || got.TopK != 2 {
		t.Errorf("Compare found %d experts top-%d, want 4 top-2", got.Experts, got.TopK)
	}
	var b strings.Builder
	if err := got.WriteText(&b); err != nil || !strings.Contains(b.String(), "student: 4 experts, top-2") {
		t.Errorf("report text %q (err %v)", b.String(), err)
	}

	self, err := Compare(teacher, teacher, held, 2)
	if err != nil {
		t.Fatal(err)
	}
	if self.Top1Agreement != 1 || self.KL > 1e-6 || self.FLOPsRatio != 1 {
		t.Errorf("teacher vs itself: agreement %v, KL %v, FLOPs ratio %v", self.Top1Agreement, self.KL, self.FLOPsRatio)
	}

	q := &model.Model{Config: teacher.Config, Weights: model.Weights{}}
	for name, w := range teacher.Weights {
		if len(w.Shape) == 2 && tensor.CanQuantize(tensor.Q4_0, w.Cols()) {
			if w, err = tensor.Quantize(w, tensor.Q4_0); err != nil {
				t.Fatal(err)
			}
		}
		q.Weights[name] = w
	}
	qr, err := Compare(teacher, q, held, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !(qr.KL > 0 && qr.KL < self.KL+0.1 && qr.Top1Agreement > 0.5) {
		t.Errorf("q4_0 teacher: agreement %v, KL %v", qr.Top1Agreement, qr.KL)
	}
	b.Reset()
	if err := qr.WriteText(&b); err != nil || !strings.Contains(b.String(), "student: dense") || !strings.Contains(b.String(), "dense FFN width 40") {
		t.Errorf("dense report text %q (err %v)", b.String(), err)
	}

	// A mixture teacher with QK-norm (beyond what the distiller's network
	// handles) against itself: its routed experts count in its FLOPs.
	moe := testmodel.Random(testmodel.Family("olmoe", false), 4)
	ms := randomSeqs(3, 12, moe.Config.Vocab, 6)
	mr, err := Compare(moe, moe, ms, 2)
	if err != nil {
		t.Fatal(err)
	}
	if mr.Top1Agreement != 1 || mr.KL > 1e-6 || mr.FLOPsRatio != 1 || mr.Experts == 0 {
		t.Errorf("olmoe vs itself: agreement %v, KL %v, FLOPs ratio %v, %d experts", mr.Top1Agreement, mr.KL, mr.FLOPsRatio, mr.Experts)
	}

	oc := testmodel.Config(32, 1, 4, 2, 50)
	oc.FFN = []model.FFN{{SharedWidths: []int{40}}}
	other := testmodel.Random(oc, 3)
	for _, tc := range []struct {
		name    string
		student *model.Model
		seqs    [][]int
		want    string
	}{
		{"vocab", other, held, "vocab 97 and student vocab 50"},
		{"no sequences", student, nil, "no sequences"},
		{"token outside vocab", student, [][]int{{1, 2, 97}}, "token id 97"},
		{"too long", student, [][]int{make([]int, teacher.Config.MaxSeq+1)}, "longer than the context"},
	} {
		if _, err := Compare(teacher, tc.student, tc.seqs, 1); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
