package distill

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
)

// TestGradientsMatchFiniteDifferences checks the manual backward pass
// against central differences of the full training loss (LM, KL, load
// balancing, z-loss and the teacher-argmax cross-entropy) along random directions, for routers, routed
// experts and the shared expert of different layers, and for the attention,
// norms and tied embeddings that --train-all trains.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	sn, cfg, ids, tl := gradientFixture(t)
	lw := lossWeights{lm: 1, kl: 0.7, am: 0.4, lb: 0.3, z: 0.2}
	loss := fullLoss(sn, ids, tl, cfg.Vocab, &lw, nil)
	sc := trainScope{experts: true, all: true}
	g := newGrads(sn, sc)
	loss(g)
	scratch := newGrads(sn, sc)
	params, flat := sn.params(sc), g.flat()
	// params per layer: router, then gate/up/down of 4 experts, then of the shared expert.
	per := 1 + 3*4 + 3
	index := func(p []float32) int { return paramIndex(t, params, p) }
	cases := []struct {
		name string
		i    int
	}{
		{"wq layer 1", index(sn.layers[1].wq)},
		{"wk layer 0", index(sn.layers[0].wk)},
		{"wv layer 2", index(sn.layers[2].wv)},
		{"wo layer 0", index(sn.layers[0].wo)},
		{"attn norm layer 1", index(sn.layers[1].attnNorm)},
		{"ffn norm layer 2", index(sn.layers[2].ffnNorm)},
		{"final norm", index(sn.finalNorm)},
		{"tied embeddings and head", index(sn.embed)},
		{"router layer 0", 0},
		{"router layer 2", 2 * per},
		{"expert 1 gate layer 1", per + 1 + 3},
		{"expert 2 up layer 0", 1 + 3*2 + 1},
		{"expert 0 down layer 2", 2*per + 1 + 2},
		{"shared down layer 1", per + 1 + 12 + 2},
		{"shared gate layer 0", 1 + 12},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, gp := params[c.i], flat[c.i]
			checkDirectional(t, r, p, gp, 1e-3, func() float64 { return loss(scratch) })
		})
	}
}

// gradientFixture is a random routed student (moeConfig) of the dense
// teacher, a 10-token sequence and the teacher's logits on it.
func gradientFixture(t *testing.T) (sn *net, cfg model.Config, ids []int, teacherLogits []float32) {
	teacher := denseTeacher(40)
	cfg = moeConfig(teacher.Config)
	sn = mustNet(t, testmodel.Random(cfg, 11))
	ids = randomSeqs(1, 10, cfg.Vocab, 4)[0]
	return sn, cfg, ids, mustNet(t, teacher).forward(ids).logits
}

// TestDenseRouterGradients: with dense router gradients the forward pass
// and every gradient but the routers' are unchanged (the unselected
// experts run but do not enter the output), and the routers' gradients
// gain the surrogate terms of the experts each token skipped.
func TestDenseRouterGradients(t *testing.T) {
	sn, cfg, ids, tl := gradientFixture(t)
	lw := lossWeights{kl: 1, am: 0.3}
	sc := trainScope{experts: true, all: true}
	run := func(dense bool) ([]float32, [][]float32) {
		sn.allRows = dense
		defer func() { sn.allRows = false }()
		g := newGrads(sn, sc)
		tr := sn.forward(ids)
		d, _ := outputLoss(tr.logits, tl, ids, cfg.Vocab, lw, 1/float32(len(ids)-1))
		sn.backward(tr, d, g, lw, 1)
		return tr.logits, g.flat()
	}
	plainLogits, plain := run(false)
	denseLogits, dense := run(true)
	for i := range plainLogits {
		if plainLogits[i] != denseLogits[i] {
			t.Fatalf("logit %d: %v with dense router gradients, %v without", i, denseLogits[i], plainLogits[i])
		}
	}
	isRouter := map[int]bool{}
	for i, p := range sn.params(sc) {
		if sn.isRouter(p) {
			isRouter[i] = true
		}
	}
	if len(isRouter) != cfg.Layers {
		t.Fatalf("found %d routers, want %d", len(isRouter), cfg.Layers)
	}
	for i := range plain {
		changed := false
		for j := range plain[i] {
			if plain[i][j] != dense[i][j] {
				changed = true
			}
		}
		if changed != isRouter[i] {
			t.Errorf("parameter %d (router %v): gradient changed %v", i, isRouter[i], changed)
		}
	}
}

