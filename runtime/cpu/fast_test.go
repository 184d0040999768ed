package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/tensor"
)

// u is float32's unit roundoff.
const u = 0x1p-24

// TestMatMulFast compares the fast path's MatMul with the exact path's for
// every format, with output counts that are not multiples of four and
// widths that are not multiples of the SIMD width or of the kernels'
// unrolling, and checks that the fast path gives the same bits on one
// goroutine and three, and batched or one token at a time.
//
// The bound is derived (RATIONALE.md, "Exact and fast CPU paths"): for the
// block formats the activations are rounded to 16-bit blocks, |x − x̂| ≤ d/2
// with d = max|x|/32767 over the block, which moves the product by at most
// Σ_j |w_j|·d_j/2; both paths then round in float32, each within
// (cols+8)·u·Σ|w|·(|x|+d). f32 and f16 weights are not quantised, so
// only the rounding term applies.
func TestMatMulFast(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const out, tokens = 13, 5
	for _, tc := range []struct {
		d   tensor.DType
		ins []int
	}{
		{tensor.F32, []int{1, 7, 37, 301}},
		{tensor.F16, []int{5, 37, 301}},
		{tensor.Q8_0, []int{32, 96, 544}},
		{tensor.Q4_0, []int{32, 96, 544}},
		{tensor.Q4_K, []int{256, 768}},
	} {
		for _, in := range tc.ins {
			t.Run(fmt.Sprintf("%v/%d", tc.d, in), func(t *testing.T) {
				q, deq := quantized(t, r, tc.d, out, in)
				x := randomF32(r, tokens*in, 1)
				mul := func(o Options, x []float32, n int) []float32 {
					b := New(o)
					defer b.Close()
					w, err := b.Upload(q)
					if err != nil {
						t.Fatal(err)
					}
					xb, _ := b.NewBuf(n, in)
					copy(xb.(*buf).f, x)
					dst, _ := b.NewBuf(n, out)
					b.MatMul(dst, xb, w, nil)
					return dst.(*buf).f
				}
				exact := mul(Options{Threads: 1, Exact: true}, x, tokens)
				fast := mul(Options{Threads: 1}, x, tokens)
				if f3 := mul(Options{Threads: 3}, x, tokens); !equal(f3, fast) {
					t.Errorf("three goroutines differ from one")
				}
				for tk := range tokens {
					if one := mul(Options{Threads: 1}, x[tk*in:(tk+1)*in], 1); !equal(one, fast[tk*out:(tk+1)*out]) {
						t.Errorf("token %d alone differs from the batch", tk)
					}
				}
				quantised := tc.d != tensor.F32 && tc.d != tensor.F16
				var worst float64
				for tk := range tokens {
					xt := x[tk*in : (tk+1)*in]
					for i := range out {
						var quant, mag float64
						for j := range in {
							var d float64
							if quantised {
								d = blockScale(xt, j)
							}
							wj := math.Abs(float64(deq[i*in+j]))
							quant += wj * d / 2
							mag += wj * (math.Abs(float64(xt[j])) + d)
						}
						bound := quant*(1+0x1p-15) + 2*float64(in+8)*u*mag
						diff := math.Abs(float64(fast[tk*out+i]) - float64(exact[tk*out+i]))
						if diff > bound {
							t.Errorf("token %d row %d: fast %v, exact %v: diff %.3g > bound %.3g", tk, i, fast[tk*out+i], exact[tk*out+i], diff, bound)
						}
						worst = max(worst, diff/bound)
					}
				}
				t.Logf("largest diff / bound %.3f", worst)
			})
		}
	}
}

