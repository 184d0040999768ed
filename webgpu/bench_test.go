package webgpu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/modelpack/llama2c"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

// Software adapters are slow in absolute terms, so the matrix-vector
// benchmarks report their weight bandwidth as a ratio to the copy kernel's
// bandwidth measured in the same run (copy counts bytes read plus written;
// matvec counts weight bytes read, the traffic that bounds decode).

func benchBackend(b *testing.B) *Backend {
	b.Helper()
	d, err := OpenDevice(Options{})
	if err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatal(err)
		}
		b.Skip("no WebGPU adapter: ", err)
	}
	g, err := New(d)
	if err != nil {
		b.Fatal(err)
	}
	g.own = true
	b.Cleanup(func() { g.Close() })
	return g
}

// timeOps records n ops per round and syncs, returning seconds per op.
func timeOps(b *testing.B, g *Backend, n int, op func()) float64 {
	b.Helper()
	op()
	if err := g.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for range n {
			op()
		}
		if err := g.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start).Seconds() / float64(b.N*n)
}

const benchRows, benchCols = 2048, 2048

// BenchmarkAdapter names the adapter (in the log) and reports the copy
// kernel's bandwidth, the baseline of the matrix-vector ratios.
func BenchmarkAdapter(b *testing.B) {
	g := benchBackend(b)
	soft := ""
	if g.d.Adapter.Software {
		soft = " (software)"
	}
	sg := "no (" + g.d.SubgroupsNote + ")"
	if g.subgroups {
		sg = fmt.Sprintf("yes, matvec lanes meet through them (smallest subgroup %d)", g.d.SubgroupMin)
	}
	b.Logf("adapter: %s%s; f16 arithmetic: %v; subgroups: %s; %d-byte bindings", g.d.Adapter.Name, soft, g.f16, sg, g.d.MaxBinding)
	b.ReportMetric(copyGBs(b, g), "copyGB/s")
}

func copyGBs(b *testing.B, g *Backend) float64 {
	n := benchRows * benchCols / 2 // 8 MiB each way
	src, err := g.newF32("src", n)
	if err != nil {
		b.Fatal(err)
	}
	dst, err := g.newF32("dst", n)
	if err != nil {
		b.Fatal(err)
	}
	sec := timeOps(b, g, 4, func() { g.copyRows(src, dst, 0, 0, n) })
	return float64(8*n) / sec / 1e9
}

