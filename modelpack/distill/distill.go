package distill

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Options configures Distill.
type Options struct {
	Experts  int  // routed experts per layer (E)
	TopK     int  // experts each token uses
	Balanced bool // equal expert widths; otherwise clusters keep natural sizes
	Shared   int  // neurons of the always-on shared expert; 0 for none
	Seed     uint64
	// WeightsOnly clusters neurons by their weights alone, without their
	// activation pattern on the calibration tokens.
	WeightsOnly bool
	// Refit refines routing and down projections in closed form after
	// clustering, before training.
	Refit RefitOptions
	// Arch gives experts other depths and activations.
	Arch ArchOptions
	// Tiny adds cheap experts to every layer's routed pool for
	// compute-adaptive routing.
	Tiny    TinyOptions
	Train   TrainOptions
	Threads int       // goroutines; 0 means GOMAXPROCS
	Log     io.Writer // progress lines; nil for none
}

// unitLogit is the largest router logit magnitude on the calibration data
// after fitting. Routing uses softmax scores renormalised over the top k and
// scaled by k, so small logits give every selected expert a weight within
// about 2·unitLogit of 1: the student sums its experts' partial outputs as
// the teacher sums all of them, while the selection keeps the fitted order.
const unitLogit = 1e-4

// Distill builds a MoDE student from the dense teacher using the train
// sequences for calibration and the heldout sequences for the report.
func Distill(teacher *model.Model, train, heldout [][]int, o Options) (*model.Model, *Report, error) {
	start := time.Now()
	if err := check(teacher, train, heldout, o); err != nil {
		return nil, nil, err
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	tn, err := newNet(teacher)
	if err != nil {
		return nil, nil, fmt.Errorf("teacher: %w", err)
	}
	logf("calibrating on %d sequences (%d tokens)", len(train), tokens(train))
	cal := calibrate(tn, train, o.Threads)
	c := teacher.Config
	plans := make([]layerPlan, c.Layers)
	errs := make([]error, c.Layers)
	parallel(c.Layers, o.Threads, func(_, l int) {
		plans[l], errs[l] = planLayer(tn, cal, l, o)
	})
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	for l, p := range plans {
		logf("layer %d: experts %v, shared %d, router top-1 fit %.3f", l, p.widths(), len(p.shared), p.fitTop1)
		if len(p.tiny) > 0 {
			logf("layer %d: %d tiny experts of width %d, threshold τ %.4f", l, len(p.tiny), o.Tiny.width(), p.tinyTau)
		}
	}
	if o.Refit.enabled() {
		if err := refine(tn, cal, train, plans, o, logf); err != nil {
			return nil, nil, err
		}
	}
	if o.Arch.enabled() {
		parallel(c.Layers, o.Threads, func(_, l int) {
			plans[l].expertErr = expertErrors(tn, cal, &plans[l], l, o)
		})
		for l := range plans {
			planArch(&plans[l], o.Arch)
			var deep []string
			for e, a := range plans[l].arch {
				if !a.Plain() {
					deep = append(deep, fmt.Sprintf("%d:%s%v", e, a.Activation(), plans[l].BlockWidths(e)))
				}
			}
			logf("layer %d: expert calibration errors %.4f; other architectures %v", l, plans[l].expertErr, deep)
		}
	}
	student := build(teacher, plans, o)
	if err := student.Validate(false); err != nil {
		return nil, nil, fmt.Errorf("student: %w", err)
	}
	var tr *TrainReport
	if o.Train.Steps > 0 {
		sn, err := newNet(student)
		if err != nil {
			return nil, nil, fmt.Errorf("student: %w", err)
		}
		for l := range sn.layers {
			sn.layers[l].tiny, sn.layers[l].tinyTau = len(plans[l].tiny), float32(plans[l].tinyTau)
		}
		if o.Train.Fresh > 0 {
			fd := newFreshData(teacher, tn, train, heldout, o)
			logf("training on up to %d fresh teacher samples, drawn as needed", o.Train.Fresh)
			if tr, err = trainOn(sn, fd.data(), o.Train, o.Threads, logf); err != nil {
				return nil, nil, err
			}
			tr.Fresh = true
			tr.Sequences, tr.Tokens, tr.Dropped = fd.stats()
		} else if tr, err = trainNet(sn, tn, train, o.Train, o.Threads, logf); err != nil {
			return nil, nil, err
		}
		sn.store(student, trainScope{experts: o.Train.Experts, all: o.Train.All})
	}
	run, err := netPasses(tn, student, 0)
	if err != nil {
		return nil, nil, err
	}
	rep, err := evaluate(&tn.cfg, &student.Config, heldout, o.Threads, run)
	if err != nil {
		return nil, nil, err
	}
	if n := o.Train.ExpertChoiceLayers; n > 0 && o.Train.Steps > 0 {
		if run, err = netPasses(tn, student, n); err != nil {
			return nil, nil, err
		}
		ec, err := evaluate(&tn.cfg, &student.Config, heldout, o.Threads, run)
		if err != nil {
			return nil, nil, err
		}
		rep.ExpertChoice = &RoutingEval{Layers: n, KL: ec.KL, Top1Agreement: ec.Top1Agreement, StudentPerplexity: ec.StudentPerplexity}
	}
	rep.Experts, rep.TopK, rep.Balanced, rep.Shared, rep.Seed = o.Experts, o.TopK, o.Balanced, o.Shared, o.Seed
	if o.Tiny.Experts > 0 {
		t := o.Tiny
		t.Width, t.Budget = t.width(), t.budget(o.TopK)
		rep.Tiny = &t
	}
	rep.CalibrationTokens = tokens(train)
	rep.Train = tr
	for l, p := range plans {
		for e := range rep.Layers[l].Experts {
			if p.expertErr != nil {
				rep.Layers[l].Experts[e].CalibError = p.expertErr[e]
				rep.Layers[l].Experts[e].Deepened = p.deepened[e]
			}
		}
		rep.Layers[l].RouterFitTop1 = p.fitTop1
		if p.refit != nil {
			rep.Layers[l].RefitErrorBefore, rep.Layers[l].RefitErrorAfter = p.refit[0], p.refit[1]
		}
	}
	if o.Refit.enabled() {
		r := o.Refit
		r.Ridge = r.ridge()
		rep.Refit = &r
	}
	rep.Seconds = time.Since(start).Seconds()
	return student, rep, nil
}

// check reports bad input before any work is done.
func check(teacher *model.Model, train, heldout [][]int, o Options) error {
	c := &teacher.Config
	if err := c.Validate(); err != nil {
		return fmt.Errorf("teacher: %w", err)
	}
	if o.Experts < 1 {
		return fmt.Errorf("--experts %d: need at least 1 expert", o.Experts)
	}
	if o.TopK < 1 || o.TopK > o.Experts+o.Tiny.Experts {
		return fmt.Errorf("--top-k %d: must be between 1 and the number of experts (%d)", o.TopK, o.Experts+o.Tiny.Experts)
	}
	if err := o.Tiny.check(o.Experts, o.TopK); err != nil {
		return err
	}
	if o.Tiny.Experts > 0 && o.Arch.enabled() {
		return errors.New("--tiny-experts: not implemented together with other expert architectures")
	}
	if o.Shared < 0 {
		return fmt.Errorf("--shared %d: must not be negative", o.Shared)
	}
	if err := o.Arch.check(o.Experts); err != nil {
		return err
	}
	for l, f := range c.FFN {
		if f.Sparse() || len(f.ExpertWidths) > 0 {
			return fmt.Errorf("teacher layer %d is already a mixture of experts (%d experts); distill needs a dense teacher", l, len(f.ExpertWidths))
		}
		if len(f.SharedWidths) != 1 || f.SharedGate {
			return fmt.Errorf("teacher layer %d: want one ungated dense FFN, have %d shared experts", l, len(f.SharedWidths))
		}
		if w := f.SharedWidths[0]; o.Experts+o.Shared > w {
			return fmt.Errorf("teacher layer %d: %d experts plus %d shared neurons exceed the FFN width %d", l, o.Experts, o.Shared, w)
		}
	}
	if tokens(train) == 0 {
		return errors.New("no calibration tokens (is the calibration text empty?)")
	}
	if len(heldout) == 0 {
		return errors.New("no held-out sequences to evaluate on")
	}
	for _, set := range [][][]int{train, heldout} {
		if err := checkSeqs(set, c.MaxSeq, c.Vocab, "the teacher's"); err != nil {
			return err
		}
	}
	if o.Refit.Iters < 0 || o.Refit.Ridge < 0 {
		return fmt.Errorf("refit: %d rounds, ridge %v", o.Refit.Iters, o.Refit.Ridge)
	}
	if o.Refit.Target == RefitResidual && !o.Refit.Sequential {
		return errors.New("refit: the residual target needs the sequential refit (--sequential)")
	}
	if o.Train.Fresh < 0 || o.Train.SeqLen < 0 {
		return fmt.Errorf("training: %d fresh sequences of %d tokens", o.Train.Fresh, o.Train.SeqLen)
	}
	if o.Train.Steps < 0 || (o.Train.Steps > 0 && !(o.Train.LR > 0)) {
		return fmt.Errorf("training: %d steps at learning rate %v", o.Train.Steps, o.Train.LR)
	}
	return nil
}

// checkSeqs reports a sequence longer than maxSeq or a token outside the
// vocabulary; whose names them in the message ("the teacher's").
func checkSeqs(seqs [][]int, maxSeq, vocab int, whose string) error {
	for _, s := range seqs {
		if len(s) > maxSeq {
			return fmt.Errorf("sequence of %d tokens is longer than %s context %d", len(s), whose, maxSeq)
		}
		for _, id := range s {
			if id < 0 || id >= vocab {
				return fmt.Errorf("token id %d outside %s vocab of %d", id, whose, vocab)
			}
		}
	}
	return nil
}

func tokens(seqs [][]int) int {
	n := 0
	for _, s := range seqs {
		n += len(s)
	}
	return n
}

// calibration holds, per layer, the teacher's FFN inputs h [N, dim],
// neuron activations silu(g)·u [N, width] and residual stream after the
// layer x [N, dim] over all calibration tokens.
type calibration struct {
	N       int
	h, acts [][]float32
	x       [][]float32
}

func calibrate(tn *net, seqs [][]int, threads int) *calibration {
	c := &tn.cfg
	L := c.Layers
	per := make([][][3][]float32, len(seqs)) // [seq][layer]{h, acts, x}
	parallel(len(seqs), threads, func(_, i int) {
		tr := tn.forward(seqs[i])
		per[i] = make([][3][]float32, L)
		for l := range tr.layers {
			x := tr.xOut
			if l+1 < L {
				x = tr.layers[l+1].xIn
			}
			lc := &tr.layers[l]
			a := lc.sharedAct[0]
			act := make([]float32, len(a.g))
			for j, g := range a.g {
				act[j] = silu(g) * a.u[j]
			}
			per[i][l] = [3][]float32{lc.h, act, x}
		}
	})
	cal := &calibration{N: tokens(seqs), h: make([][]float32, L), acts: make([][]float32, L), x: make([][]float32, L)}
	for l := 0; l < L; l++ {
		for i := range seqs {
			cal.h[l] = append(cal.h[l], per[i][l][0]...)
			cal.acts[l] = append(cal.acts[l], per[i][l][1]...)
			cal.x[l] = append(cal.x[l], per[i][l][2]...)
			per[i][l] = [3][]float32{}
		}
	}
	return cal
}

// layerPlan is how one dense FFN is split: neuron indices of the shared
// expert and of each routed expert, the fitted router [E, dim] and, after
// a refit, the new down projections of all neurons [dim, width] (nil: the
// teacher's).
type layerPlan struct {
	shared  []int
	experts [][]int
	router  []float32
	down    []float32
	fitTop1 float64 // how often the router's first choice is the largest contributor
	// refit holds the FFN reconstruction error relative to the target's
	// mean square before and after the refit; nil without one.
	refit *[2]float64
	// With ArchOptions: each expert's share of the calibration error
	// (expertErrors), its architecture and whether the rule deepened it.
	expertErr []float64
	arch      []model.ExpertArch
	deepened  []bool
	// tiny holds the teacher neurons whose gate and up rows each tiny
	// expert copies (TinyOptions); the router has a row for each after the
	// E real ones, with threshold tinyTau.
	tiny    [][]int
	tinyTau float64
}

// BlockWidths returns expert e's block widths as planned.
func (p *layerPlan) BlockWidths(e int) []int {
	w := []int{len(p.experts[e])}
	if e < len(p.arch) {
		w = append(w, p.arch[e].Extra...)
	}
	return w
}

func (p *layerPlan) widths() []int {
	w := make([]int, len(p.experts))
	for i, e := range p.experts {
		w[i] = len(e)
	}
	return w
}

// maxFeatureTokens caps the activation pattern that joins the weight
// features in clustering, keeping k-means cheap on long calibration sets.
const maxFeatureTokens = 512

func planLayer(tn *net, cal *calibration, l int, o Options) (layerPlan, error) {
	var p layerPlan
	D := tn.cfg.Dim
	dense := &tn.layers[l].shared[0]
	W := dense.width
	acts := cal.acts[l]
	// The shared expert takes the neurons with the largest mean |activation|:
	// they contribute to nearly every token, so routing them would waste
	// top-k slots.
	mag := make([]float64, W)
	for t := 0; t < cal.N; t++ {
		for i, a := range acts[t*W : (t+1)*W] {
			mag[i] += math.Abs(float64(a))
		}
	}
	order := make([]int, W)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmpDesc(mag[a], mag[b]) })
	p.shared = slices.Clone(order[:o.Shared])
	slices.Sort(p.shared)
	rest := slices.Clone(order[o.Shared:])
	slices.Sort(rest)

	var sample []float32
	ft := 0
	if !o.WeightsOnly {
		ft = min(cal.N, maxFeatureTokens)
		stride := cal.N / ft
		sample = make([]float32, ft*W)
		for t := 0; t < ft; t++ {
			copy(sample[t*W:(t+1)*W], acts[t*stride*W:(t*stride+1)*W])
		}
	}
	feat, fdim := neuronFeatures(dense, D, sample, ft, rest)
	assign := kmeans(feat, len(rest), fdim, o.Experts, o.Balanced, o.Seed+uint64(l)*0x9e3779b97f4a7c15)
	for _, g := range members(assign, o.Experts) {
		e := make([]int, len(g))
		for i, r := range g {
			e[i] = rest[r]
		}
		p.experts = append(p.experts, e)
	}
	E := o.Experts
	if K := o.Tiny.Experts; K > 0 {
		p.tiny = tinyNeurons(order, p.shared, K, o.Tiny.width())
	}
	if o.TopK == E && o.Tiny.Experts == 0 {
		// Every expert is always selected; a zero router makes each weight
		// exactly E·(1/E) = 1 so the student is the teacher.
		p.router = make([]float32, E*D)
		p.fitTop1 = 1
		return p, nil
	}
	y := contributions(acts, cal.N, dense.down, D, W, p.experts)
	r, err := fitRouter(cal.h[l], cal.N, D, y, E)
	if err != nil {
		return p, fmt.Errorf("layer %d: %w", l, err)
	}
	logits := matmul(cal.h[l], r, cal.N, D, E)
	var big float32
	hit := 0
	for t := 0; t < cal.N; t++ {
		row := logits[t*E : (t+1)*E]
		for _, v := range row {
			big = max(big, float32(math.Abs(float64(v))))
		}
		if argmax(row) == argmax(y[t*E:(t+1)*E]) {
			hit++
		}
	}
	p.fitTop1 = float64(hit) / float64(cal.N)
	if big > 0 {
		s := unitLogit / big
		for i := range r {
			r[i] *= s
		}
	}
	p.router = r
	if o.Tiny.Experts > 0 {
		addTinyRows(&p, cal.h[l], cal.N, D, o.TopK, o.Tiny)
	}
	return p, nil
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

