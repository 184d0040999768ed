package distill

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
)

// TestExpertChoice checks the selection by hand: each expert takes its C
// tokens of highest score, ties to the earlier token, so a token may get
// no expert or several; a token's weights are scale·s/Σ s over the
// experts that took it.
func TestExpertChoice(t *testing.T) {
	cases := []struct {
		name   string
		logits []float32 // [T, E]
		T, E   int
		C      int
		scale  float32
		want   [][]int // experts per token
	}{
		{
			name: "each expert its top two of four",
			// Scores of expert 0 rank tokens 0, 1, 3, 2; of expert 1: 2, 3, 1, 0.
			logits: []float32{2, 0, 1, 0, 0, 3, 0.5, 0.8},
			T:      4, E: 2, C: 2, scale: 1,
			want: [][]int{{0}, {0}, {1}, {1}},
		},
		{
			name: "a token taken by both and one by none",
			// Token 0 is second in both experts' rankings.
			logits: []float32{0, 0, -3, -1, -1, -3},
			T:      3, E: 2, C: 2, scale: 2,
			want: [][]int{{0, 1}, {1}, {0}},
		},
		{
			name:   "ties go to the earlier token",
			logits: []float32{1, 1, 1, 1, 1, 1},
			T:      3, E: 2, C: 1, scale: 1,
			want: [][]int{{0, 1}, nil, nil},
		},
		{
			name: "tiny fitted logits keep their order",
			// 1e-4 apart: float32 softmax scores would tie.
			logits: []float32{1e-4, 0, 2e-4, 0, 0, 1e-4},
			T:      3, E: 2, C: 1, scale: 1,
			want: [][]int{nil, {0}, {1}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			scores := make([]float32, c.T*c.E)
			for tk := 0; tk < c.T; tk++ {
				routing.Softmax(scores[tk*c.E:(tk+1)*c.E], c.logits[tk*c.E:(tk+1)*c.E])
			}
			got := expertChoice(c.logits, scores, c.T, c.E, c.C, c.scale)
			taken := make([]int, c.E)
			for tk, cs := range got {
				var es []int
				var sum float32
				for _, ch := range cs {
					es = append(es, ch.Expert)
					taken[ch.Expert]++
					sum += scores[tk*c.E+ch.Expert]
				}
				if !slices.Equal(es, c.want[tk]) {
					t.Fatalf("token %d: experts %v, want %v", tk, es, c.want[tk])
				}
				for _, ch := range cs {
					w := c.scale * scores[tk*c.E+ch.Expert] / sum
					if math.Abs(float64(ch.Weight-w)) > 1e-6 {
						t.Errorf("token %d expert %d: weight %v, want %v", tk, ch.Expert, ch.Weight, w)
					}
				}
			}
			for e, n := range taken {
				if n != c.C {
					t.Errorf("expert %d took %d tokens, want the capacity %d", e, n, c.C)
				}
			}
		})
	}
}

func TestECCapacity(t *testing.T) {
	for _, c := range []struct{ T, k, E, want int }{
		{128, 4, 8, 64}, {128, 1, 8, 16}, {10, 2, 4, 5}, {3, 1, 8, 1}, {5, 8, 8, 5}, {7, 2, 4, 4},
	} {
		if got := ecCapacity(c.T, c.k, c.E); got != c.want {
			t.Errorf("ecCapacity(%d, %d, %d) = %d, want %d", c.T, c.k, c.E, got, c.want)
		}
	}
}

