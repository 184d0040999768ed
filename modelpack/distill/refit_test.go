package distill

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refitFixture plans layer l of the synthetic dense teacher at top-2 of 4
// and returns the plan and its calibration data with the dense FFN output
// as the target.
func refitFixture(t *testing.T, l int) (*net, *layerPlan, *layerFit) {
	t.Helper()
	teacher := denseTeacher(48)
	tn := mustNet(t, teacher)
	cal := calibrate(tn, randomSeqs(12, 24, 97, 5), 1)
	p, err := planLayer(tn, cal, l, Options{Experts: 4, TopK: 2, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	dense := &tn.layers[l].shared[0]
	f := &layerFit{N: cal.N, D: tn.cfg.Dim, W: dense.width, h: cal.h[l], acts: cal.acts[l]}
	f.target = matmul(f.acts, dense.down, f.N, f.W, f.D)
	return tn, &p, f
}

// TestRefitDownReducesError: with the routing fixed, the jointly refitted
// down projections reproduce the dense FFN output much better than the
// teacher's own columns, and they are the ridge least-squares optimum: no
// random perturbation lowers the objective.
func TestRefitDownReducesError(t *testing.T) {
	for _, l := range []int{0, 2} {
		tn, p, f := refitFixture(t, l)
		dense := tn.layers[l].shared[0].down
		mask := neuronMask(p, f, 2)
		before := reconError(f, mask, dense)
		const ridge = 1e-3
		down, err := refitDown(f, mask, dense, ridge)
		if err != nil {
			t.Fatal(err)
		}
		after := reconError(f, mask, down)
		t.Logf("layer %d: FFN reconstruction error %.4f -> %.4f (target %.4f)", l, before, after, meanSquare(f.target, f.N))
		if !(after < 0.8*before) {
			t.Errorf("layer %d: refit error %.4f, before %.4f: the refit should cut it by at least 20%%", l, after, before)
		}
		// The objective the refit minimises, with its ridge term.
		var tr float64
		for t := 0; t < f.N; t++ {
			for i := 0; i < f.W; i++ {
				if mask[t*f.W+i] != 0 {
					a := float64(f.acts[t*f.W+i])
					tr += a * a
				}
			}
		}
		lambda := ridge * tr / float64(f.W)
		objective := func(d []float32) float64 {
			s := reconError(f, mask, d) * float64(f.N)
			for i := range d {
				x := float64(d[i] - dense[i])
				s += lambda * x * x
			}
			return s
		}
		best := objective(down)
		r := rand.New(rand.NewPCG(1, uint64(l)))
		for k := 0; k < 5; k++ {
			q := make([]float32, len(down))
			for i := range q {
				q[i] = down[i] + float32(1e-2*r.NormFloat64())
			}
			if o := objective(q); o < best*(1-1e-6) {
				t.Errorf("layer %d: a random perturbation lowers the objective from %.6g to %.6g", l, best, o)
			}
		}
	}
}

// TestRefineLayerAlternates: router refits alternating with down refits
// never end worse than the first refit, and the plan keeps the best round.
func TestRefineLayerAlternates(t *testing.T) {
	tn, p, f := refitFixture(t, 1)
	dense := tn.layers[1].shared[0].down
	q := *p
	_, one, err := refineLayer(&q, f, dense, 2, 1, 1e-3, false, TinyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before, three, err := refineLayer(p, f, dense, 2, 3, 1e-3, false, TinyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("error %.4f, one refit %.4f, three rounds %.4f", before, one, three)
	if !(three <= one && one < before) || p.down == nil {
		t.Errorf("error %.4f, one refit %.4f, three rounds %.4f", before, one, three)
	}
	if got := reconError(f, neuronMask(p, f, 2), p.down); math.Abs(got-three) > 1e-9*three {
		t.Errorf("the plan's router and down give error %.6g, refineLayer reported %.6g", got, three)
	}
}

// TestDistillRefit: the refit steps lower the held-out KL of a top-2 of 4
// student of the synthetic model on its calibration-like data, keep top_k
// = E exact, and the sequential residual variant runs end to end.
func TestDistillRefit(t *testing.T) {
	teacher := denseTeacher(48)
	seqs := randomSeqs(90, 24, 97, 2)
	train, held := seqs[:80], seqs[80:]
	base := Options{Experts: 4, TopK: 2, Seed: 3}
	_, plain, err := Distill(teacher, train, held, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, ro := range []RefitOptions{
		{Iters: 1},
		{Iters: 2, Sequential: true},
		{Iters: 1, Sequential: true, Target: RefitResidual},
	} {
		o := base
		o.Refit = ro
		student, rep, err := Distill(teacher, train, held, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := student.Validate(false); err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v: held-out KL %.4f (no refit %.4f), agreement %.3f (%.3f)", ro, rep.KL, plain.KL, rep.Top1Agreement, plain.Top1Agreement)
		if !(rep.KL < plain.KL) {
			t.Errorf("%+v: held-out KL %.4f, without refit %.4f", ro, rep.KL, plain.KL)
		}
		all := o
		all.TopK = all.Experts
		if _, rep, err := Distill(teacher, train, held, all); err != nil || rep.Top1Agreement != 1 || rep.KL > 1e-9 {
			t.Errorf("%+v at top_k = E: agreement %v, KL %v, %v", ro, rep.Top1Agreement, rep.KL, err)
		}
	}
}