// BenchmarkMatVec times the decode matrix-vector product of each format at
// decode sizes (square 512 to 4096) and reports weight bytes read per
// second, their ratio to the copy kernel's bandwidth, and the speedup over
// the kernels matvec replaced (matmul's decode specialisation,
// matvec_rows); where the device has subgroups, also the speedup of its
// lanes meeting through them over workgroup memory (sg_speedup); where
// matvec runs one lane per row (a CPU adapter), the speedup of that over
// MatVecWide lanes (wide_speedup). Each of b.N rounds times the copy
// kernel, matvec and the old kernels back to back (several ops between syncs, so that a round of
// a small matrix reads about as many bytes as the copy moves and the sync
// does not dominate), and the metrics are the medians of the rounds'
// values: on a shared machine the copy's bandwidth alone moves severalfold
// within a minute, and a ratio of two timings taken seconds apart is
// mostly that noise.
//
// Each round also times the copy kernel over the matrix's bytes
// (same_size_ratio: matvec against a copy of the same size, which pays
// the same fixed cost per dispatch) and over 16 floats (dispatch_µs: about
// that fixed cost alone), and net_ratio is the ratio with that cost taken
// from the matvec's time. On lavapipe a dispatch costs some 50 µs of wall
// time whatever it does (its threads hand the work over through futexes),
// which is 40% of a 512² q4_0 matvec's and next to nothing of the 8 MiB
// copy's; see RATIONALE.md, "WebGPU: small matvecs and the fixed cost of a
// dispatch".
func BenchmarkMatVec(b *testing.B) {
	for _, n := range []int{2048, 512, 4096} {
		r := rand.New(rand.NewPCG(1, 1))
		w := make([]float32, n*n)
		for i := range w {
			w[i] = float32(r.NormFloat64() / math.Sqrt(float64(n)))
		}
		src := tensor.FromF32("w", []int{n, n}, w)
		xv := make([]float32, n)
		for i := range xv {
			xv[i] = float32(r.NormFloat64())
		}
		for _, f := range []tensor.DType{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K} {
			b.Run(fmt.Sprintf("%v/%dx%d", f, n, n), func(b *testing.B) {
				g := benchBackend(b)
				q, err := tensor.Quantize(src, f)
				if err != nil {
					b.Fatal(err)
				}
				wt, err := g.Upload(q)
				if err != nil {
					b.Fatal(err)
				}
				x, _ := g.NewBuf(1, n)
				if err := g.d.write(x.(*buf).b, 0, wordBytes(shaders.Bits(xv))); err != nil {
					b.Fatal(err)
				}
				y, _ := g.NewBuf(1, n)
				cn := benchRows * benchCols / 2 // 8 MiB each way
				cs, err := g.newF32("src", cn)
				if err != nil {
					b.Fatal(err)
				}
				cd, err := g.newF32("dst", cn)
				if err != nil {
					b.Fatal(err)
				}
				ops := min(max(4, 8*cn/len(q.Data)), 256)
				mv := func() { g.MatMul(y, x, wt, nil) }
				cp := func() { g.copyRows(cs, cd, 0, 0, cn) }
				// The copy of the matrix's bytes (read and written, half each
				// way) and of 16 floats: the first is the copy kernel at
				// this size, with the same fixed cost per dispatch as the
				// matvec; the second is about that fixed cost alone.
				same := max(len(q.Data)/8, 1)
				sc := func() { g.copyRows(cs, cd, 0, 0, same) }
				tiny := func() { g.copyRows(cs, cd, 0, 0, 16) }
				var gbs, base, ratio, cpuRatio, speedup, sgSpeedup, wideSpeedup, uniformSpeedup, sameRatio, fixed, netRatio []float64
				sg := g.subgroups
				// On a CPU adapter without subgroups matvec runs one lane
				// per row; wide_speedup is that over MatVecWide lanes, and
				// uniform_speedup x through a uniform binding over a
				// storage one.
				narrow := g.matVecLanes(n) == 1
				b.ResetTimer()
				for range b.N {
					c, cc := roundTimes(b, g, 4, cp)
					sec, csec := roundTimes(b, g, ops, mv)
					cpuRatio = append(cpuRatio, (float64(len(q.Data))/csec)/(float64(8*cn)/cc))
					g.oldMatVec = true
					old := roundTime(b, g, ops, mv)
					g.oldMatVec = false
					if sg {
						g.subgroups = false
						sgSpeedup = append(sgSpeedup, roundTime(b, g, ops, mv)/sec)
						g.subgroups = true
					}
					if narrow {
						g.noUniformX = true
						uniformSpeedup = append(uniformSpeedup, roundTime(b, g, ops, mv)/sec)
						g.noUniformX = false
						g.lanes = shaders.MatVecWide
						wideSpeedup = append(wideSpeedup, roundTime(b, g, ops, mv)/sec)
						g.lanes = 0
					}
					gbs = append(gbs, float64(len(q.Data))/sec/1e9)
					base = append(base, float64(8*cn)/c/1e9)
					ratio = append(ratio, gbs[len(gbs)-1]/base[len(base)-1])
					ssec := roundTime(b, g, ops, sc)
					sameRatio = append(sameRatio, (float64(len(q.Data))/sec)/(float64(8*same)/ssec))
					f := roundTime(b, g, 128, tiny) // enough that the sync's own latency does not count
					fixed = append(fixed, f*1e6)
					if sec > f {
						netRatio = append(netRatio, float64(len(q.Data))/(sec-f)/1e9/base[len(base)-1])
					}
					speedup = append(speedup, old/sec)
				}
				b.ReportMetric(median(gbs), "GB/s")
				b.ReportMetric(median(base), "copyGB/s")
				b.ReportMetric(median(ratio), "ratio")
				b.ReportMetric(median(cpuRatio), "cpu_ratio")
				b.ReportMetric(median(sameRatio), "same_size_ratio")
				b.ReportMetric(median(fixed), "dispatch_µs")
				if len(netRatio) > 0 {
					b.ReportMetric(median(netRatio), "net_ratio")
				}
				b.ReportMetric(median(speedup), "speedup")
				if sg {
					b.ReportMetric(median(sgSpeedup), "sg_speedup")
				}
				if narrow {
					b.ReportMetric(median(wideSpeedup), "wide_speedup")
					b.ReportMetric(median(uniformSpeedup), "uniform_speedup")
				}
			})
		}
	}
}