// TestExpertChoiceGradients checks the backward pass with the first two
// layers routed by expert choice, the token-choice auxiliary loss on
// (scaled) logits included, against central finite differences of the
// whole loss, as TestGradientsMatchFiniteDifferences does for token
// choice: routers (selection weights and the auxiliary loss), experts,
// the shared expert, and weights upstream of the routers. The selections
// are checked to stay the same over the finite-difference steps, so the
// loss is smooth where it is differentiated. Bound: 2% relative.
func TestExpertChoiceGradients(t *testing.T) {
	sn, cfg, ids, tl := gradientFixture(t)
	for l := 0; l < 2; l++ {
		sn.layers[l].expertChoice = true
		sn.layers[l].auxTau = 3
	}
	lw := lossWeights{lm: 1, kl: 0.7, am: 0.4, lb: 0.3, z: 0.2, ec: 0.5}
	var pass lossPass
	loss := fullLoss(sn, ids, tl, cfg.Vocab, &lw, &pass)
	sc := trainScope{experts: true, all: true}
	g := newGrads(sn, sc)
	loss(g)
	if pass.aux.ec <= 0 {
		t.Fatalf("expert-choice auxiliary loss %v, want positive", pass.aux.ec)
	}
	choices := func(tr *trace) [][][]routing.Choice {
		var out [][][]routing.Choice
		for l := range tr.layers {
			out = append(out, tr.layers[l].choices)
		}
		return out
	}
	base := choices(pass.tr)
	// Expert choice must differ from token choice here, or the test
	// would not exercise it.
	differs := false
	for _, cs := range base[0] {
		if len(cs) != cfg.FFN[0].Router.TopK {
			differs = true
		}
	}
	if !differs {
		t.Fatal("every token got exactly top_k experts under expert choice: the fixture does not exercise it")
	}
	scratch := newGrads(sn, sc)
	params, flat := sn.params(sc), g.flat()
	index := func(p []float32) int { return paramIndex(t, params, p) }
	cases := []struct {
		name string
		p    []float32
	}{
		{"router layer 0 (expert choice)", sn.layers[0].router},
		{"router layer 1 (expert choice)", sn.layers[1].router},
		{"router layer 2 (token choice)", sn.layers[2].router},
		{"expert 1 gate layer 0", sn.layers[0].experts[1].gate},
		{"expert 3 down layer 1", sn.layers[1].experts[3].down},
		{"shared up layer 0", sn.layers[0].shared[0].up},
		{"ffn norm layer 1", sn.layers[1].ffnNorm},
		{"wq layer 0", sn.layers[0].wq},
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			i := index(c.p)
			p, gp := params[i], flat[i]
			// Expert choice ranks tokens across the sequence, so selections
			// are closer together than top-k's: a smaller step than the
			// token-choice tests' 1e-3 keeps inside one.
			checkDirectional(t, r, p, gp, 3e-4, func() float64 {
				l := loss(scratch)
				if !sameChoices(choices(pass.tr), base) {
					t.Fatalf("a step changed the expert-choice selection; the finite difference would cross a kink")
				}
				return l
			})
		})
	}
}

// testmodelRandom is a random student of moeConfig's shape for the
// 3-layer denseTeacher, the same weights on every call.
func testmodelRandom(t *testing.T) *model.Model {
	t.Helper()
	return testmodel.Random(moeConfig(denseTeacher(40).Config), 11)
}

func sameChoices(a, b [][][]routing.Choice) bool {
	for l := range a {
		for t := range a[l] {
			if len(a[l][t]) != len(b[l][t]) {
				return false
			}
			for i := range a[l][t] {
				if a[l][t][i].Expert != b[l][t][i].Expert {
					return false
				}
			}
		}
	}
	return true
}