func argmax[T float32 | float64](x []T) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// build assembles the student: the teacher's attention, norms, embeddings
// and head unchanged, each FFN split into the planned experts.
func build(teacher *model.Model, plans []layerPlan, o Options) *model.Model {
	c := teacher.Config
	c.Arch = "mode"
	c.FFN = make([]model.FFN, c.Layers)
	w := model.Weights{}
	for name, t := range teacher.Weights {
		w[name] = t
	}
	for l, p := range plans {
		f := model.FFN{
			ExpertWidths: append(p.widths(), slices.Repeat([]int{o.Tiny.width()}, len(p.tiny))...),
			Router:       &model.Router{Scoring: model.Softmax, TopK: o.TopK, NormTopK: true, ScalingFactor: float32(o.TopK)},
		}
		dense := teacher.Config.FFN[l].SharedWidths[0]
		gate := mustF32(teacher.Weights[model.SharedName(l, 0, "gate")])
		up := mustF32(teacher.Weights[model.SharedName(l, 0, "up")])
		down := mustF32(teacher.Weights[model.SharedName(l, 0, "down")])
		if p.down != nil {
			down = p.down
		}
		for _, part := range []string{"gate", "up", "down"} {
			delete(w, model.SharedName(l, 0, part))
		}
		put := func(name func(string) string, neurons []int) {
			g, u, d := slice(gate, up, down, c.Dim, dense, neurons)
			n := len(neurons)
			w[name("gate")] = tensor.FromF32(name("gate"), []int{n, c.Dim}, g)
			w[name("up")] = tensor.FromF32(name("up"), []int{n, c.Dim}, u)
			w[name("down")] = tensor.FromF32(name("down"), []int{c.Dim, n}, d)
		}
		if len(p.shared) > 0 {
			f.SharedWidths = []int{len(p.shared)}
			put(func(s string) string { return model.SharedName(l, 0, s) }, p.shared)
		}
		for e, neurons := range p.experts {
			put(func(s string) string { return model.ExpertName(l, e, s) }, neurons)
		}
		for j, neurons := range p.tiny {
			// Down starts at zero: the tiny expert adds nothing until trained.
			e := len(p.experts) + j
			put(func(s string) string { return model.ExpertName(l, e, s) }, neurons)
			dn := model.ExpertName(l, e, "down")
			w[dn] = tensor.FromF32(dn, []int{c.Dim, len(neurons)}, make([]float32, c.Dim*len(neurons)))
		}
		if p.arch != nil {
			f.ExpertArch = p.arch
			for e, a := range p.arch {
				addBlocks(w, &c, l, e, a, o.Seed)
			}
		}
		rn := model.LayerName(l, "router")
		w[rn] = tensor.FromF32(rn, []int{len(p.experts) + len(p.tiny), c.Dim}, p.router)
		c.FFN[l] = f
	}
	return &model.Model{Config: c, Weights: w}
}

