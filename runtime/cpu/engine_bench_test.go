package cpu_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moderuntime/mode/internal/cputime"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
)

// mixtralShaped is `mode bench --synth mixtral` with 2 layers instead of 8,
// so that quantising it for the benchmark takes seconds.
func mixtralShaped() model.Config {
	c := testmodel.Config(512, 2, 8, 2, 32000)
	c.MaxSeq = 1024
	for range c.Layers {
		c.FFN = append(c.FFN, model.FFN{
			ExpertWidths: []int{1408, 1408, 1408, 1408, 1408, 1408, 1408, 1408},
			Router:       &model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true},
		})
	}
	return c
}

// BenchmarkEngine prefills 64 tokens and decodes 32 on the Mixtral-shaped
// model in each weight format, on the exact and the fast path (and the fast
// path with 8-bit decode activations, act8), and reports tokens per second
// of each phase.
func BenchmarkEngine(b *testing.B) {
	ref := testmodel.Random(mixtralShaped(), 1)
	for _, d := range []tensor.DType{tensor.F32, tensor.Q8_0, tensor.Q4_0} {
		m := quantizeModel(b, ref, d)
		for _, path := range []string{"exact", "fast", "act8"} {
			if path == "act8" && d == tensor.F32 {
				continue
			}
			b.Run(fmt.Sprintf("%v/%s", d, path), func(b *testing.B) {
				const prompt, decode = 64, 32
				var pre, dec, decCPU time.Duration
				for b.Loop() {
					be := cpu.New(cpu.Options{Exact: path == "exact"})
					if path == "act8" {
						be = cpu.NewAct8(cpu.Options{})
					}
					e, err := engine.New(be, m, engine.Options{MaxBatch: prompt})
					if err != nil {
						b.Fatal(err)
					}
					ids := make([]int, prompt)
					for i := range ids {
						ids[i] = (i*7919 + 13) % m.Config.Vocab
					}
					t0 := time.Now()
					id, err := e.ForwardArgmax(context.Background(), ids)
					if err != nil {
						b.Fatal(err)
					}
					t1, c1 := time.Now(), cputime.Now()
					for range decode {
						if id, err = e.ForwardArgmax(context.Background(), []int{id}); err != nil {
							b.Fatal(err)
						}
					}
					pre, dec, decCPU = pre+t1.Sub(t0), dec+time.Since(t1), decCPU+cputime.Now()-c1
					be.Close()
				}
				b.ReportMetric(float64(prompt*b.N)/pre.Seconds(), "prefill-tok/s")
				b.ReportMetric(float64(decode*b.N)/dec.Seconds(), "decode-tok/s")
				// The process's CPU time per decoded token (all threads),
				// which a loaded machine disturbs less than the wall clock.
				b.ReportMetric(float64(decCPU.Microseconds())/float64(decode*b.N), "decode-cpu-us/tok")
			})
		}
	}
}