// TestUnselectedBack checks the surrogate by hand: token 0 of a layer with
// three experts selected expert 0 (score 0.5); experts 1 and 2 (scores 0.3
// and 0.2) are unselected, with outputs whose dot products with dout are 2
// and −1.
func TestUnselectedBack(t *testing.T) {
	n := &net{cfg: model.Config{Dim: 2}}
	lc := &layerCache{
		scores:  []float32{0.5, 0.3, 0.2},
		choices: [][]routing.Choice{{{Expert: 0, Weight: 1}}},
		expertAct: []ffnAct{
			{y: []float32{9, 9}}, // selected: its term is the exact gradient's, not added here
			{y: []float32{1, 1}},
			{y: []float32{0, -1}},
		},
	}
	dl := []float32{0.25, 0, 0}
	const scale, mean = 1, 0.5
	n.unselectedBack(lc, []float32{1, 1}, dl, 0, scale, mean)
	// w' = scale·s_e/s_0: 0.6 and 0.4.
	want := []float32{0.25, 0.6 * (2 - mean), 0.4 * (-1 - mean)}
	for e := range want {
		if math.Abs(float64(dl[e]-want[e])) > 1e-6 {
			t.Errorf("expert %d: logit gradient %v, want %v", e, dl[e], want[e])
		}
	}
}

// TestDeepExpertGradients checks the gradients of experts of other
// architectures (model.ExpertArch) against central finite differences of
// the loss: a depth-2 SiLU expert, a depth-3 GELU-tanh expert, a depth-1
// ReLU² expert and a plain one in every layer, top-4 routing so that
// every token uses all of them. Covered are the later blocks' norms,
// gates, ups and downs, the first blocks' matrices of the GELU and ReLU²
// experts, and weights upstream of the experts (ffn norm, wq), whose
// gradients pass through every block's input gradient. Bound: 2%
// relative, as TestGradientsMatchFiniteDifferences.
func TestDeepExpertGradients(t *testing.T) {
	teacher := denseTeacher(40)
	cfg := moeConfig(teacher.Config)
	for l := range cfg.FFN {
		cfg.FFN[l].Router.TopK, cfg.FFN[l].Router.ScalingFactor = 4, 4
		cfg.FFN[l].ExpertArch = []model.ExpertArch{{Extra: []int{10}}, {Act: model.ActGELUTanh, Extra: []int{6, 12}}, {Act: model.ActReLU2}, {}}
	}
	sn := mustNet(t, testmodel.Random(cfg, 13))
	ids := randomSeqs(1, 10, cfg.Vocab, 4)[0]
	tl := mustNet(t, teacher).forward(ids).logits
	lw := lossWeights{lm: 1, kl: 0.7, am: 0.4}
	scale := 1 / float32(len(ids)-1)
	loss := func(g *grads) float64 {
		tr := sn.forward(ids)
		d, lp := outputLoss(tr.logits, tl, ids, cfg.Vocab, lw, scale)
		sn.backward(tr, d, g, lw, 1)
		return (float64(lw.lm)*lp.lm + float64(lw.kl)*lp.kl + float64(lw.am)*lp.am) * float64(scale)
	}
	sc := trainScope{experts: true, all: true}
	g := newGrads(sn, sc)
	loss(g)
	scratch := newGrads(sn, sc)
	params, flat := sn.params(sc), g.flat()
	if len(params) != len(flat) {
		t.Fatalf("%d parameters, %d gradients", len(params), len(flat))
	}
	index := func(p []float32) int { return paramIndex(t, params, p) }
	e0, e1, e2 := &sn.layers[1].experts[0], &sn.layers[0].experts[1], &sn.layers[2].experts[2]
	cases := []struct {
		name string
		p    []float32
	}{
		{"silu block 2 norm", e0.more[0].norm},
		{"silu block 2 gate", e0.more[0].gate},
		{"silu block 2 up", e0.more[0].up},
		{"silu block 2 down", e0.more[0].down},
		{"silu block 1 gate", e0.gate},
		{"gelu block 1 gate", e1.gate},
		{"gelu block 1 up", e1.up},
		{"gelu block 2 norm", e1.more[0].norm},
		{"gelu block 3 gate", e1.more[1].gate},
		{"gelu block 3 down", e1.more[1].down},
		{"relu2 gate", e2.gate},
		{"relu2 down", e2.down},
		{"ffn norm layer 0", sn.layers[0].ffnNorm},
		{"wq layer 1", sn.layers[1].wq},
		{"router layer 1", sn.layers[1].router},
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			i := index(c.p)
			p, gp := params[i], flat[i]
			checkDirectional(t, r, p, gp, 1e-3, func() float64 { return loss(scratch) })
		})
	}
}