// slice gathers the gate and up rows and the down columns of neurons.
func slice(gate, up, down []float32, dim, width int, neurons []int) (g, u, d []float32) {
	n := len(neurons)
	g, u, d = make([]float32, n*dim), make([]float32, n*dim), make([]float32, dim*n)
	for r, i := range neurons {
		copy(g[r*dim:(r+1)*dim], gate[i*dim:(i+1)*dim])
		copy(u[r*dim:(r+1)*dim], up[i*dim:(i+1)*dim])
		for j := 0; j < dim; j++ {
			d[j*n+r] = down[j*width+i]
		}
	}
	return g, u, d
}

// mustF32 decodes a tensor newNet has already decoded successfully.
func mustF32(t *tensor.Tensor) []float32 {
	v, err := t.Float32s()
	if err != nil {
		panic(fmt.Sprintf("distill: tensor %s decoded before but not now: %v", t.Name, err))
	}
	return v
}

// store writes the trained parameters of n back into m as f32 tensors.
func (n *net) store(m *model.Model, sc trainScope) {
	c := &m.Config
	put := func(name string, shape []int, v []float32) { m.Weights[name] = tensor.FromF32(name, shape, v) }
	if sc.all {
		D := c.Dim
		put(model.NameEmbed, []int{c.Vocab, D}, n.embed)
		put(model.NameFinalNorm, []int{D}, n.finalNorm)
		if !c.TiedOutput {
			put(model.NameOutput, []int{c.Vocab, D}, n.output)
		}
		for l := range n.layers {
			ly := &n.layers[l]
			put(model.LayerName(l, "attn_norm"), []int{D}, ly.attnNorm)
			put(model.LayerName(l, "ffn_norm"), []int{D}, ly.ffnNorm)
			put(model.LayerName(l, "wq"), []int{c.QDim(), D}, ly.wq)
			put(model.LayerName(l, "wk"), []int{c.KVDim(), D}, ly.wk)
			put(model.LayerName(l, "wv"), []int{c.KVDim(), D}, ly.wv)
			put(model.LayerName(l, "wo"), []int{D, c.QDim()}, ly.wo)
			if c.AttnBias {
				put(model.LayerName(l, "bq"), []int{c.QDim()}, ly.bq)
				put(model.LayerName(l, "bk"), []int{c.KVDim()}, ly.bk)
				put(model.LayerName(l, "bv"), []int{c.KVDim()}, ly.bv)
			}
		}
	}
	for l, ly := range n.layers {
		put(model.LayerName(l, "router"), []int{len(ly.experts), c.Dim}, ly.router)
		if !sc.experts && !sc.all {
			continue
		}
		for e, ex := range ly.experts {
			put(model.ExpertName(l, e, "gate"), []int{ex.width, c.Dim}, ex.gate)
			put(model.ExpertName(l, e, "up"), []int{ex.width, c.Dim}, ex.up)
			put(model.ExpertName(l, e, "down"), []int{c.Dim, ex.width}, ex.down)
			for b, bl := range ex.more {
				put(model.BlockName(l, e, b+1, "norm"), []int{c.Dim}, bl.norm)
				put(model.BlockName(l, e, b+1, "gate"), []int{bl.width, c.Dim}, bl.gate)
				put(model.BlockName(l, e, b+1, "up"), []int{bl.width, c.Dim}, bl.up)
				put(model.BlockName(l, e, b+1, "down"), []int{c.Dim, bl.width}, bl.down)
			}
		}
		for s, ex := range ly.shared {
			put(model.SharedName(l, s, "gate"), []int{ex.width, c.Dim}, ex.gate)
			put(model.SharedName(l, s, "up"), []int{ex.width, c.Dim}, ex.up)
			put(model.SharedName(l, s, "down"), []int{c.Dim, ex.width}, ex.down)
		}
	}
}
