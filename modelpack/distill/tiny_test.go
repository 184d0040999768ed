package distill

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
)

// TestComputeBack checks the compute-aware loss and its logit gradients by
// hand: one token, experts costing 10, 10 and 1 neurons (mean 7), scores
// 0.5, 0.3, 0.2 at tau 2 and weight 0.5.
func TestComputeBack(t *testing.T) {
	scores := []float32{0.5, 0.3, 0.2}
	dl := []float32{1, 0, 0}
	L := computeBack(scores, []float64{10, 10, 1}, dl, 1, 3, 2, 0.5)
	rel := []float64{10.0 / 7, 10.0 / 7, 1.0 / 7}
	var want float64
	for e, p := range scores {
		want += float64(p) * rel[e]
	}
	if math.Abs(L-want) > 1e-6 {
		t.Errorf("loss %v, want %v", L, want)
	}
	for e, p := range scores {
		g := 0.5 * 2 * float64(p) * (rel[e] - want)
		if e == 0 {
			g++ // what dl held before
		}
		if math.Abs(float64(dl[e])-g) > 1e-6 {
			t.Errorf("expert %d: logit gradient %v, want %v", e, dl[e], g)
		}
	}
	if !(dl[2] < 0) {
		t.Errorf("the cheap expert's logit gradient %v should be negative (descent raises its logit)", dl[2])
	}
}

// TestComputeLossGradients checks the compute-aware router loss's gradient
// against central finite differences of the loss, in a student whose
// routed pool has tiny experts (widths 1 and 2 beside 8, 16, 12, 4) and
// top-3 routing, at an aux logit scale where the softmax is far from
// uniform: for the routers (whose gradient it changes most), and for the
// weights upstream of the routers (ffn norm, wq), which it reaches through
// the routers' input gradient. Bound: 2% relative, as
// TestGradientsMatchFiniteDifferences. (Seed 11: no finite-difference step
// flips a top-k selection, where the loss is not differentiable; seed 17
// does for wq of layer 0.)
func TestComputeLossGradients(t *testing.T) {
	teacher := denseTeacher(40)
	cfg := moeConfig(teacher.Config)
	for l := range cfg.FFN {
		cfg.FFN[l].ExpertWidths = []int{8, 16, 12, 4, 1, 2}
		cfg.FFN[l].Router.TopK, cfg.FFN[l].Router.ScalingFactor = 3, 3
	}
	sn := mustNet(t, testmodel.Random(cfg, 23))
	ids := randomSeqs(1, 10, cfg.Vocab, 4)[0]
	tl := mustNet(t, teacher).forward(ids).logits
	for l := range sn.layers {
		sn.layers[l].auxTau = 30
	}
	lw := lossWeights{kl: 1, am: 0.3, lb: 0.2, cc: 0.7}
	var pass lossPass
	loss := fullLoss(sn, ids, tl, cfg.Vocab, &lw, &pass)
	sc := trainScope{experts: true, all: true}
	g := newGrads(sn, sc)
	loss(g)
	if !(pass.aux.cc > 0) || pass.aux.routed <= 0 {
		t.Fatalf("compute loss %v, routed neurons %v", pass.aux.cc, pass.aux.routed)
	}
	// The compute term moves the routers' gradients.
	plain := newGrads(sn, sc)
	lwc := lw
	lw.cc = 0
	loss(plain)
	lw = lwc
	if slices.Equal(plain.router[0], g.router[0]) {
		t.Fatal("the compute loss did not change the router gradient")
	}
	scratch := newGrads(sn, sc)
	params, flat := sn.params(sc), g.flat()
	index := func(p []float32) int { return paramIndex(t, params, p) }
	cases := []struct {
		name string
		p    []float32
	}{
		{"router layer 0", sn.layers[0].router},
		{"router layer 1", sn.layers[1].router},
		{"router layer 2", sn.layers[2].router},
		{"ffn norm layer 1", sn.layers[1].ffnNorm},
		{"wq layer 0", sn.layers[0].wq},
		{"tiny expert gate layer 2", sn.layers[2].experts[4].gate},
		{"tiny expert down layer 1", sn.layers[1].experts[5].down},
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			i := index(c.p)
			checkDirectional(t, r, params[i], flat[i], 1e-3, func() float64 { return loss(scratch) })
		})
	}
}

