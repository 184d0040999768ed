package distill

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
)

// TestAllExpertsEqualsTeacher: with top_k = E every neuron is used with
// weight 1, so the student computes the teacher's function; checked on the
// engine that runs the pack, for natural and balanced widths and with a
// shared expert.
func TestAllExpertsEqualsTeacher(t *testing.T) {
	teacher := denseTeacher(40)
	seqs := randomSeqs(6, 16, 97, 1)
	for _, o := range []Options{
		{Experts: 4, TopK: 4},
		{Experts: 5, TopK: 5, Balanced: true},
		{Experts: 3, TopK: 3, Shared: 7},
	} {
		student, rep, err := Distill(teacher, seqs[:4], seqs[4:], o)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Top1Agreement != 1 || rep.KL > 1e-9 {
			t.Errorf("%+v: agreement %v, KL %v", o, rep.Top1Agreement, rep.KL)
		}
		for _, ids := range seqs[4:] {
			want := testmodel.Logits(teacher, ids)
			e, err := engine.New(cpu.New(cpu.Options{Threads: 1}), student, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for p, id := range ids {
				got, err := e.Forward(context.Background(), []int{id})
				if err != nil {
					t.Fatal(err)
				}
				for i, v := range got {
					if math.Abs(float64(v)-want[p][i]) > 1e-3 {
						t.Fatalf("%+v: pos %d logit %d: student %v, teacher %v", o, p, i, v, want[p][i])
					}
				}
			}
		}
	}
}

func TestDistillReport(t *testing.T) {
	teacher := denseTeacher(48)
	seqs := randomSeqs(10, 24, 97, 2)
	for _, o := range []Options{
		{Experts: 4, TopK: 2, Seed: 3},
		{Experts: 4, TopK: 1, Balanced: true, Shared: 8, Seed: 3},
		{Experts: 4, TopK: 2, Seed: 3, Train: TrainOptions{Steps: 3, LR: 1e-3, LMWeight: 1, KLWeight: 1, LBWeight: 0.01, ZWeight: 0.001, Experts: true, Batch: 4}},
	} {
		student, rep, err := Distill(teacher, seqs[:8], seqs[8:], o)
		if err != nil {
			t.Fatal(err)
		}
		if err := student.Validate(false); err != nil {
			t.Fatal(err)
		}
		if student.Config.Arch != "mode" {
			t.Errorf("arch %q", student.Config.Arch)
		}
		if rep.HeldoutPositions != 2*23 || rep.CalibrationTokens != 8*24 {
			t.Errorf("positions %d, calibration tokens %d", rep.HeldoutPositions, rep.CalibrationTokens)
		}
		if !(rep.Top1Agreement >= 0 && rep.Top1Agreement <= 1) || !(rep.KL >= 0) ||
			!(rep.TeacherPerplexity > 1) || !(rep.StudentPerplexity > 1) {
			t.Errorf("bad held-out figures: %+v", rep)
		}
		if !(rep.FLOPsRatio > 0 && rep.FLOPsRatio < 1) || rep.ActiveParams >= rep.TotalParams {
			t.Errorf("top-%d of 4 should be cheaper than the teacher: flops %.3f, active %d of %d", o.TopK, rep.FLOPsRatio, rep.ActiveParams, rep.TotalParams)
		}
		if len(rep.Layers) != 3 {
			t.Fatalf("%d layer reports", len(rep.Layers))
		}
		for l, lr := range rep.Layers {
			sum := lr.SharedWidth
			var u float64
			for i, w := range lr.ExpertWidths {
				sum += w
				u += lr.Utilisation[i]
			}
			if sum != 48 || lr.SharedWidth != o.Shared {
				t.Errorf("layer %d: widths %v + shared %d do not cover the 48 neurons", l, lr.ExpertWidths, lr.SharedWidth)
			}
			if math.Abs(u-1) > 1e-9 || !(lr.EntropyFraction > 0 && lr.EntropyFraction <= 1+1e-9) {
				t.Errorf("layer %d: utilisation %v, entropy fraction %v", l, lr.Utilisation, lr.EntropyFraction)
			}
		}
		if (rep.Train != nil) != (o.Train.Steps > 0) {
			t.Errorf("train report %v for %d steps", rep.Train, o.Train.Steps)
		}
	}
}

func TestDistillErrors(t *testing.T) {
	teacher := denseTeacher(40)
	moe := teacher.Config
	moe.FFN = nil
	for range moe.Layers {
		moe.FFN = append(moe.FFN, model.FFN{ExpertWidths: []int{8, 8}, Router: &model.Router{Scoring: model.Softmax, TopK: 1}})
	}
	seqs := randomSeqs(4, 8, 97, 1)
	for _, tc := range []struct {
		name    string
		teacher *model.Model
		train   [][]int
		o       Options
		want    string
	}{
		{"already MoE", testmodel.Random(moe, 1), seqs, Options{Experts: 2, TopK: 1}, "already a mixture of experts"},
		{"too many experts", teacher, seqs, Options{Experts: 41, TopK: 1}, "exceed the FFN width"},
		{"shared plus experts too wide", teacher, seqs, Options{Experts: 8, TopK: 1, Shared: 33}, "exceed the FFN width"},
		{"empty calibration", teacher, [][]int{{}}, Options{Experts: 2, TopK: 1}, "no calibration tokens"},
		{"top-k above experts", teacher, seqs, Options{Experts: 4, TopK: 5}, "--top-k 5"},
		{"no experts", teacher, seqs, Options{Experts: 0, TopK: 1}, "--experts 0"},
		{"token outside vocab", teacher, [][]int{{1, 500}}, Options{Experts: 2, TopK: 1}, "outside the teacher's vocab"},
		{"residual refit without sequential", teacher, seqs, Options{Experts: 2, TopK: 1, Refit: RefitOptions{Iters: 1, Target: RefitResidual}}, "needs the sequential refit"},
		{"negative fresh", teacher, seqs, Options{Experts: 2, TopK: 1, Train: TrainOptions{Steps: 1, LR: 1, Fresh: -1}}, "fresh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Distill(tc.teacher, tc.train, seqs[:1], tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestSplitAndChunk(t *testing.T) {
	seqs := Chunk(make([]int, 101), 10)
	if len(seqs) != 10 {
		t.Fatalf("%d chunks of 101 tokens by 10, want 10 (the 1-token tail dropped)", len(seqs))
	}
	train, held, err := Split(seqs, 0.1)
	if err != nil || len(train) != 9 || len(held) != 1 {
		t.Errorf("split: %d/%d, %v", len(train), len(held), err)
	}
	if _, _, err := Split(seqs[:1], 0.1); err == nil {
		t.Error("one sequence cannot be split")
	}
	if _, _, err := Split(seqs, 1.5); err == nil {
		t.Error("holdout 1.5 accepted")
	}
}

// TestStories260K distils the reference llama2.c model from a small
// self-generated calibration set and checks the top-4 student stays close.
func TestStories260K(t *testing.T) {
	dir := shared.Models(t)
	teacher, err := llama2c.Load(filepath.Join(dir, "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := SelfGenerate(context.Background(), teacher, 40, 64, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	train, held, err := Split(seqs, 0.2)
	if err != nil {
		t.Fatal(err)
	}
	_, rep, err := Distill(teacher, train, held, Options{Experts: 8, TopK: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("top-4 of 8: agreement %.3f, KL %.3f, ppl teacher %.3f student %.3f", rep.Top1Agreement, rep.KL, rep.TeacherPerplexity, rep.StudentPerplexity)
	if rep.Top1Agreement < 0.3 || rep.TeacherPerplexity > 10 {
		t.Errorf("agreement %.3f, teacher perplexity %.3f: the pipeline is broken", rep.Top1Agreement, rep.TeacherPerplexity)
	}
}

// TestDistillArch: the deepen rule gives a second block to the experts
// with the highest calibration error, zero-initialised so that the
// untrained student's held-out figures are exactly those of the plain
// student; explicit depths and activations land in the config; training
// grows the new blocks; the report lists every expert's architecture,
// utilisation and cost, the deeper ones costing more.
func TestDistillArch(t *testing.T) {
	teacher := denseTeacher(48)
	seqs := randomSeqs(10, 24, 97, 2)
	base := Options{Experts: 4, TopK: 2, Seed: 3}
	_, plain, err := Distill(teacher, seqs[:8], seqs[8:], base)
	if err != nil {
		t.Fatal(err)
	}
	deep := base
	deep.Arch = ArchOptions{Deepen: 1, Width: 16}
	student, rep, err := Distill(teacher, seqs[:8], seqs[8:], deep)
	if err != nil {
		t.Fatal(err)
	}
	if rep.KL != plain.KL || rep.Top1Agreement != plain.Top1Agreement || rep.StudentPerplexity != plain.StudentPerplexity {
		t.Errorf("zero-initialised blocks changed the student: KL %v agreement %v perplexity %v, plain %v %v %v",
			rep.KL, rep.Top1Agreement, rep.StudentPerplexity, plain.KL, plain.Top1Agreement, plain.StudentPerplexity)
	}
	if !(rep.StudentFLOPs > plain.StudentFLOPs) {
		t.Errorf("deeper experts cost %v FLOPs per token, plain %v", rep.StudentFLOPs, plain.StudentFLOPs)
	}
	for l, lr := range rep.Layers {
		f := &student.Config.FFN[l]
		deepened, worst := 0, 0
		for e, x := range lr.Experts {
			if x.CalibError > lr.Experts[worst].CalibError {
				worst = e
			}
			if x.Deepened {
				deepened++
				if !slices.Equal(x.BlockWidths, []int{f.ExpertWidths[e], 16}) || f.Arch(e).Depth() != 2 {
					t.Errorf("layer %d expert %d: deepened, but blocks %v, config %+v", l, e, x.BlockWidths, f.Arch(e))
				}
			}
			if p, fl := expertCost(&student.Config, l, e); x.Params != p || x.FLOPs != fl || x.Params <= 0 {
				t.Errorf("layer %d expert %d: cost %d params %v FLOPs, want %d %v", l, e, x.Params, x.FLOPs, p, fl)
			}
		}
		if deepened != 1 || !lr.Experts[worst].Deepened {
			t.Errorf("layer %d: %d experts deepened, the one with the highest error (%d) deepened %v", l, deepened, worst, lr.Experts[worst].Deepened)
		}
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "(deepened)") || !strings.Contains(text.String(), "FLOPs per use") {
		t.Errorf("report text lacks the per-expert lines:\n%s", text.String())
	}

	// Explicit architectures, then training: the zero blocks must grow.
	ex := base
	ex.Arch = ArchOptions{Acts: []model.Activation{"", model.ActGELUTanh, model.ActReLU2}, Depths: []int{2, 1, 3}}
	ex.Train = TrainOptions{Steps: 3, LR: 1e-2, KLWeight: 1, Experts: true, Batch: 4}
	student, rep, err = Distill(teacher, seqs[:8], seqs[8:], ex)
	if err != nil {
		t.Fatal(err)
	}
	if err := student.Validate(false); err != nil {
		t.Fatal(err)
	}
	want := []model.ExpertArch{{Extra: []int{0}}, {Act: model.ActGELUTanh}, {Act: model.ActReLU2, Extra: []int{0, 0}}, {}}
	for l := range student.Config.FFN {
		f := &student.Config.FFN[l]
		for e, w := range want {
			a := f.Arch(e)
			if a.Activation() != w.Activation() || a.Depth() != w.Depth() {
				t.Errorf("layer %d expert %d: arch %+v, want act %s depth %d", l, e, a, w.Activation(), w.Depth())
			}
		}
		down, err := student.Weights[model.BlockName(l, 0, 1, "down")].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if slices.Max(down) == 0 && slices.Min(down) == 0 {
			t.Errorf("layer %d: the added block's down projection is still zero after training", l)
		}
	}
	if rep.Layers[0].Experts[2].Act != model.ActReLU2 || len(rep.Layers[0].Experts[2].BlockWidths) != 3 {
		t.Errorf("report expert 2: %+v", rep.Layers[0].Experts[2])
	}
	bad := base
	bad.Arch = ArchOptions{Acts: []model.Activation{"swish"}}
	if _, _, err := Distill(teacher, seqs[:8], seqs[8:], bad); err == nil || !strings.Contains(err.Error(), `"swish"`) {
		t.Errorf("activation swish: error %v", err)
	}
}