// roundTime records n ops (after one untimed op and a sync, so pipelines
// exist) and syncs, returning seconds per op.
func roundTime(b *testing.B, g *Backend, n int, op func()) float64 {
	wall, _ := roundTimes(b, g, n, op)
	return wall
}

// roundTimes is roundTime's wall time per op and the process's CPU time
// (user+sys, which counts a CPU adapter's threads) per op: on a machine
// shared with other work the CPU time moves less with the load.
func roundTimes(b *testing.B, g *Backend, n int, op func()) (wall, cpu float64) {
	b.Helper()
	op()
	if err := g.Sync(); err != nil {
		b.Fatal(err)
	}
	c0 := cpuSeconds(b)
	start := time.Now()
	for range n {
		op()
	}
	if err := g.Sync(); err != nil {
		b.Fatal(err)
	}
	wall = time.Since(start).Seconds() / float64(n)
	return wall, (cpuSeconds(b) - c0) / float64(n)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func BenchmarkAttention(b *testing.B) {
	g := benchBackend(b)
	const heads, kvHeads, hd, seq = 8, 2, 64, 1024
	kv, _ := g.NewKV(1, seq, kvHeads*hd)
	for _, c := range []struct {
		name    string
		t, pos0 int
	}{{"decode/pos=1000", 1, 1000}, {"prefill/64@0", 64, 0}} {
		b.Run(c.name, func(b *testing.B) {
			q, _ := g.NewBuf(c.t, heads*hd)
			k, _ := g.NewBuf(c.t, kvHeads*hd)
			v, _ := g.NewBuf(c.t, kvHeads*hd)
			out, _ := g.NewBuf(c.t, heads*hd)
			s := backend.AttnSpec{Heads: heads, KVHeads: kvHeads, HeadDim: hd, Pos0: c.pos0}
			sec := timeOps(b, g, 4, func() { g.Attention(out, q, k, v, kv, s) })
			b.ReportMetric(sec*1e6, "µs/op")
		})
	}
}

func BenchmarkRoute(b *testing.B) {
	g := benchBackend(b)
	for _, c := range []struct {
		name string
		t, e int
		rule model.Router
	}{
		{"softmax/E=8/K=2/T=1", 1, 8, model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true}},
		{"sigmoid/E=64/K=8/T=1", 1, 64, model.Router{Scoring: model.Sigmoid, TopK: 8, NormTopK: true, ScalingFactor: 2.5}},
		{"softmax/E=64/K=8/T=64", 64, 64, model.Router{Scoring: model.Softmax, TopK: 8}},
	} {
		b.Run(c.name, func(b *testing.B) {
			l, _ := g.NewBuf(c.t, c.e)
			sec := timeOps(b, g, 4, func() {
				rt := g.Route(l, backend.RouteSpec{Rule: &c.rule})
				g.s.pool.put(rt.(*routes).b) // MoE would give it back
			})
			b.ReportMetric(sec*1e6, "µs/op")
		})
	}
}