// TestRealCount: a token uses the real experts at or above the tiny
// experts' logit, at least k − K and at most k.
func TestRealCount(t *testing.T) {
	logits := []float32{0.5, 0.1, 0.3, -0.2}
	for _, c := range []struct {
		th      float32
		k, K, n int
	}{
		{0.2, 3, 2, 2},
		{0.6, 3, 2, 1}, // none above, but only two tiny slots
		{0.6, 3, 3, 0},
		{-1, 3, 2, 3},
		{0.3, 4, 4, 2}, // a tie goes to the real expert
	} {
		if got := realCount(logits, c.th, c.k, c.K); got != c.n {
			t.Errorf("threshold %v, top-%d, %d tiny: %d real experts, want %d", c.th, c.k, c.K, got, c.n)
		}
	}
}

// TestDistillTiny: with tiny experts the student has E+K experts per
// layer, the tiny ones of the given width with a zero down projection
// (they add nothing before training), the thresholds give the calibration tokens the budget
// of real experts on average (never more), top-k routing then uses the
// tiny experts on the held-out tokens, and a short training with the
// compute loss runs and reports the routed cost.
func TestDistillTiny(t *testing.T) {
	teacher := denseTeacher(48)
	seqs := randomSeqs(10, 24, 97, 2)
	o := Options{Experts: 4, TopK: 3, Balanced: true, Seed: 3, Tiny: TinyOptions{Experts: 2, Width: 2, Budget: 1.5},
		Refit: RefitOptions{Iters: 1, Sequential: true}}
	student, rep, err := Distill(teacher, seqs[:8], seqs[8:], o)
	if err != nil {
		t.Fatal(err)
	}
	if err := student.Validate(false); err != nil {
		t.Fatal(err)
	}
	if rep.Tiny == nil || rep.Tiny.Experts != 2 || rep.Tiny.Width != 2 || rep.Tiny.Budget != 1.5 {
		t.Errorf("report's tiny options %+v", rep.Tiny)
	}
	sn := mustNet(t, student)
	var used float64
	for l, f := range student.Config.FFN {
		if want := []int{12, 12, 12, 12, 2, 2}; !slices.Equal(f.ExpertWidths, want) {
			t.Fatalf("layer %d: expert widths %v, want %v", l, f.ExpertWidths, want)
		}
		for e := 4; e < 6; e++ {
			if slices.ContainsFunc(sn.layers[l].experts[e].down, func(v float32) bool { return v != 0 }) {
				t.Errorf("layer %d: tiny expert %d's down projection is not zero", l, e)
			}
			used += rep.Layers[l].Utilisation[e]
		}
		// Calibration tokens of this layer (the student's own hidden
		// states): the mean number of real experts stays within budget.
		var n, real float64
		for _, ids := range seqs[:8] {
			tr := sn.forward(ids)
			for _, cs := range tr.layers[l].choices {
				n++
				for _, ch := range cs {
					if ch.Expert < 4 {
						real++
					}
				}
			}
		}
		if m := real / n; m > 1.5+0.25 || m < 1 {
			t.Errorf("layer %d: %.3f real experts per calibration token, budget 1.5", l, m)
		}
	}
	if !(used > 0) {
		t.Error("no held-out token used a tiny expert")
	}
	// A 3-step training with the compute loss on scaled logits.
	o.Train = TrainOptions{Steps: 3, LR: 1e-3, KLWeight: 1, Experts: true, Batch: 4, AuxLogitScale: 1e4, ComputeWeight: 0.1}
	_, rep, err = Distill(teacher, seqs[:8], seqs[8:], o)
	if err != nil {
		t.Fatal(err)
	}
	if tr := rep.Train; tr == nil || tr.ComputeWeight != 0.1 || !(tr.RoutedFirst > 0) || !(tr.RoutedLast > 0) || math.Abs(tr.ComputeWeightLast-0.1) > 1e-6 {
		t.Errorf("train report %+v", rep.Train)
	}
	// The multiplier: routing above the target raises the weight after
	// every step, below it lowers it to no less than 0.
	for _, c := range []struct {
		target float64
		up     bool
	}{{1, true}, {1000, false}} {
		o.Train.ComputeTarget, o.Train.ComputeRate = c.target, 0.01
		_, rep, err = Distill(teacher, seqs[:8], seqs[8:], o)
		if err != nil {
			t.Fatal(err)
		}
		w := rep.Train.ComputeWeightLast
		if c.up && !(w > 0.1) || !c.up && !(w < 0.1 && w >= 0) {
			t.Errorf("target %v (routed %v): weight 0.1 became %v", c.target, rep.Train.RoutedLast, w)
		}
	}
}

