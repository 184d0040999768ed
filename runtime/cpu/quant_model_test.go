package cpu_test

import (
	"context"
	"flag"
	"math"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// quantModelConfig is a small Qwen2-MoE-shaped model (routed experts, a
// gated shared expert, attention biases, an untied output head) whose
// matrix widths are all multiples of 256, so every format applies to every
// matrix.
func quantModelConfig() model.Config {
	c := testmodel.Config(256, 2, 4, 2, 256)
	c.Arch = "qwen2_moe"
	c.AttnBias = true
	for range c.Layers {
		c.FFN = append(c.FFN, model.FFN{
			ExpertWidths: []int{256, 256, 256, 256},
			Router:       &model.Router{Scoring: model.Softmax, TopK: 2, Fallback: model.FallbackShared},
			SharedWidths: []int{512},
			SharedGate:   true,
		})
	}
	return c
}

// quantizeModel stores every matrix of m except the embeddings in format d.
func quantizeModel(t testing.TB, m *model.Model, d tensor.DType) *model.Model {
	t.Helper()
	q := &model.Model{Config: m.Config, Weights: model.Weights{}}
	for name, w := range m.Weights {
		if len(w.Shape) == 2 && name != model.NameEmbed && tensor.CanQuantize(d, w.Cols()) {
			var err error
			if w, err = tensor.Quantize(w, d); err != nil {
				t.Fatal(err)
			}
		}
		q.Weights[name] = w
	}
	return q
}

// act8 runs TestFastAgreement's fast path with 8-bit activations for
// decode (cpu.NewAct8, llama.cpp's scheme). It is not the default because
// it does not meet the test's bound (RATIONALE.md, "8-bit activations,
// measured"); the flag keeps that measurement repeatable:
//
//	go test -run TestFastAgreement ./runtime/cpu/ -act8
var act8 = flag.Bool("act8", false, "TestFastAgreement: fast path with 8-bit decode activations")

func argmax(v []float32) int { return testmodel.Argmax(v) }

// TestQuantizedModel decodes 32 greedy tokens with the f32 model, then feeds
// the same tokens to the model quantised to each format and compares the
// logits at every step: the largest difference (relative to the largest
// f32 logit, reported) and how often the greedy choice agrees. Feeding the
// f32 tokens rather than each model's own keeps one early disagreement from
// turning every later step into a different text.
func TestQuantizedModel(t *testing.T) {
	const steps = 32
	ref := testmodel.Random(quantModelConfig(), 11)
	e, err := engine.New(cpu.New(cpu.Options{Exact: true}), ref, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seq := []int{0}
	var want [][]float32
	for range steps {
		l, err := e.Forward(context.Background(), seq[len(seq)-1:])
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, append([]float32(nil), l...))
		seq = append(seq, argmax(l))
	}
	tests := []struct {
		d        tensor.DType
		maxDiff  float64 // bound on the largest logit difference over the largest |logit|
		minAgree int     // of 32 greedy choices
	}{
		{tensor.F32, 0, steps},
		{tensor.F16, 0.005, 29},
		{tensor.Q8_0, 0.03, 29},
		{tensor.Q4_0, 0.5, 16},
		{tensor.Q4_K, 0.5, 16},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			e, err := engine.New(cpu.New(cpu.Options{Exact: true}), quantizeModel(t, ref, tt.d), engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var maxDiff, maxLogit float64
			agree := 0
			for step := range steps {
				got, err := e.Forward(context.Background(), seq[step:step+1])
				if err != nil {
					t.Fatal(err)
				}
				for i, w := range want[step] {
					maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-w)))
					maxLogit = math.Max(maxLogit, math.Abs(float64(w)))
				}
				if argmax(got) == seq[step+1] {
					agree++
				}
			}
			t.Logf("max |logit diff| %.4g (max |logit| %.3g, ratio %.4f); greedy agreement %d/%d", maxDiff, maxLogit, maxDiff/maxLogit, agree, steps)
			if maxDiff > tt.maxDiff*maxLogit {
				t.Errorf("logits differ by up to %.4g, more than %g × max |logit| %.3g", maxDiff, tt.maxDiff, maxLogit)
			}
			if agree < tt.minAgree {
				t.Errorf("greedy choice agrees at %d of %d steps, want ≥ %d", agree, steps, tt.minAgree)
			}
		})
	}
}

// TestFastAgreement runs the fast and the exact path on the same weights,
// every synthetic family and the q4_k-capable model above in each block
// format, and feeds both the exact path's greedy choice (teacher forcing)
// over 16 sequences filling the context: 1024 positions per model and
// format. The greedy choices must agree at ≥ 99% of them. On f32 weights
// the fast path only reassociates sums, and must agree at every position.
func TestFastAgreement(t *testing.T) {
	type tc struct {
		name string
		m    *model.Model
	}
	var models []tc
	for _, name := range testmodel.Families {
		models = append(models, tc{name, testmodel.Random(testmodel.Family(name, false), 3)})
	}
	models = append(models, tc{"qwen2_moe-256", testmodel.Random(quantModelConfig(), 11)})
	for _, mc := range models {
		for _, d := range []tensor.DType{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K} {
			m := quantizeModel(t, mc.m, d)
			if d == tensor.Q4_K && m.Weights["layers.0.wq"].DType != tensor.Q4_K {
				continue // no matrix of the dim-32 families is 256 wide
			}
			t.Run(mc.name+"/"+d.String(), func(t *testing.T) {
				seqs := 16
				if raceEnabled {
					// The same decode under the race detector, one sequence
					// per model and format: the statistics below are
					// asserted by the passes without -race.
					seqs = 1
				}
				seqLen := m.Config.MaxSeq
				agree, total := 0, 0
				var worst float64
				for s := range seqs {
					exact, err := engine.New(cpu.New(cpu.Options{Exact: true}), m, engine.Options{})
					if err != nil {
						t.Fatal(err)
					}
					fb := cpu.New(cpu.Options{})
					if *act8 {
						fb = cpu.NewAct8(cpu.Options{})
					}
					fast, err := engine.New(fb, m, engine.Options{})
					if err != nil {
						t.Fatal(err)
					}
					w, err := testmodel.DecodeDiff(exact, fast, []int{(7 * s) % m.Config.Vocab}, seqLen, func(_ int, want, got []float32) error {
						total++
						if argmax(want) == argmax(got) {
							agree++
						}
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					worst = max(worst, w)
				}
				t.Logf("greedy agreement %d/%d, max |logit diff| %.3g", agree, total, worst)
				if raceEnabled {
					return
				}
				if total < 1024 {
					t.Fatalf("only %d positions", total)
				}
				min := total * 99 / 100
				if d == tensor.F32 {
					min = total
				}
				if agree < min {
					t.Errorf("greedy choices agree at %d of %d positions, want ≥ %d", agree, total, min)
				}
			})
		}
	}
}
