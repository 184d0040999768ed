package webgpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

// BenchmarkMoE times one decode step of a Mixtral-shaped routed-expert
// layer (d=512, 8 experts of width 1408 — 1536 for q4_k's super-blocks — top-2, every matrix in one
// format, uploaded as the engine uploads experts) — the router and the
// MoE dispatches — and reports the active experts' weight bytes read per
// second and their ratio to the copy kernel's bandwidth, each round timing
// the copy and the MoE back to back (see BenchmarkMatVec); cpu_ratio is
// the same ratio in the process's CPU time, and where the MoE kernels run
// one lane per row (moeLanes), wide_speedup is that over MoELanes lanes
// and uniform_speedup that over the same kernels with their input in a
// storage binding (noUniformX), in the same rounds.
func BenchmarkMoE(b *testing.B) {
	const D, E = 512, 8
	rule := model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true}
	for _, f := range []tensor.DType{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K, tensor.MXFP4} {
		W := 1408
		if f == tensor.Q4_K {
			W = 1536 // whole super-blocks of 256 (down's rows)
		}
		b.Run(fmt.Sprintf("%v/d=%d/w=%d/E=%d/K=%d", f, D, W, E, rule.TopK), func(b *testing.B) {
			g := benchBackend(b)
			r := rand.New(rand.NewPCG(3, 3))
			mat := func(rows, cols int) backend.Weight {
				v := make([]float32, rows*cols)
				for i := range v {
					v[i] = float32(r.NormFloat64() / math.Sqrt(float64(cols)))
				}
				q, err := tensor.Quantize(tensor.FromF32("w", []int{rows, cols}, v), f)
				if err != nil {
					b.Fatal(err)
				}
				w, err := g.UploadExpert(q)
				if err != nil {
					b.Fatal(err)
				}
				return w
			}
			ffn := &backend.FFN{Act: model.ActSwiGLU}
			for range E {
				ffn.Experts = append(ffn.Experts, &backend.Expert{Gate: mat(W, D), Up: mat(W, D), Down: mat(D, W)})
			}
			var active int64
			for _, m := range []backend.Weight{ffn.Experts[0].Gate, ffn.Experts[0].Up, ffn.Experts[0].Down} {
				active += int64(rule.TopK) * m.Bytes()
			}
			x, _ := g.NewBuf(1, D)
			xv := make([]float32, D)
			for i := range xv {
				xv[i] = float32(r.NormFloat64())
			}
			if err := g.d.write(x.(*buf).b, 0, wordBytes(shaders.Bits(xv))); err != nil {
				b.Fatal(err)
			}
			y, _ := g.NewBuf(1, D)
			logits, _ := g.NewBuf(1, E)
			lv := make([]float32, E)
			for i := range lv {
				lv[i] = float32(r.NormFloat64())
			}
			if err := g.d.write(logits.(*buf).b, 0, wordBytes(shaders.Bits(lv))); err != nil {
				b.Fatal(err)
			}
			cn := benchRows * benchCols / 2 // 8 MiB each way
			cs, err := g.newF32("src", cn)
			if err != nil {
				b.Fatal(err)
			}
			cd, err := g.newF32("dst", cn)
			if err != nil {
				b.Fatal(err)
			}
			ops := 8
			moe := func() { g.MoE(y, x, g.Route(logits, backend.RouteSpec{Rule: &rule}), ffn) }
			cp := func() { g.copyRows(cs, cd, 0, 0, cn) }
			var gbs, base, ratio, cpuRatio, wide, uniform []float64
			narrow := g.moeLanes() == 1
			b.ResetTimer()
			for range b.N {
				c, cc := roundTimes(b, g, 4, cp)
				sec, csec := roundTimes(b, g, ops, moe)
				cpuRatio = append(cpuRatio, (float64(active)/csec)/(float64(8*cn)/cc))
				if narrow {
					g.moeWide = true
					wide = append(wide, roundTime(b, g, ops, moe)/sec)
					g.moeWide = false
					g.noUniformX = true
					uniform = append(uniform, roundTime(b, g, ops, moe)/sec)
					g.noUniformX = false
				}
				gbs = append(gbs, float64(active)/sec/1e9)
				base = append(base, float64(8*cn)/c/1e9)
				ratio = append(ratio, gbs[len(gbs)-1]/base[len(base)-1])
			}
			b.ReportMetric(median(gbs), "GB/s")
			b.ReportMetric(median(base), "copyGB/s")
			b.ReportMetric(median(ratio), "ratio")
			b.ReportMetric(median(cpuRatio), "cpu_ratio")
			if narrow {
				b.ReportMetric(median(wide), "wide_speedup")
				b.ReportMetric(median(uniform), "uniform_speedup")
			}
		})
	}
}
