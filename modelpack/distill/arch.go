package distill

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// ArchOptions gives experts other architectures than one SwiGLU block
// (model.ExpertArch). Entries are by routed expert index and apply to
// every layer; the cluster an index names is whatever k-means put there.
type ArchOptions struct {
	// Acts[e] is expert e's activation ("" or beyond the list: silu). The
	// clusters come from a SiLU teacher, so another activation changes
	// what the expert computes until fine-tuning adapts it.
	Acts []model.Activation
	// Depths[e] is expert e's number of blocks (0 or beyond the list: 1).
	Depths []int
	// Deepen gives a second block to the Deepen experts of each layer with
	// the highest reconstruction error after clustering (and refit), on
	// top of Depths (ExpertReport.CalibError is the error).
	Deepen int
	// Width is the width of every added block; 0 gives it its expert's
	// first block's width.
	Width int
}

func (o ArchOptions) enabled() bool {
	return len(o.Acts) > 0 || len(o.Depths) > 0 || o.Deepen > 0
}

func (o ArchOptions) check(experts int) error {
	if len(o.Acts) > experts || len(o.Depths) > experts {
		return fmt.Errorf("--expert-act has %d and --expert-depth %d entries for %d experts", len(o.Acts), len(o.Depths), experts)
	}
	for e, a := range o.Acts {
		if (model.ExpertArch{Act: a}).Plain() || a == model.ActGELUTanh || a == model.ActReLU2 {
			continue
		}
		return fmt.Errorf("--expert-act: expert %d: activation %q is not one of silu, gelu_tanh, relu2", e, a)
	}
	for e, d := range o.Depths {
		if d < 0 || d+boolInt(o.Deepen > 0) > model.MaxDepth {
			return fmt.Errorf("--expert-depth: expert %d: depth %d outside 1..%d", e, d, model.MaxDepth)
		}
	}
	if o.Deepen < 0 || o.Deepen > experts {
		return fmt.Errorf("--deepen %d: must be between 0 and the number of experts (%d)", o.Deepen, experts)
	}
	if o.Width < 0 || o.Width > 1<<24 {
		return fmt.Errorf("--deepen-width %d out of range", o.Width)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// planArch decides layer l's expert architectures from o and, for the
// rule, each expert's calibration error errs.
func planArch(p *layerPlan, o ArchOptions) {
	E := len(p.experts)
	p.arch = make([]model.ExpertArch, E)
	p.deepened = make([]bool, E)
	width := func(e int) int {
		if o.Width > 0 {
			return o.Width
		}
		return len(p.experts[e])
	}
	for e := range p.arch {
		if e < len(o.Acts) {
			p.arch[e].Act = o.Acts[e]
		}
		if e < len(o.Depths) {
			for range o.Depths[e] - 1 {
				p.arch[e].Extra = append(p.arch[e].Extra, width(e))
			}
		}
	}
	if o.Deepen > 0 {
		order := make([]int, E)
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmpDesc(p.expertErr[a], p.expertErr[b]) })
		for _, e := range order[:o.Deepen] {
			p.arch[e].Extra = append(p.arch[e].Extra, width(e))
			p.deepened[e] = true
		}
	}
}

// expertErrors measures, for each routed expert of plan p, the share of
// the layer's FFN reconstruction error on the calibration tokens routed to
// it: Σ over its tokens of |teacher FFN − student FFN|² (a token's error
// split evenly over its k experts) over Σ |teacher FFN|², on the teacher's
// FFN inputs.
func expertErrors(tn *net, cal *calibration, p *layerPlan, l int, o Options) []float64 {
	D := tn.cfg.Dim
	dense := &tn.layers[l].shared[0]
	ly := layer{router: p.router, route: &model.Router{Scoring: model.Softmax, TopK: o.TopK, NormTopK: true, ScalingFactor: float32(o.TopK)}}
	ly.shared, ly.experts = moeLayer(dense, p, D)
	sn := &net{cfg: tn.cfg}
	lc := layerCache{h: cal.h[l]}
	out := sn.ffn(&ly, &lc, cal.N)
	target := matmul(cal.acts[l], dense.down, cal.N, dense.width, D)
	errs := make([]float64, len(p.experts))
	var total float64
	for t := 0; t < cal.N; t++ {
		var e2 float64
		for i := t * D; i < (t+1)*D; i++ {
			d := float64(target[i] - out[i])
			e2 += d * d
			total += float64(target[i]) * float64(target[i])
		}
		for _, ch := range lc.choices[t] {
			errs[ch.Expert] += e2 / float64(len(lc.choices[t]))
		}
	}
	if total > 0 {
		for e := range errs {
			errs[e] /= total
		}
	}
	return errs
}

// addBlocks puts the tensors of routed expert e's later blocks into w: a
// norm of ones, gate and up drawn like a fresh layer's (N(0, 1/dim)) and a
// zero down projection, so that each new block contributes exactly zero
// (the engine sums block outputs; see model.ExpertArch) and the student
// computes what it did before, while the gradient of down is not zero and
// fine-tuning can grow the block.
func addBlocks(w model.Weights, c *model.Config, l, e int, a model.ExpertArch, seed uint64) {
	r := rand.New(rand.NewPCG(seed, uint64(l)<<32|uint64(e)))
	D := c.Dim
	std := 1 / math.Sqrt(float64(D))
	for b, width := range a.Extra {
		name := func(part string) string { return model.BlockName(l, e, b+1, part) }
		norm := make([]float32, D)
		for i := range norm {
			norm[i] = 1
		}
		w[name("norm")] = tensor.FromF32(name("norm"), []int{D}, norm)
		for _, part := range []string{"gate", "up"} {
			v := make([]float32, width*D)
			for i := range v {
				v[i] = float32(std * r.NormFloat64())
			}
			w[name(part)] = tensor.FromF32(name(part), []int{width, D}, v)
		}
		w[name("down")] = tensor.FromF32(name("down"), []int{D, width}, make([]float32, D*width))
	}
}

// expertCost is what one use of routed expert e of layer l costs: its
// parameters and its FLOPs (2 per multiply-add of its matrices, plus about
// 5·dim per later block for the residual add and the RMSNorm).
func expertCost(c *model.Config, l, e int) (params int64, flops float64) {
	f := &c.FFN[l]
	D := int64(c.Dim)
	for b, w := range f.BlockWidths(e) {
		params += 3 * D * int64(w)
		flops += 6 * float64(D) * float64(w)
		if b > 0 {
			params += D
			flops += 5 * float64(D)
		}
	}
	return params, flops
}