// blockScale is the activation scale of the 32-element block of x holding
// x[j]: max|x|/32767 over the block.
func blockScale(x []float32, j int) float64 {
	var amax float32
	for _, v := range x[j/32*32 : j/32*32+32] {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	return float64(amax / 32767)
}

// TestMatMuls checks that MatMuls gives every output the bits of MatMul
// called once per weight, on one goroutine and on two and three, for each
// format (the block formats run as one op, the others one MatMul each),
// weights whose row counts are not multiples of four (so a weight's rows
// start past another's tail), biases on some, and mixed formats (which fall
// back to one MatMul each). The block formats' products, large enough to
// share, must be one hand-off to the pool: each over minWork, and each
// under it but not under a quarter of it (Mixtral's k and v, which alone
// would run on the calling goroutine) when together they are over it.
func TestMatMuls(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	const cols = 2048
	for _, d := range append(formats, tensor.DType(255)) {
		name := d.String()
		ds := []tensor.DType{d, d, d}
		if d == 255 {
			name, ds = "mixed", []tensor.DType{tensor.Q4_0, tensor.Q8_0, tensor.Q4_0}
		}
		if ds[0] == tensor.Q4_K {
			continue // rows of 256: cols would need to be a multiple of it
		}
		for _, rows := range [][]int{
			{67, 64, 65}, // each over minWork at cols
			{40, 17, 18}, // each under minWork and over a quarter of it, together over it
		} {
			testMatMuls(t, r, name, ds, rows, cols)
		}
	}
}

func testMatMuls(t *testing.T, r *rand.Rand, name string, ds []tensor.DType, rows []int, cols int) {
	d := ds[0]
	if ds[1] != d {
		d = 255
	}
	t.Run(fmt.Sprintf("%s/%v", name, rows), func(t *testing.T) {
		var qs [3]*tensor.Tensor
		for i := range qs {
			qs[i], _ = quantized(t, r, ds[i], rows[i], cols)
		}
		x := randomF32(r, cols, 1)
		bias := randomF32(r, rows[1], 1)
		var want [3][]float32
		for _, threads := range []int{1, 2, 3} {
			b := New(Options{Threads: threads})
			var ws, bs [3]backend.Weight
			var dsts [3]backend.Buf
			for i, q := range qs {
				w, err := b.Upload(q)
				if err != nil {
					t.Fatal(err)
				}
				ws[i] = w
				dsts[i], _ = b.NewBuf(1, rows[i])
			}
			bs[1] = up(t, b, []int{rows[1]}, bias...)
			xb, _ := b.NewBuf(1, cols)
			copy(xb.(*buf).f, x)
			var before int64
			if b.pool != nil {
				before = b.pool.ops.Load()
			}
			b.MatMuls(dsts[:], xb, ws[:], bs[:])
			if b.pool != nil && (d == tensor.Q8_0 || d == tensor.Q4_0) {
				if n := b.pool.ops.Load() - before; n != 1 {
					t.Errorf("%d goroutines: %d hand-offs to the pool, want 1", threads, n)
				}
			}
			for i := range qs {
				one, _ := b.NewBuf(1, rows[i])
				b.MatMul(one, xb, ws[i], bs[i])
				if !equal(dsts[i].(*buf).f, one.(*buf).f) {
					t.Errorf("%d goroutines, weight %d: MatMuls %v, MatMul %v", threads, i, dsts[i].(*buf).f, one.(*buf).f)
				}
				if threads == 1 {
					want[i] = one.(*buf).f
				} else if !equal(want[i], one.(*buf).f) {
					t.Errorf("%d goroutines, weight %d: differs from one goroutine", threads, i)
				}
			}
			b.Close()
		}
	})
}

// TestAttentionRowMajor: attention over a cache of rows of 1024 values or
// more, which reads each row once for all of an item's heads
// (attnTask.rowMajor), gives the bits of the head-by-head path, for one
// and several tokens, grouped heads, a ring shorter than the positions
// with a window, items that split a token's heads, and f32 and f16
// caches (an f16 one decoded a block of rows at a time on both paths).
func TestAttentionRowMajor(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		heads, kvHeads, hd, tokens, pos0, ring, window int
		f16                                            bool
	}{
		{16, 16, 64, 1, 37, 64, 0, false},
		{16, 16, 64, 3, 0, 8, 0, false},
		{8, 4, 256, 1, 100, 120, 0, false},
		{16, 8, 128, 2, 90, 40, 33, false},
		{16, 16, 64, 1, 37, 64, 0, true},
		{16, 8, 128, 2, 90, 40, 33, true},
		{8, 4, 256, 3, 70, 80, 0, true},
	} {
		name := fmt.Sprintf("%dx%d/%d/T%d/pos%d/ring%d/window%d/f16=%v", tc.heads, tc.kvHeads, tc.hd, tc.tokens, tc.pos0, tc.ring, tc.window, tc.f16)
		t.Run(name, func(t *testing.T) {
			b := New(Options{Threads: 1})
			defer b.Close()
			kvDim := tc.kvHeads * tc.hd
			if kvDim < rowMajorKV {
				t.Fatalf("kvDim %d under rowMajorKV", kvDim)
			}
			cache, err := b.NewRingKV([]int{tc.ring}, kvDim, tc.f16)
			if err != nil {
				t.Fatal(err)
			}
			c := cache.(*kv)
			c.store(0, false, 0, randomF32(r, tc.ring*kvDim, 1))
			c.store(0, true, 0, randomF32(r, tc.ring*kvDim, 1))
			q, _ := b.NewBuf(tc.tokens, tc.heads*tc.hd)
			k, _ := b.NewBuf(tc.tokens, kvDim)
			v, _ := b.NewBuf(tc.tokens, kvDim)
			copy(q.(*buf).f, randomF32(r, tc.tokens*tc.heads*tc.hd, 1))
			copy(k.(*buf).f, randomF32(r, tc.tokens*kvDim, 1))
			copy(v.(*buf).f, randomF32(r, tc.tokens*kvDim, 1))
			got, _ := b.NewBuf(tc.tokens, tc.heads*tc.hd)
			s := backend.AttnSpec{Heads: tc.heads, KVHeads: tc.kvHeads, HeadDim: tc.hd, Pos0: tc.pos0, Window: tc.window}
			b.Attention(got, q, k, v, cache, s)
			want, _ := b.NewBuf(tc.tokens, tc.heads*tc.hd)
			n := tc.tokens * tc.heads
			j := &attnTask{b: b, out: want.(*buf), q: q.(*buf), c: c, s: s, kvDim: kvDim, group: tc.heads / tc.kvHeads, scale: s.ScoreDivisor()}
			j.perHead(0, 0, n)
			for i, w := range want.(*buf).f {
				if g := got.(*buf).f[i]; math.Float32bits(g) != math.Float32bits(w) {
					t.Fatalf("output %d: %v, head by head %v", i, g, w)
				}
			}
			// Items that split a token's heads, as the pool's chunks do.
			split, _ := b.NewBuf(tc.tokens, tc.heads*tc.hd)
			j.out = split.(*buf)
			for lo := 0; lo < n; lo += 5 {
				j.rowMajor(0, lo, min(n, lo+5))
			}
			for i, w := range want.(*buf).f {
				if g := split.(*buf).f[i]; math.Float32bits(g) != math.Float32bits(w) {
					t.Fatalf("in items of 5: output %d: %v, head by head %v", i, g, w)
				}
			}
		})
	}
}

// TestAttnChunk checks that attention's items go to the pool in whole
// groups of the heads that share a KV head (perHead computes a group
// together only when it gets all of it) and, on rowMajor's wide caches,
// in chunks of several heads.
func TestAttnChunk(t *testing.T) {
	f32, f16 := &kv{}, &kv{k16: [][]uint16{nil}}
	for _, c := range []struct {
		name                         string
		c                            *kv
		kvDim, heads, group, threads int
		want                         int
	}{
		{"mixtral", f32, 128, 8, 4, 2, 4},
		{"stories260K", f32, 32, 8, 2, 2, 2},
		{"mha", f32, 512, 8, 1, 2, 1},
		{"f16 cache", f16, 128, 8, 4, 2, 4},
		{"olmoe rowMajor", f32, 1024, 16, 1, 2, 4},
		{"olmoe f16", f16, 1024, 16, 1, 2, 4},
	} {
		want := c.want
		if simd() {
			want = c.group // no rowMajor in the wasm SIMD build
		}
		if got := attnChunk(c.c, c.kvDim, c.heads, c.group, c.threads); got != want {
			t.Errorf("%s: chunk %d, want %d", c.name, got, want)
		}
	}
}