// TestClipExperts: each expert's gradient, all its blocks together, is
// scaled to the limit when its norm exceeds it and left alone otherwise,
// separately per expert; routers are never clipped.
func TestClipExperts(t *testing.T) {
	g := &grads{
		router: [][]float32{{30, 40}},
		experts: [][]expertGrad{{
			{gate: []float32{3}, up: []float32{0}, down: []float32{0}, more: []expertGrad{{norm: []float32{4}, gate: []float32{0}, up: []float32{0}, down: []float32{0}}}}, // norm 5
			{gate: []float32{0.3}, up: []float32{0.4}, down: []float32{0}}, // norm 0.5
		}},
		shared: [][]expertGrad{{{gate: []float32{0}, up: []float32{6}, down: []float32{8}}}}, // norm 10
	}
	if n := clipExperts(g, 1); n != 2 {
		t.Errorf("clipped %d experts, want 2", n)
	}
	norm := func(eg *expertGrad) float64 {
		var ss float64
		for _, s := range eg.flat() {
			for _, v := range s {
				ss += float64(v) * float64(v)
			}
		}
		return math.Sqrt(ss)
	}
	for _, c := range []struct {
		name string
		eg   *expertGrad
		want float64
	}{{"deep expert", &g.experts[0][0], 1}, {"small expert", &g.experts[0][1], 0.5}, {"shared", &g.shared[0][0], 1}} {
		if got := norm(c.eg); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("%s: norm %v after clipping, want %v", c.name, got, c.want)
		}
	}
	if r := g.experts[0][0].more[0].norm[0] / g.experts[0][0].gate[0]; math.Abs(float64(r)-4.0/3) > 1e-6 {
		t.Errorf("clipping changed the direction: ratio %v, want 4/3", r)
	}
	if !slices.Equal(g.router[0], []float32{30, 40}) {
		t.Errorf("router gradient changed to %v", g.router[0])
	}
	if n := clipExperts(g, 0); n != 0 {
		t.Errorf("limit 0 clipped %d experts", n)
	}
}

// TestTrainExpertChoice trains a small student with expert choice in its
// first two layers and an annealed hand-over: the report counts the
// expert-choice steps, the layers route by token choice again after
// training, expert choice changed what was learnt (against the same run
// without it), and bad options are refused with the flag's name.
func TestTrainExpertChoice(t *testing.T) {
	teacher := denseTeacher(40)
	tn := mustNet(t, teacher)
	seqs := randomSeqs(6, 12, teacher.Config.Vocab, 5)
	base := TrainOptions{Steps: 8, LR: 1e-2, KLWeight: 1, Experts: true, Batch: 3}
	train := func(o TrainOptions) (*net, *TrainReport) {
		sn := mustNet(t, testmodelRandom(t))
		rep, err := trainNet(sn, tn, seqs, o, 2, func(string, ...any) {})
		if err != nil {
			t.Fatal(err)
		}
		return sn, rep
	}
	ec := base
	ec.ExpertChoiceLayers, ec.ExpertChoiceAux, ec.ExpertChoiceAnneal, ec.AuxLogitScale, ec.ExpertClip = 2, 0.1, 0.25, 2, 0.5
	sn, rep := train(ec)
	if rep.ECSteps != 6 {
		t.Errorf("%d expert-choice steps, want 6 of 8 with a quarter annealed", rep.ECSteps)
	}
	for l := range sn.layers {
		if sn.layers[l].expertChoice || sn.layers[l].auxTau != 0 {
			t.Errorf("layer %d still routes by expert choice (%v) or scales aux logits (%v) after training", l, sn.layers[l].expertChoice, sn.layers[l].auxTau)
		}
	}
	plain, _ := train(base)
	if slices.Equal(plain.layers[0].router, sn.layers[0].router) {
		t.Error("expert-choice training left layer 0's router as plain training does")
	}
	for _, c := range []struct {
		o    TrainOptions
		flag string
	}{
		{TrainOptions{ExpertChoiceLayers: 4}, "--expert-choice-layers"},
		{TrainOptions{ExpertChoiceLayers: -1}, "--expert-choice-layers"},
		{TrainOptions{ExpertChoiceAux: -1}, "--expert-choice-aux"},
		{TrainOptions{ExpertChoiceAnneal: 1.5}, "--expert-choice-anneal"},
		{TrainOptions{ExpertClip: math.NaN(), Experts: true}, "--expert-clip"},
		{TrainOptions{ExpertClip: 1}, "--train-experts"},
	} {
		o := base
		o.Experts = c.o.Experts
		o.ExpertChoiceLayers, o.ExpertChoiceAux, o.ExpertChoiceAnneal, o.ExpertClip = c.o.ExpertChoiceLayers, c.o.ExpertChoiceAux, c.o.ExpertChoiceAnneal, c.o.ExpertClip
		_, err := trainNet(mustNet(t, testmodelRandom(t)), tn, seqs, o, 1, func(string, ...any) {})
		if err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%+v: error %v, want one naming %s", c.o, err, c.flag)
		}
	}
}
