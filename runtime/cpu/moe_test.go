package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
)

func up(t *testing.T, b *Backend, shape []int, v ...float32) backend.Weight {
	t.Helper()
	w, err := b.Upload(tensor.FromF32("w", shape, v))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestMoEHandWorked: x = [1, 0]; one shared expert of width 1 with gate row
// [2, 0], up row [1, 0], down column [1, 2] gives silu(2)·1·[1, 2]; the
// Qwen2-style shared gate [ln 3, 0] scales it by sigmoid(ln 3) = 0.75. A
// routed expert (width 1: gate [1,0], up [3,0], down [1,-1]) with weight 0.5
// adds 0.5·silu(1)·3·[1, -1].
func TestMoEHandWorked(t *testing.T) {
	b := New(Options{Threads: 1})
	x, _ := b.NewBuf(1, 2)
	copy(x.(*buf).f, []float32{1, 0})
	shared := &backend.Expert{Gate: up(t, b, []int{1, 2}, 2, 0), Up: up(t, b, []int{1, 2}, 1, 0), Down: up(t, b, []int{2, 1}, 1, 2)}
	routed := &backend.Expert{Gate: up(t, b, []int{1, 2}, 1, 0), Up: up(t, b, []int{1, 2}, 3, 0), Down: up(t, b, []int{2, 1}, 1, -1)}
	silu := func(v float64) float64 { return v / (1 + math.Exp(-v)) }
	tests := []struct {
		name   string
		ffn    backend.FFN
		routes backend.Routes
		want   []float64
	}{
		{"ungated shared (dense)", backend.FFN{Shared: []*backend.Expert{shared}}, nil, []float64{silu(2), 2 * silu(2)}},
		{"gated shared", backend.FFN{Shared: []*backend.Expert{shared}, SharedGate: up(t, b, []int{1, 2}, float32(math.Log(3)), 0)}, nil,
			[]float64{0.75 * silu(2), 1.5 * silu(2)}},
		{"shared plus routed", backend.FFN{Shared: []*backend.Expert{shared}, Experts: []*backend.Expert{nil, routed}},
			&cpuRoutes{c: [][]routing.Choice{{{Expert: 1, Weight: 0.5}}}},
			[]float64{silu(2) + 1.5*silu(1), 2*silu(2) - 1.5*silu(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := b.NewBuf(1, 2)
			b.MoE(out, x, tt.routes, &tt.ffn)
			for i, w := range tt.want {
				if g := out.(*buf).f[i]; math.Abs(float64(g)-w) > 1e-6 {
					t.Fatalf("out = %v, want %v", out.(*buf).f, tt.want)
				}
			}
		})
	}
}

// TestMoEFast: the fast path's fused MoE (moeFast) gives, bit for bit, what
// the general path gives on the fast path (each expert alone, each product
// split on its own), on one goroutine and three, for a batch and for each
// token alone: in every weight format, with experts of different widths
// (so phase-1 items end mid-expert), a token routed to fewer experts than
// the others, a shared expert, and gpt-oss's biases and clamped SwiGLU.
func TestMoEFast(t *testing.T) {
	const D, T, K = 256, 7, 3
	widths := []int{256, 512, 256, 768, 256}
	for _, d := range formats {
		for _, biased := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/biased=%v", d, biased), func(t *testing.T) {
				r := rand.New(rand.NewPCG(21, 22))
				var mats [][3]*tensor.Tensor
				for range len(widths) + 1 {
					w := widths[len(mats)%len(widths)]
					g, _ := quantized(t, r, d, w, D)
					u, _ := quantized(t, r, d, w, D)
					dn, _ := quantized(t, r, d, D, w)
					mats = append(mats, [3]*tensor.Tensor{g, u, dn})
				}
				x := randomF32(r, T*D, 1)
				routes := make([][]routing.Choice, T)
				for tk := range routes {
					k := K
					if tk == 3 {
						k = 2
					}
					for _, e := range r.Perm(len(widths))[:k] {
						routes[tk] = append(routes[tk], routing.Choice{Expert: e, Weight: float32(r.Float64())})
					}
				}
				var biases [3][]float32
				run := func(o Options, general bool, t0, n int) []float32 {
					b := New(o)
					defer b.Close()
					b.generalMoE = general
					load := func(q *tensor.Tensor) backend.Weight {
						w, err := b.Upload(q)
						if err != nil {
							t.Fatal(err)
						}
						return w
					}
					f := &backend.FFN{}
					for i, m := range mats {
						e := &backend.Expert{Gate: load(m[0]), Up: load(m[1]), Down: load(m[2])}
						if i == len(widths) {
							f.Shared = append(f.Shared, e)
						} else {
							f.Experts = append(f.Experts, e)
						}
					}
					if biased {
						f.Act, f.Alpha, f.Limit = model.ActSwiGLUClamped, 1.702, 7
						// Equal widths for the bias tables: the first width.
						w := widths[0]
						f.GateBias = up(t, b, []int{len(widths), w}, biases[0]...)
						f.UpBias = up(t, b, []int{len(widths), w}, biases[1]...)
						f.DownBias = up(t, b, []int{len(widths), D}, biases[2]...)
					}
					xb, _ := b.NewBuf(n, D)
					copy(xb.(*buf).f, x[t0*D:(t0+n)*D])
					out, _ := b.NewBuf(n, D)
					rt := &cpuRoutes{c: make([][]routing.Choice, n)}
					for i := range n {
						rt.c[i] = append([]routing.Choice(nil), routes[t0+i]...)
					}
					b.MoE(out, xb, rt, f)
					return out.(*buf).f
				}
				if biased {
					// Bias tables hold one width: make every expert that wide.
					defer func(w []int) { widths = w }(widths)
					widths = []int{256, 256, 256, 256, 256}
					mats = mats[:0]
					r = rand.New(rand.NewPCG(23, 24))
					for range len(widths) + 1 {
						g, _ := quantized(t, r, d, 256, D)
						u, _ := quantized(t, r, d, 256, D)
						dn, _ := quantized(t, r, d, D, 256)
						mats = append(mats, [3]*tensor.Tensor{g, u, dn})
					}
				}
				n := len(widths)
				biases = [3][]float32{randomF32(r, n*widths[0], 1), randomF32(r, n*widths[0], 1), randomF32(r, n*D, 1)}
				fused := run(Options{Threads: 1}, false, 0, T)
				general := run(Options{Threads: 1}, true, 0, T)
				if !equal(fused, general) {
					for i := range fused {
						if fused[i] != general[i] {
							t.Fatalf("fused MoE differs from the general fast path: [%d] %v vs %v", i, fused[i], general[i])
						}
					}
				}
				if f3 := run(Options{Threads: 3}, false, 0, T); !equal(f3, fused) {
					t.Errorf("three goroutines differ from one")
				}
				for tk := range T {
					if one := run(Options{Threads: 2}, false, tk, 1); !equal(one, fused[tk*D:(tk+1)*D]) {
						t.Errorf("token %d alone differs from the batch", tk)
					}
					// On one goroutine a token's experts run whole, one
					// after another (on two, only where they split evenly:
					// the biased runs' top-2 of equal widths).
					if one := run(Options{Threads: 1}, false, tk, 1); !equal(one, fused[tk*D:(tk+1)*D]) {
						t.Errorf("token %d alone on one goroutine differs from the batch", tk)
					}
				}
			})
		}
	}
}