// BenchmarkDecode reports stories260K decode tokens/s on the device.
func BenchmarkDecode(b *testing.B) {
	dir := shared.Models(b)
	m, err := llama2c.Load(filepath.Join(dir, "stories260K", "stories260K.bin"))
	if err != nil {
		b.Fatal(err)
	}
	g := benchBackend(b)
	e, err := engine.New(g, m, engine.Options{MaxSeq: 256})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.Forward(context.Background(), []int{1}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, n := time.Now(), 0
	for i := range b.N {
		if e.Pos() >= e.MaxSeq() {
			e.Reset()
		}
		if _, err := e.Forward(context.Background(), []int{1 + i%300}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "tok/s")
}

// BenchmarkDecodeCost decodes tokens and reports, per token, the queue
// submissions, compute dispatches and bytes read back, next to the minimum
// bytes a decode step must read: the active parameters (every weight but
// the routed experts, plus top_k routed experts per sparse layer) in their
// stored formats. Each weight is read once per decode step by the
// matrix-vector kernels, so bytes moved are that minimum plus activations.
func BenchmarkDecodeCost(b *testing.B) {
	stories, err := llama2c.Load(filepath.Join(shared.Models(b), "stories260K", "stories260K.bin"))
	if err != nil {
		b.Fatal(err)
	}
	moe := testmodel.Random(testmodel.Family("olmoe", false), 1)
	for name, m := range map[string]*model.Model{"stories260K": stories, "olmoe-synthetic": moe} {
		b.Run(name, func(b *testing.B) {
			g := benchBackend(b)
			e, err := engine.New(g, m, engine.Options{MaxSeq: 256})
			if err != nil {
				b.Fatal(err)
			}
			// The prompt, then one decode step, which does the one-time
			// work (FuseLayer packs each layer's weights, pipelines and
			// bind groups are made) that the per-token figures leave out.
			for _, ids := range [][]int{{1, 2, 3, 4}, {5}} {
				if _, err := e.ForwardArgmax(context.Background(), ids); err != nil {
					b.Fatal(err)
				}
			}
			before, kb := g.Stats(), g.Counts().Kernels
			b.ResetTimer()
			start, n := time.Now(), 0
			for i := range b.N {
				if e.Pos() >= e.MaxSeq() {
					e.Reset()
				}
				if _, err := e.ForwardArgmax(context.Background(), []int{5 + i%50}); err != nil {
					b.Fatal(err)
				}
				n++
			}
			el := time.Since(start)
			after, ka := g.Stats(), g.Counts().Kernels
			per := func(x int64) float64 { return float64(x) / float64(n) }
			b.ReportMetric(per(int64(after.Submissions-before.Submissions)), "submits/token")
			b.ReportMetric(per(int64(after.Dispatches-before.Dispatches)), "dispatches/token")
			b.ReportMetric(per(int64(after.BindGroups-before.BindGroups)), "new_bindgroups/token")
			b.ReportMetric(per(after.ReadBytes-before.ReadBytes), "readback_B/token")
			b.ReportMetric(graphMin(m, per(int64(ka["layer.wgsl"]-kb["layer.wgsl"])), ka["argmax.wgsl"] == kb["argmax.wgsl"]), "graph_min_dispatches/token")
			b.ReportMetric(float64(activeBytes(m))/1e3, "min_weight_kB/token")
			b.ReportMetric(float64(n)/el.Seconds(), "tok/s")
		})
	}
}

// graphMin is the fewest dispatches a decode step of m needs when each
// dispatch boundary is a point where some workgroup must see what every
// workgroup of the step before wrote (WebGPU has no grid-wide barrier):
// per layer the q/k/v projections (norm folded in), attention (RoPE
// folded in), the output projection with its residual, gate and up (the
// FFN norm and SwiGLU folded in) and down with its residual, one more for
// a router, whose top-k needs every expert's logit before an expert runs;
// one for a layer that fits one workgroup (fused of them per step, as
// run); the head and the greedy pick, one when the vocabulary fits one
// workgroup's pick (headFused, as run) and two otherwise; the embedding
// row folds into the first layer's read. It is what the figures of
// dispatches per token are reported against (issue 17).
func graphMin(m *model.Model, fused float64, headFused bool) float64 {
	var all float64
	layers := float64(m.Config.Layers)
	for l := range m.Config.Layers {
		all += 5
		if m.Config.FFN[l].Sparse() {
			all++
		}
	}
	n := 2.0
	if headFused {
		n = 1
	}
	return n + fused + all*(layers-fused)/layers
}

// activeBytes is the weight bytes one decode step must read.
func activeBytes(m *model.Model) int64 {
	var n int64
	for _, sp := range m.Config.Spec() {
		if sp.Expert < 0 {
			n += int64(len(m.Weights[sp.Name].Data))
		}
	}
	if m.Config.TiedOutput {
		n += int64(len(m.Weights[model.NameEmbed].Data)) // read again as the head
	}
	for l, f := range m.Config.FFN {
		if !f.Sparse() {
			continue
		}
		var sum int64
		for e := range f.ExpertWidths {
			for _, p := range []string{"gate", "up", "down"} {
				sum += int64(len(m.Weights[model.ExpertName(l, e, p)].Data))
			}
		}
		n += sum * int64(f.Router.TopK) / int64(len(f.ExpertWidths)) // top_k experts of mean size
	}
	return n
}

// BenchmarkPrefill times a batched matmul with the tiled gemm kernel,
// with the 8-tokens-per-workgroup matmul kernel and with the decode
// matvec kernel run over the batch (one workgroup row per token: the
// weights read once per token) on the same backend, at batches from 2 to
// 512 tokens and rows of 256 to 4096 columns, the medians of rounds that
// time every path back to back. The ratios are gemm's time over each
// other path's (below 1: gemm is faster), in wall time and in the
// process's CPU time (cpu_ prefix), which moves less with other work on a
// shared machine. On an adapter whose matvec runs one lane per row (a CPU
// adapter without subgroups) matvec8 is the same kernel with MatVecWide
// lanes per row meeting in workgroup memory, the path of a software
// adapter with subgroups (SwiftShader), and where matvec splits the batch
// into chunks that fit a uniform binding of x (xuTokens), matvec_sx is
// one dispatch reading x from storage. Rows of at most shortRow columns
// are compared with matvec_rows, which MatMul would use for them
// otherwise. matmul is timed up to 32 tokens and not at 4096 columns:
// past that it takes seconds per round on a CPU adapter, and gemm took
// 0.25-0.56 of its time from 16 tokens at 1024 columns.
func BenchmarkPrefill(b *testing.B) {
	all := []tensor.DType{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K}
	benchPrefill(b, 1024, all, []int{2, 4, 8, 16, 32, 64, 128, 256, 512}, true)
	benchPrefill(b, 256, all, []int{2, 4, 8, 16, 32, 64}, true)
	benchPrefill(b, 512, all, []int{16, 32, 64, 128, 256, 512}, true)
	benchPrefill(b, 4096, all, []int{16, 64, 256}, false)
}

func benchPrefill(b *testing.B, n int, formats []tensor.DType, batches []int, withMatMul bool) {
	rows, cols := n, n
	r := rand.New(rand.NewPCG(2, 2))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64() / math.Sqrt(float64(cols)))
	}
	src := tensor.FromF32("w", []int{rows, cols}, w)
	for _, f := range formats {
		for _, T := range batches {
			b.Run(fmt.Sprintf("%dx%d/%v/T=%d", rows, cols, f, T), func(b *testing.B) {
				g := benchBackend(b)
				q, err := tensor.Quantize(src, f)
				if err != nil {
					b.Fatal(err)
				}
				wt, err := g.Upload(q)
				if err != nil {
					b.Fatal(err)
				}
				x, _ := g.NewBuf(T, cols)
				y, _ := g.NewBuf(T, rows)
				// Each of b.N rounds times every path back to back and
				// the metrics are the rounds' medians: on a shared machine
				// two timings taken seconds apart differ by more than the
				// kernels do (see BenchmarkMatVec).
				mm := func() { g.MatMul(y, x, wt, nil) }
				wide := cols > shortRow && g.matVecLanes(cols) == 1
				type path struct {
					name string
					set  func()
					wall []float64
					cpu  []float64
				}
				paths := []*path{
					{name: "gemm", set: func() { g.gemm, g.matVecTokens, g.lanes = gemmAlways, -1, 0 }},
					{name: "matvec", set: func() { g.gemm, g.matVecTokens, g.lanes = gemmNever, T, 0 }},
				}
				if wide {
					paths = append(paths, &path{name: "matvec8", set: func() { g.gemm, g.matVecTokens, g.lanes = gemmNever, T, shaders.MatVecWide }})
				}
				if g.xuTokens(y.(*buf), x.(*buf), wt.(*weight)) < T {
					// The batch goes to matvec in chunks that fit a uniform
					// binding of x: time one dispatch reading x from storage.
					paths = append(paths, &path{name: "matvec_sx", set: func() { g.gemm, g.matVecTokens, g.lanes, g.noUniformX = gemmNever, T, 0, true }})
				}
				if withMatMul && T <= 32 {
					paths = append(paths, &path{name: "matmul", set: func() { g.gemm, g.matVecTokens, g.lanes = gemmNever, -1, 0 }})
				}
				b.ResetTimer()
				for range b.N {
					for _, p := range paths {
						g.noUniformX = false
						p.set()
						wall, cpu := roundTimes(b, g, 1, mm)
						p.wall, p.cpu = append(p.wall, wall), append(p.cpu, cpu)
					}
				}
				g.gemm, g.matVecTokens, g.lanes, g.noUniformX = gemmAuto, 0, 0, false
				gemm := paths[0]
				for _, p := range paths {
					b.ReportMetric(median(p.wall)*1e3, p.name+"_ms")
					if p == gemm {
						continue
					}
					var ws, cs []float64
					for i := range p.wall {
						ws, cs = append(ws, gemm.wall[i]/p.wall[i]), append(cs, gemm.cpu[i]/p.cpu[i])
					}
					b.ReportMetric(median(ws), "gemm/"+p.name)
					b.ReportMetric(median(cs), "cpu_gemm/"+p.name)
				}
				b.ReportMetric(2*float64(rows*cols*T)/median(gemm.wall)/1e9, "gemm_GFLOP/s")
			})
		}
	}
}