// TestAuxLogitScaleGradients: with the auxiliary losses on scaled logits
// (TrainOptions.AuxLogitScale), the router gradients still match finite
// differences of the loss, the losses read other values than at scale 1,
// and the forward pass (selection, weights, logits) is unchanged.
func TestAuxLogitScaleGradients(t *testing.T) {
	sn, cfg, ids, tl := gradientFixture(t)
	lw := lossWeights{kl: 1, lb: 0.5, z: 0.3}
	var pass lossPass
	loss := fullLoss(sn, ids, tl, cfg.Vocab, &lw, &pass)
	sc := trainScope{}
	plainLogits := sn.forward(ids).logits
	loss(newGrads(sn, sc))
	plain := pass.aux
	for l := range sn.layers {
		sn.layers[l].auxTau = 300
	}
	if got := sn.forward(ids).logits; !slices.Equal(got, plainLogits) {
		t.Fatal("the aux logit scale changed the forward pass")
	}
	g := newGrads(sn, sc)
	loss(g)
	if pass.aux.lb == plain.lb || pass.aux.z == plain.z {
		t.Errorf("aux losses at scale 300 (lb %v, z %v) equal those at scale 1 (%v, %v)", pass.aux.lb, pass.aux.z, plain.lb, plain.z)
	}
	scratch := newGrads(sn, sc)
	params, flat := sn.params(sc), g.flat()
	r := rand.New(rand.NewPCG(5, 6))
	for i := range params {
		p, gp := params[i], flat[i]
		v := make([]float32, len(p))
		var want float64
		for j := range v {
			v[j] = float32(r.NormFloat64())
			want += float64(v[j]) * float64(gp[j])
		}
		const h = 1e-4
		orig := append([]float32(nil), p...)
		shift := func(s float32) float64 {
			for j := range p {
				p[j] = orig[j] + s*v[j]
			}
			return loss(scratch)
		}
		got := (shift(h) - shift(-h)) / (2 * h)
		copy(p, orig)
		if err := math.Abs(got-want) / math.Max(math.Abs(want), 1e-3); err > 0.02 {
			t.Errorf("router %d: backward %.6g, finite difference %.6g (relative error %.3g)", i, want, got, err)
		} else {
			t.Logf("router %d: backward %.6g, finite difference %.6g", i, want, got)
		}
	}
}

// checkDirectional holds the backward pass's gradient gp of the parameters
// p to a central finite difference of loss (which reads p) along a random
// direction drawn from r, at step h: within 2% relative (1e-3 absolute for
// small derivatives). p is restored afterwards.
func checkDirectional(t *testing.T, r *rand.Rand, p, gp []float32, h float32, loss func() float64) {
	t.Helper()
	v := make([]float32, len(p))
	var want float64
	for j := range v {
		v[j] = float32(r.NormFloat64())
		want += float64(v[j]) * float64(gp[j])
	}
	orig := append([]float32(nil), p...)
	defer copy(p, orig)
	shift := func(s float32) float64 {
		for j := range p {
			p[j] = orig[j] + s*v[j]
		}
		return loss()
	}
	got := (shift(h) - shift(-h)) / float64(2*h)
	if err := math.Abs(got-want) / math.Max(math.Abs(want), 1e-3); err > 0.02 {
		t.Errorf("directional derivative: backward %.6g, finite difference %.6g (relative error %.3g)", want, got, err)
	} else {
		t.Logf("backward %.6g, finite difference %.6g", want, got)
	}
}

// paramIndex is the position of p among params (sn.params's slices), for
// the gradient checks that name a parameter by its field.
func paramIndex(t *testing.T, params [][]float32, p []float32) int {
	t.Helper()
	for i, q := range params {
		if &q[0] == &p[0] {
			return i
		}
	}
	t.Fatal("parameter not found")
	return -1
}

// lossPass is what the last call of a fullLoss function saw: the forward
// trace and the backward pass's auxiliary losses.
type lossPass struct {
	tr  *trace
	aux lossParts
}

// fullLoss is the training loss the gradient checks differentiate: a
// forward pass of sn over ids, outputLoss against the teacher's logits tl,
// and a backward pass accumulating into g, weighted by *lw (read at every
// call, so a test may change a weight between calls) at training's scales:
// 1/(len(ids)−1) for the output terms, 1/layers for the auxiliary ones.
// When last is not nil each call records its pass there.
func fullLoss(sn *net, ids []int, tl []float32, vocab int, lw *lossWeights, last *lossPass) func(*grads) float64 {
	scale, auxScale := 1/float32(len(ids)-1), 1/float32(len(sn.layers))
	return func(g *grads) float64 {
		tr := sn.forward(ids)
		d, lp := outputLoss(tr.logits, tl, ids, vocab, *lw, scale)
		aux := sn.backward(tr, d, g, *lw, auxScale)
		if last != nil {
			*last = lossPass{tr: tr, aux: aux}
		}
		return weightedLoss(*lw, lp, aux, scale, auxScale)
	}
}

// weightedLoss is the loss whose gradients sn.backward accumulates: the
// output terms out (outputLoss's) at scale, the auxiliary ones aux (the
// backward pass's) at auxScale, each times its weight in lw — a term
// whose weight is zero adds nothing.
func weightedLoss(lw lossWeights, out, aux lossParts, scale, auxScale float32) float64 {
	return (float64(lw.lm)*out.lm+float64(lw.kl)*out.kl+float64(lw.am)*out.am)*float64(scale) +
		(float64(lw.lb)*aux.lb+float64(lw.z)*aux.z+float64(lw.ec)*aux.ec+float64(lw.cc)*aux.cc)*float64(auxScale)
}