// TestMoEFastHandoffs: on two goroutines, a decode step's MoE over eight
// experts (each too large to run on one goroutine), or over two of them
// (Mixtral's top-2), hands the work to the pool once, whole experts to
// each goroutine, not three or more times per expert; a batch of 16
// tokens three times: gathering and quantising each expert's inputs, gate
// and up, down (its sums, too small to share, on the caller).
func TestMoEFastHandoffs(t *testing.T) {
	const D, W, E, K = 256, 512, 8, 8
	r := rand.New(rand.NewPCG(5, 6))
	b := New(Options{Threads: 2})
	defer b.Close()
	if b.pool == nil {
		t.Fatal("no pool with two threads")
	}
	f := &backend.FFN{}
	for range E {
		var m [3]backend.Weight
		for i, shape := range [][2]int{{W, D}, {W, D}, {D, W}} {
			q, _ := quantized(t, r, tensor.Q4_0, shape[0], shape[1])
			w, err := b.Upload(q)
			if err != nil {
				t.Fatal(err)
			}
			m[i] = w
		}
		f.Experts = append(f.Experts, &backend.Expert{Gate: m[0], Up: m[1], Down: m[2]})
	}
	for _, tc := range []struct{ tokens, k, want int }{{1, K, 1}, {1, 2, 1}, {16, K, 3}} {
		x, _ := b.NewBuf(tc.tokens, D)
		copy(x.(*buf).f, randomF32(r, tc.tokens*D, 1))
		out, _ := b.NewBuf(tc.tokens, D)
		rt := &cpuRoutes{c: make([][]routing.Choice, tc.tokens)}
		for i := range rt.c {
			for e := range tc.k {
				rt.c[i] = append(rt.c[i], routing.Choice{Expert: e, Weight: 1 / float32(tc.k)})
			}
		}
		before := b.pool.ops.Load()
		b.MoE(out, x, rt, f)
		if n := int(b.pool.ops.Load() - before); n != tc.want {
			t.Errorf("%d tokens, top-%d: %d hand-offs to the pool, want %d", tc.tokens, tc.k, n, tc.want)
		}
	}
}

// TestWholeExperts: decode hands out whole experts when each goroutine
// gets at least two, or an even share of experts that cost the same; not
// experts of different widths too few to balance, nor an odd share.
func TestWholeExperts(t *testing.T) {
	ex := func(nw ...int) []moeExp {
		var es []moeExp
		for _, w := range nw {
			es = append(es, moeExp{n: 1, width: w})
		}
		return es
	}
	for _, tc := range []struct {
		name    string
		es      []moeExp
		threads int
		want    bool
	}{
		{"none", nil, 2, false},
		{"top-2 of equal widths on two", ex(1408, 1408), 2, true},
		{"top-2 of different widths on two", ex(1408, 512), 2, false},
		{"top-3 on two", ex(512, 512, 512), 2, false},
		{"top-4 of different widths on two", ex(768, 512, 256, 256), 2, true},
		{"top-8 on two", ex(512, 512, 512, 512, 512, 512, 512, 512), 2, true},
		{"top-2 on three", ex(1408, 1408), 3, false},
		{"one on one", ex(96), 1, true},
		{"two tokens and one", []moeExp{{n: 2, width: 512}, {n: 1, width: 512}}, 2, false},
	} {
		if got := wholeExperts(tc.es, tc.threads); got != tc.want {
			t.Errorf("%s: wholeExperts = %v, want %v", tc.name, got, tc.want)
		}
	}
}