// BenchmarkMatVecF16Arith times the decode matrix-vector product of an f16
// matrix with f16 arithmetic and on the f32 path on the same device, and
// reports their ratio (below 1: f16 arithmetic is faster). It needs a
// device whose WGSL compiler has f16 (Device.F16).
func BenchmarkMatVecF16Arith(b *testing.B) {
	g := benchBackend(b)
	if !g.f16 {
		b.Skip("no f16 arithmetic: " + g.d.F16Note)
	}
	r := rand.New(rand.NewPCG(3, 3))
	w := make([]float32, benchRows*benchCols)
	for i := range w {
		w[i] = float32(r.NormFloat64() / 45)
	}
	q, err := tensor.Quantize(tensor.FromF32("w", []int{benchRows, benchCols}, w), tensor.F16)
	if err != nil {
		b.Fatal(err)
	}
	wt, err := g.Upload(q)
	if err != nil {
		b.Fatal(err)
	}
	x, _ := g.NewBuf(1, benchCols)
	y, _ := g.NewBuf(1, benchRows)
	g.f16 = false
	f32 := timeOps(b, g, 4, func() { g.MatMul(y, x, wt, nil) })
	g.f16 = true
	f16 := timeOps(b, g, 4, func() { g.MatMul(y, x, wt, nil) })
	b.ReportMetric(f32*1e3, "f32path_ms")
	b.ReportMetric(f16*1e3, "f16arith_ms")
	b.ReportMetric(f16/f32, "f16/f32")
}

