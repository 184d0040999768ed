package distill

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestSampleSeqMatchesSelfGenerate: the fresh-sample path draws the same
// sequences as SelfGenerate for the same seed, and the logits it keeps are
// the teacher's.
func TestSampleSeqMatchesSelfGenerate(t *testing.T) {
	teacher := flatTeacher(t)
	want, err := SelfGenerate(context.Background(), teacher, 3, 12, 9, 1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(cpu.New(cpu.Options{Threads: 1}), teacher, engine.Options{MaxSeq: 12})
	if err != nil {
		t.Fatal(err)
	}
	tn := mustNet(t, teacher)
	V := teacher.Config.Vocab
	for i, w := range want {
		ids, logits, err := sampleSeq(e, &teacher.Config, 12, 9*1000003+uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, w) {
			t.Fatalf("sequence %d: sampleSeq %v, SelfGenerate %v", i, ids, w)
		}
		ref := tn.forward(ids).logits
		for j := 0; j < (len(ids)-1)*V; j++ {
			if math.Abs(float64(logits[j]-ref[j])) > 1e-3 {
				t.Fatalf("sequence %d: logit %d: kept %v, teacher %v", i, j, logits[j], ref[j])
			}
		}
	}
}

// flatTeacher is denseTeacher with its logits scaled down so that samples
// vary (the random model is nearly deterministic) and without an EOS token,
// so every sample runs to its full length.
func flatTeacher(t *testing.T) *model.Model {
	m := denseTeacher(40)
	m.Config.EOS = nil
	w, err := m.Weights[model.NameFinalNorm].Float32s()
	if err != nil {
		t.Fatal(err)
	}
	for i := range w {
		w[i] *= 0.05
	}
	m.Weights[model.NameFinalNorm] = tensor.FromF32(model.NameFinalNorm, []int{len(w)}, w)
	return m
}

// TestFreshTrainingSkipsHeldout: fresh training samples come from their
// own seed stream, and a sample that equals a held-out sequence is dropped
// rather than trained on. The held-out set here is made of exactly the
// first fresh samples, so they must all be dropped.
func TestFreshTrainingSkipsHeldout(t *testing.T) {
	teacher := flatTeacher(t)
	const seed = 4
	calib, err := SelfGenerate(context.Background(), teacher, 6, 16, seed, 1)
	if err != nil {
		t.Fatal(err)
	}
	clash, err := SelfGenerate(context.Background(), teacher, 2, 16, seed+freshSeedOffset, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calib {
		for _, h := range clash {
			if slices.Equal(c, h) {
				t.Fatalf("a calibration sequence equals a fresh one: the seed streams overlap\n%v\n%v", calib, clash)
			}
		}
	}
	o := Options{Experts: 4, TopK: 2, Seed: seed, Threads: 2,
		Train: TrainOptions{Steps: 3, LR: 1e-3, KLWeight: 1, Experts: true, Batch: 4, Fresh: 10}}
	_, rep, err := Distill(teacher, calib, clash, o)
	if err != nil {
		t.Fatal(err)
	}
	tr := rep.Train
	if tr == nil || !tr.Fresh || tr.Dropped != 2 || tr.Sequences != 10 || tr.Tokens != 8*16 {
		t.Fatalf("train report %+v: want 10 fresh samples of which the 2 held-out ones dropped", tr)
	}
}

// TestTrainOptions: KL-only fresh training lowers the loss; a negative
// router learning rate freezes the routers; a relative one moves them by a
// small fraction of their size; --train-all changes attention and norms, and
// the stored student computes what the trained network does.
func TestTrainOptions(t *testing.T) {
	teacher := denseTeacher(40)
	seqs := randomSeqs(10, 16, 97, 3)
	student, _, err := Distill(teacher, seqs[:8], seqs[8:], Options{Experts: 4, TopK: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	tn := mustNet(t, teacher)
	quiet := func(string, ...any) {}
	routers := func(n *net) [][]float32 {
		var r [][]float32
		for _, ly := range n.layers {
			r = append(r, slices.Clone(ly.router))
		}
		return r
	}
	base := TrainOptions{Steps: 20, LR: 3e-3, Cosine: true, KLWeight: 1, Experts: true, Batch: 4}

	t.Run("kl only lowers the loss", func(t *testing.T) {
		sn := mustNet(t, student)
		rep, err := trainNet(sn, tn, seqs[:8], base, 2, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if !(rep.LastLoss < rep.FirstLoss) || rep.LMWeight != 0 {
			t.Errorf("loss %.4f -> %.4f", rep.FirstLoss, rep.LastLoss)
		}
	})
	t.Run("frozen routers", func(t *testing.T) {
		sn := mustNet(t, student)
		before := routers(sn)
		o := base
		o.RouterLR = -1
		if _, err := trainNet(sn, tn, seqs[:8], o, 2, quiet); err != nil {
			t.Fatal(err)
		}
		for l, r := range routers(sn) {
			if !slices.Equal(r, before[l]) {
				t.Errorf("layer %d: router changed while frozen", l)
			}
		}
	})
	t.Run("relative router steps", func(t *testing.T) {
		sn := mustNet(t, student)
		before := routers(sn)
		o := base
		o.RouterLR = 0.01
		if _, err := trainNet(sn, tn, seqs[:8], o, 2, quiet); err != nil {
			t.Fatal(err)
		}
		for l, r := range routers(sn) {
			var d, s float64
			for i, v := range r {
				d += math.Abs(float64(v - before[l][i]))
				s += math.Abs(float64(before[l][i]))
			}
			if !(d > 0 && d < 0.5*s) {
				t.Errorf("layer %d: router moved by %.3g of its size %.3g", l, d, s)
			}
		}
		// An absolute step of LR moves the tiny fitted router far beyond its size.
		sn = mustNet(t, student)
		if _, err := trainNet(sn, tn, seqs[:8], base, 2, quiet); err != nil {
			t.Fatal(err)
		}
		var d, s float64
		for i, v := range sn.layers[0].router {
			d += math.Abs(float64(v - before[0][i]))
			s += math.Abs(float64(before[0][i]))
		}
		if !(d > 10*s) {
			t.Errorf("absolute router steps moved layer 0's router by only %.3g of its size %.3g", d, s)
		}
	})
	t.Run("dense router gradients", func(t *testing.T) {
		sn := mustNet(t, student)
		o := base
		o.RouterLR, o.DenseRouter = 0.01, true
		rep, err := trainNet(sn, tn, seqs[:8], o, 2, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.DenseRouter || !(rep.LastLoss < rep.FirstLoss) {
			t.Errorf("report dense_router %v, loss %.4f -> %.4f", rep.DenseRouter, rep.FirstLoss, rep.LastLoss)
		}
		if sn.allRows {
			t.Error("the network still runs skipped experts after training")
		}
	})
	t.Run("train all", func(t *testing.T) {
		sn := mustNet(t, student)
		wq, norm := slices.Clone(sn.layers[1].wq), slices.Clone(sn.layers[2].attnNorm)
		o := base
		o.All, o.Experts = true, false
		if _, err := trainNet(sn, tn, seqs[:8], o, 2, quiet); err != nil {
			t.Fatal(err)
		}
		if slices.Equal(wq, sn.layers[1].wq) || slices.Equal(norm, sn.layers[2].attnNorm) {
			t.Error("attention weights or norms did not change")
		}
		m := &model.Model{Config: student.Config, Weights: model.Weights{}}
		for k, v := range student.Weights {
			m.Weights[k] = v
		}
		sn.store(m, trainScope{all: true})
		if err := m.Validate(false); err != nil {
			t.Fatal(err)
		}
		ids := seqs[9]
		matchesReference(t, sn.forward(ids).logits, m, ids)
	})
}

// TestEMA: the stored average is the debiased exponential mean of the
// weights after each step; frozen parameters are left alone; a decay
// outside [0, 1) is refused.
func TestEMA(t *testing.T) {
	p := [][]float32{{0, 0}, {5}}
	e := newEMA(p, []float64{1, 0}, 0.5)
	steps := [][]float32{{1, 10}, {2, 20}, {4, 40}}
	for _, s := range steps {
		copy(p[0], s)
		p[1][0]++ // a frozen parameter is never averaged, whatever happens to it
		e.update(p)
	}
	e.store(p)
	// Weights 0.25, 0.5, 1 for steps 1..3 (decay 0.5), normalised by 1.75.
	want := []float32{(0.25*1 + 0.5*2 + 4) / 1.75, (0.25*10 + 0.5*20 + 40) / 1.75}
	for i := range want {
		if math.Abs(float64(p[0][i]-want[i])) > 1e-5 {
			t.Errorf("average[%d] = %v, want %v", i, p[0][i], want[i])
		}
	}
	if p[1][0] != 8 {
		t.Errorf("frozen parameter = %v, want 8 (untouched by store)", p[1][0])
	}

	teacher := denseTeacher(40)
	seqs := randomSeqs(6, 16, 97, 3)
	student, _, err := Distill(teacher, seqs[:4], seqs[4:], Options{Experts: 4, TopK: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []float64{-0.1, 1} {
		_, err := trainNet(mustNet(t, student), mustNet(t, teacher), seqs[:4], TrainOptions{Steps: 2, LR: 1e-3, KLWeight: 1, EMA: d}, 1, func(string, ...any) {})
		if err == nil || !strings.Contains(err.Error(), "EMA") {
			t.Errorf("EMA %v: error %v, want one naming the EMA decay", d, err)
		}
	}
}
