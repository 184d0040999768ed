package cpu_test

import (
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
func quantizeModel(t *testing.T, m *model.Model, d tensor.DType) *model.Model {
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
	e, err := engine.New(cpu.New(cpu.Options{}), ref, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seq := []int{0}
	var want [][]float32
	for range steps {
		l, err := e.Forward(seq[len(seq)-1:])
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
			e, err := engine.New(cpu.New(cpu.Options{}), quantizeModel(t, ref, tt.d), engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var maxDiff, maxLogit float64
			agree := 0
			for step := range steps {
				got, err := e.Forward(seq[step : step+1])
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