// BenchmarkDecodeSynth decodes greedily on synthetic Mixtral- and
// OLMoE-shaped models with every matrix in q4_0 (the shapes of `mode bench
// --synth mixtral` and scripts/bench-cpu.sh) and reports tokens/s and
// dispatches per token, and the speedup over the same decode with the
// kernels and dispatches before matvec and fusion (oldMatVec). BENCH_GPU_LAYERS caps the layer count (the full
// OLMoE shape is 0.9 GB of q4_0, slow to build on a small machine); the
// layer count is part of the name.
func BenchmarkDecodeSynth(b *testing.B) {
	maxLayers := 0
	if s := os.Getenv("BENCH_GPU_LAYERS"); s != "" {
		if _, err := fmt.Sscan(s, &maxLayers); err != nil {
			b.Fatalf("BENCH_GPU_LAYERS=%q: %v", s, err)
		}
	}
	for _, name := range []string{"mixtral", "olmoe"} {
		cfg := synthShape(name, maxLayers)
		b.Run(fmt.Sprintf("%s/layers=%d/q4_0", name, cfg.Layers), func(b *testing.B) {
			m, err := synthModel(cfg, tensor.Q4_0, 1)
			if err != nil {
				b.Fatal(err)
			}
			g := benchBackend(b)
			e, err := engine.New(g, m, engine.Options{MaxSeq: 256})
			if err != nil {
				b.Fatal(err)
			}
			// decode times n tokens from a fresh cache and returns tokens/s
			// and dispatches per token; minDisp is its graphMin.
			var minDisp float64
			decode := func(n int) (float64, float64) {
				e.Reset()
				if _, err := e.ForwardArgmax(context.Background(), []int{1, 2, 3, 4}); err != nil {
					b.Fatal(err)
				}
				before := g.Counts()
				start := time.Now()
				for i := range n {
					if e.Pos() >= e.MaxSeq() {
						e.Reset()
					}
					if _, err := e.ForwardArgmax(context.Background(), []int{5 + i%50}); err != nil {
						b.Fatal(err)
					}
				}
				el := time.Since(start)
				after := g.Counts()
				fused := float64(after.Kernels["layer.wgsl"]-before.Kernels["layer.wgsl"]) / float64(n)
				minDisp = graphMin(m, fused, after.Kernels["argmax.wgsl"] == before.Kernels["argmax.wgsl"])
				return float64(n) / el.Seconds(), float64(after.Dispatches-before.Dispatches) / float64(n)
			}
			decode(1) // pipelines
			b.ResetTimer()
			tps, disp := decode(b.N)
			graphMinDisp := minDisp
			// The same tokens with the kernels and dispatches before
			// matvec and fusion, in the same run.
			g.oldMatVec = true
			oldTPS, oldDisp := decode(b.N)
			g.oldMatVec = false
			b.ReportMetric(disp, "dispatches/token")
			b.ReportMetric(oldDisp, "old_dispatches/token")
			b.ReportMetric(graphMinDisp, "graph_min_dispatches/token")
			b.ReportMetric(float64(activeBytes(m))/1e6, "active_MB/token")
			b.ReportMetric(tps, "tok/s")
			b.ReportMetric(tps/oldTPS, "speedup")
		})
	}
}