// TestTinyOptionsCheck: budgets outside what top-k can give are refused.
func TestTinyOptionsCheck(t *testing.T) {
	teacher := denseTeacher(48)
	seqs := randomSeqs(4, 8, 97, 2)
	for _, o := range []Options{
		{Experts: 4, TopK: 3, Tiny: TinyOptions{Experts: 1, Budget: 1.5}}, // at least 2 real
		{Experts: 4, TopK: 3, Tiny: TinyOptions{Experts: 2, Budget: 3.5}},
		{Experts: 4, TopK: 7, Tiny: TinyOptions{Experts: 2}},
		{Experts: 4, TopK: 2, Tiny: TinyOptions{Experts: -1}},
		{Experts: 4, TopK: 2, Tiny: TinyOptions{Experts: 1}, Arch: ArchOptions{Deepen: 1}},
	} {
		if _, _, err := Distill(teacher, seqs[:2], seqs[2:], o); err == nil {
			t.Errorf("%+v: no error", o.Tiny)
		}
	}
}

// TestControlTiny: a batch above the budget raises the threshold, one
// below lowers it, and the tiny rows become τ times the sum of the real
// rows whatever training did to them.
func TestControlTiny(t *testing.T) {
	ly := &layer{experts: make([]expert, 4), tiny: 2, tinyTau: 0.5,
		router: []float32{1, 2, 3, 4, 9, 9, 9, 9}} // 4 experts × dim 2
	ly.controlTiny(2.5, 2, 0.1) // τ 0.5 + 0.1·0.5 = 0.55
	want := []float32{1, 2, 3, 4, 0.55 * 4, 0.55 * 6, 0.55 * 4, 0.55 * 6}
	for i, v := range ly.router {
		if math.Abs(float64(v-want[i])) > 1e-6 {
			t.Fatalf("router %v, want %v", ly.router, want)
		}
	}
	ly.controlTiny(1, 2, 0.1)
	if math.Abs(float64(ly.tinyTau)-0.45) > 1e-6 {
		t.Errorf("τ %v after a batch below budget, want 0.45", ly.tinyTau)
	}
}

// TestTrainTinyControl: training with the threshold control stores tiny
// router rows equal to a multiple of the sum of the real rows, and reports
// the real experts per token.
func TestTrainTinyControl(t *testing.T) {
	teacher := denseTeacher(48)
	seqs := randomSeqs(10, 24, 97, 2)
	o := Options{Experts: 4, TopK: 3, Balanced: true, Seed: 3, Tiny: TinyOptions{Experts: 2, Budget: 1.5},
		Train: TrainOptions{Steps: 4, LR: 1e-2, KLWeight: 1, All: true, Batch: 4, TinyBudget: 1.5, TinyGain: 0.05}}
	student, rep, err := Distill(teacher, seqs[:8], seqs[8:], o)
	if err != nil {
		t.Fatal(err)
	}
	if tr := rep.Train; !(tr.RealFirst >= 1 && tr.RealFirst <= 3) || !(tr.RealLast >= 1 && tr.RealLast <= 3) || tr.TinyBudget != 1.5 {
		t.Errorf("train report %+v", tr)
	}
	sn := mustNet(t, student)
	D := student.Config.Dim
	for l, ly := range sn.layers {
		sum := make([]float64, D)
		for e := 0; e < 4; e++ {
			for i := range sum {
				sum[i] += float64(ly.router[e*D+i])
			}
		}
		// τ from the first coordinate, then every coordinate must match.
		tau := float64(ly.router[4*D]) / sum[0]
		for e := 4; e < 6; e++ {
			for i := range sum {
				if d := math.Abs(float64(ly.router[e*D+i]) - tau*sum[i]); d > 1e-5*math.Abs(tau*sum[i])+1e-9 {
					t.Fatalf("layer %d tiny row %d: %v, want %v·%v", l, e, ly.router[e*D+i], tau, sum[i])
				}
			}
		}
	}
}