// synthShape is a Mixtral-shaped (d=512, 8 layers, 8 experts of 1408,
// top-2, vocab 32000) or OLMoE-shaped (d=1024, 16 layers, 16 heads, 64
// experts of 512, top-8, full q/k norm, vocab 50304) config, with at most
// maxLayers layers when maxLayers > 0.
func synthShape(name string, maxLayers int) model.Config {
	var c model.Config
	var widths []int
	var r model.Router
	switch name {
	case "mixtral":
		c = testmodel.Config(512, 8, 8, 2, 32000)
		widths, r = slicesRepeat(1408, 8), model.Router{Scoring: model.Softmax, TopK: 2, NormTopK: true}
	case "olmoe":
		c = testmodel.Config(1024, 16, 16, 16, 50304)
		c.QKNorm = model.QKNormFull
		widths, r = slicesRepeat(512, 64), model.Router{Scoring: model.Softmax, TopK: 8}
	default:
		panic("synthShape: " + name)
	}
	c.Arch, c.MaxSeq = name+"-synth", 1024
	if maxLayers > 0 {
		c.Layers = min(c.Layers, maxLayers)
	}
	for range c.Layers {
		rr := r
		c.FFN = append(c.FFN, model.FFN{ExpertWidths: widths, Router: &rr})
	}
	return c
}

func slicesRepeat(v, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// synthModel is testmodel.Random's distribution with every matrix
// quantised to f as it is made, so only one f32 tensor is alive at a time.
func synthModel(cfg model.Config, f tensor.DType, seed uint64) (*model.Model, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := model.Weights{}
	for _, sp := range cfg.Spec() {
		n := 1
		for _, d := range sp.Shape {
			n *= d
		}
		v := make([]float32, n)
		std, mean := 1/math.Sqrt(float64(sp.Shape[len(sp.Shape)-1])), 0.0
		if len(sp.Shape) == 1 {
			std, mean = 0.1, 1 // norm weights
		}
		for i := range v {
			v[i] = float32(mean + std*r.NormFloat64())
		}
		t := tensor.FromF32(sp.Name, sp.Shape, v)
		if len(sp.Shape) == 2 && sp.Shape[0] > 1 && sp.Shape[1]%32 == 0 {
			var err error
			if t, err = tensor.Quantize(t, f); err != nil {
				return nil, err
			}
		}
		w[sp.Name] = t
	}
	return &model.Model{Config: cfg, Weights: w}, nil
}

// BenchmarkFusion decodes greedily with and without the RMSNorm taken
// into matvecs, attn_single and attn_rope (Backend.unfused), alternating the two in
// rounds of FUSION_TOKENS (default 32) tokens from a fresh cache, so that
// both see the same machine load, and reports each one's tokens/s and
// dispatches per token and the ratio of their tokens/s (above 1: fused
// is faster): stories260K, the synthetic OLMoE family and, at q4_0, the
// Mixtral shape of BenchmarkDecodeSynth cut to BENCH_GPU_LAYERS layers
// (default 2). b.N is the number of rounds.
func BenchmarkFusion(b *testing.B) {
	stories, err := llama2c.Load(filepath.Join(shared.Models(b), "stories260K", "stories260K.bin"))
	if err != nil {
		b.Fatal(err)
	}
	layers, tokens := 2, 32
	for env, p := range map[string]*int{"BENCH_GPU_LAYERS": &layers, "FUSION_TOKENS": &tokens} {
		if s := os.Getenv(env); s != "" {
			if _, err := fmt.Sscan(s, p); err != nil {
				b.Fatalf("%s=%q: %v", env, s, err)
			}
		}
	}
	mixtral, err := synthModel(synthShape("mixtral", layers), tensor.Q4_0, 1)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		m    *model.Model
	}{{"stories260K", stories}, {"olmoe-synthetic", testmodel.Random(testmodel.Family("olmoe", false), 1)},
		{fmt.Sprintf("mixtral/layers=%d/q4_0", layers), mixtral}} {
		b.Run(c.name, func(b *testing.B) {
			g := benchBackend(b)
			e, err := engine.New(g, c.m, engine.Options{MaxSeq: 256})
			if err != nil {
				b.Fatal(err)
			}
			var el [2]time.Duration
			var disp [2]int
			round := func(unfused bool) {
				g.unfused = unfused
				e.Reset()
				if _, err := e.ForwardArgmax(context.Background(), []int{1, 2, 3, 4}); err != nil {
					b.Fatal(err)
				}
				v := 0
				if unfused {
					v = 1
				}
				d0, start := g.Stats().Dispatches, time.Now()
				for i := range tokens {
					if _, err := e.ForwardArgmax(context.Background(), []int{5 + i%50}); err != nil {
						b.Fatal(err)
					}
				}
				el[v] += time.Since(start)
				disp[v] += g.Stats().Dispatches - d0
			}
			round(false) // pipelines
			round(true)
			el, disp = [2]time.Duration{}, [2]int{}
			b.ResetTimer()
			for i := range b.N {
				round(i%2 == 1)
				round(i%2 == 0)
			}
			n := float64(b.N * tokens)
			b.ReportMetric(float64(disp[0])/n, "dispatches/token")
			b.ReportMetric(float64(disp[1])/n, "unfused_dispatches/token")
			b.ReportMetric(n/el[0].Seconds(), "tok/s")
			b.ReportMetric(n/el[1].Seconds(), "unfused_tok/s")
			b.ReportMetric(el[1].Seconds()/el[0].Seconds(), "speedup")
		})
	}
}
