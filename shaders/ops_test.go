package shaders_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/sample"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
	"github.com/moderuntime/mode/webgpu"
)

// TestRMSNorm: whole rows and per-head groups. Bound 1e-5: the kernel's
// tree sum of squares and its sqrt differ from the twin by a few ulps.
func TestRMSNorm(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct{ rows, cols, group int }{{3, 100, 100}, {5, 96, 24}, {1, 288, 288}} {
		t.Run(fmt.Sprintf("%dx%d/%d", c.rows, c.cols, c.group), func(t *testing.T) {
			x := randn(r, c.rows*c.cols, 2)
			w := shaders.Bits(randn(r, c.group, 1))
			p := shaders.RMSNormParams{Rows: uint32(c.rows), Cols: uint32(c.cols), Group: uint32(c.group), XStride: uint32(c.cols),
				DstStride: uint32(c.cols), Eps: 1e-5}
			want := make([]float32, len(x))
			shaders.RMSNormTwin(p, w, x, want)
			got := make([]uint32, len(x))
			grid := [3]uint32{uint32(c.cols / c.group), uint32(c.rows), 1}
			if err := d.Run(shaders.RMSNorm, shaders.Spec{}, grid, p.Words(), w, shaders.Bits(x), got); err != nil {
				t.Fatal(err)
			}
			near(t, "rmsnorm", shaders.Floats(got), want, 1e-5)
			// in_place: the result over x, with dst (a spare) untouched.
			got, spare := shaders.Bits(x), []uint32{7}
			if err := d.Run(shaders.RMSNormIP, shaders.Spec{}, grid, p.Words(), w, got, spare); err != nil {
				t.Fatal(err)
			}
			near(t, "rmsnorm in place", shaders.Floats(got), want, 1e-5)
			if spare[0] != 7 {
				t.Errorf("in_place wrote dst")
			}
			// in_place2: this tensor and a second (groups of 8 at an
			// offset, its own weights) in one dispatch.
			p2 := p
			p2.Groups1, p2.Group2, p2.XOff2, p2.XStride2, p2.WOff2 = uint32(c.cols/c.group), 8, 3, 8*3+1, 2
			x2, w2 := randn(r, 3+c.rows*int(p2.XStride2), 2), shaders.Bits(randn(r, 10, 1))
			want2 := append([]float32(nil), x2...)
			shaders.RMSNormTwin(shaders.RMSNormParams{Rows: p.Rows, Cols: 24, Group: 8, XOff: 3, XStride: p2.XStride2, DstOff: 3,
				DstStride: p2.XStride2, Eps: p.Eps, WOff: 2}, w2, x2, want2)
			got, got2 := shaders.Bits(x), shaders.Bits(x2)
			grid2 := [3]uint32{grid[0] + 3, grid[1], 1}
			if err := d.Run(shaders.RMSNormIP2, shaders.Spec{}, grid2, p2.Words(), w, got, spare, w2, got2); err != nil {
				t.Fatal(err)
			}
			near(t, "rmsnorm in_place2 first", shaders.Floats(got), want, 1e-5)
			near(t, "rmsnorm in_place2 second", shaders.Floats(got2), want2, 1e-5)
		})
	}
}

// TestRoPE: both pair styles, a YaRN-like attention factor, positions up
// to ~100. Bound 2e-5 relative to max(1,|x|): the device's f32 cos/sin
// against the twin's float64 ones rounded, at angles up to ~100 rad.
func TestRoPE(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(7, 8))
	for _, inter := range []bool{false, true} {
		t.Run(fmt.Sprintf("interleaved=%v", inter), func(t *testing.T) {
			const rows, heads, hd = 5, 3, 16
			inv := make([]float32, hd/2)
			for i := range inv {
				inv[i] = float32(1 / math.Pow(10000, float64(2*i)/hd))
			}
			x := randn(r, rows*heads*hd, 1)
			p := shaders.RoPEParams{Rows: rows, Cols: heads * hd, HeadDim: hd, Pos0: 97, XStride: heads * hd, Interleaved: inter, AttnFactor: 1.1}
			want := append([]float32(nil), x...)
			shaders.RoPETwin(p, shaders.Bits(inv), want)
			got := shaders.Bits(x)
			grid := [3]uint32{uint32((heads*hd/2 + 63) / 64), rows, 1}
			if err := d.Run(shaders.RoPE, shaders.Spec{}, grid, p.Words(), shaders.Bits(inv), got); err != nil {
				t.Fatal(err)
			}
			near(t, "rope", shaders.Floats(got), want, 2e-5)
		})
	}
}

// TestKVStore: rope_store (both pair styles) and store (f32 and f16
// caches) against KVStoreTwin for three tokens at a nonzero position, with
// row offsets and strides wider than the rows. Bounds: TestRoPE's for the
// rotated values; the stored v (and the f16 packing) exactly.
func TestKVStore(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(9, 10))
	const rows, heads, kvHeads, hd, pos0 = 3, 4, 2, 16, 37
	inv := make([]float32, hd/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(10000, float64(2*i)/hd))
	}
	for _, c := range []struct {
		name             string
		rope, inter, f16 bool
	}{{"rope_store/half", true, false, false}, {"rope_store/interleaved", true, true, false}, {"store/f32", false, false, false}, {"store/f16", false, false, true}} {
		t.Run(c.name, func(t *testing.T) {
			p := shaders.KVStoreParams{Rows: rows, HeadDim: hd, Pos0: pos0, Interleaved: c.inter, AttnFactor: 1.1, InvOff: 1,
				QOff: 3, QStride: heads*hd + 5, QCols: heads * hd, KOff: 2, KStride: kvHeads*hd + 1, VOff: 7, VStride: kvHeads * hd,
				KVDim: kvHeads * hd, F16: c.f16}
			q, k, v := randn(r, 3+rows*int(p.QStride), 1), randn(r, 2+rows*int(p.KStride), 1), randn(r, 7+rows*int(p.VStride), 1)
			invw := append([]uint32{0}, shaders.Bits(inv)...)
			n := (pos0 + rows + 2) * kvHeads * hd
			wq, wk := append([]float32(nil), q...), append([]float32(nil), k...)
			wkc, wvc := make([]uint32, n), make([]uint32, n)
			shaders.KVStoreTwin(p, c.rope, invw, wq, wk, v, wkc, wvc)
			gq, gk, gkc, gvc := shaders.Bits(q), shaders.Bits(k), make([]uint32, n), make([]uint32, n)
			kern, jobs := shaders.KVStore, kvHeads*hd
			if c.rope {
				kern, jobs = shaders.RoPEStore, heads*hd/2+kvHeads*hd/2+kvHeads*hd
			}
			grid := [3]uint32{uint32((jobs + 63) / 64), rows, 1}
			if err := d.Run(kern, shaders.Spec{}, grid, p.Words(), invw, gq, gk, shaders.Bits(v), gkc, gvc); err != nil {
				t.Fatal(err)
			}
			near(t, "q", shaders.Floats(gq), wq, 2e-5)
			near(t, "k", shaders.Floats(gk), wk, 2e-5)
			if c.f16 {
				near(t, "k cache", shaders.UnpackF16(gkc), shaders.UnpackF16(wkc), 1e-3) // k's f16 rounding may tip
			} else {
				near(t, "k cache", shaders.Floats(gkc), shaders.Floats(wkc), 2e-5)
			}
			if !slices.Equal(gvc, wvc) {
				t.Errorf("v cache differs from the twin's")
			}
		})
	}
}

// TestAttention: decode over a cache longer than one 64-position split
// and a causal prefill batch, with grouped query heads. Bound 1e-5: the
// split softmax rescales partial sums the twin computes in one pass.
func TestAttention(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(9, 10))
	// With a window: gpt-oss's sliding layers, over a ring cache that
	// wraps (ring 150 of the 200 positions allocated), with sinks.
	for _, c := range []struct{ T, pos0, window, ring int }{{1, 0, 0, 0}, {1, 130, 0, 0}, {7, 60, 0, 0}, {1, 190, 70, 150}, {9, 141, 70, 150}, {3, 5, 4, 12}} {
		t.Run(fmt.Sprintf("T=%d/pos0=%d/window=%d", c.T, c.pos0, c.window), func(t *testing.T) {
			const heads, kvHeads, hd, seq = 4, 2, 24, 200
			q := randn(r, c.T*heads*hd, 1)
			kc := randn(r, seq*kvHeads*hd, 1)
			vc := randn(r, seq*kvHeads*hd, 1)
			nsplit := (c.pos0 + c.T + shaders.AttnSplit - 1) / shaders.AttnSplit
			p := shaders.AttnParams{T: uint32(c.T), Heads: heads, KVHeads: kvHeads, HeadDim: hd, Pos0: uint32(c.pos0),
				QStride: heads * hd, DstStride: heads * hd, NSplit: uint32(nsplit), Scale: float32(math.Sqrt(hd))}
			want := make([]float32, c.T*heads*hd)
			sinks := randn(r, heads+1, 2)
			if c.window > 0 {
				p.Window, p.Ring, p.HasSinks, p.SinksOff = uint32(c.window), uint32(c.ring), true, 1
			}
			shaders.AttentionTwin(p, q, kc, vc, sinks, want)
			part := make([]uint32, c.T*heads*nsplit*(hd+2))
			got := make([]uint32, len(want))
			bufs := [][]uint32{shaders.Bits(q), shaders.Bits(kc), shaders.Bits(vc), part, got, shaders.Bits(sinks)}
			if err := d.Run(shaders.AttnPartial, shaders.Spec{}, [3]uint32{uint32(nsplit), heads, uint32(c.T)}, p.Words(), bufs...); err != nil {
				t.Fatal(err)
			}
			if err := d.Run(shaders.AttnReduce, shaders.Spec{}, [3]uint32{heads, uint32(c.T), 1}, p.Words(), bufs...); err != nil {
				t.Fatal(err)
			}
			near(t, "attention", shaders.Floats(got), want, 1e-5)
			checkSingle(t, d, shaders.Spec{}, p, bufs, got)
		})
	}
}

// checkSingle runs attn_single over the inputs of a two-pass run (bufs:
// q, k, v, part, dst, sinks) whose output was two, and requires the same
// bits: attn_single does the two passes' arithmetic in their order.
func checkSingle(t *testing.T, d *webgpu.Device, spec shaders.Spec, p shaders.AttnParams, bufs [][]uint32, two []uint32) {
	t.Helper()
	if p.NSplit > shaders.AttnSingleSplits || p.HeadDim > shaders.AttnSingleDim {
		t.Fatalf("case outside attn_single's range")
	}
	got := make([]uint32, len(two))
	in := append([][]uint32(nil), bufs...)
	in[3], in[4] = []uint32{0}, got
	if err := d.Run(shaders.AttnSingle, spec, [3]uint32{p.Heads, p.T, 1}, p.Words(), in...); err != nil {
		t.Fatal(err)
	}
	for i := range two {
		if got[i] != two[i] {
			t.Fatalf("attn_single: value %d is %g, two passes give %g", i, math.Float32frombits(got[i]), math.Float32frombits(two[i]))
		}
	}
}

// TestAttentionF16 runs the f16 KV cache path: pack_f16 stores random k
// and v (lengths not a multiple of the 512 values a workgroup packs) and
// must match PackF16Twin bit for bit, since both round to nearest even;
// then attention specialised by KVF16 reads the packed cache, head_dim 8
// and 64, with positions not a multiple of the 64-position split. Bound
// 1e-5 as in TestAttention: the twin reads the same f16 values.
func TestAttentionF16(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(21, 22))
	for _, c := range []struct{ T, pos0, hd int }{{1, 0, 8}, {1, 130, 8}, {5, 61, 8}, {1, 100, 64}, {3, 62, 64}} {
		t.Run(fmt.Sprintf("T=%d/pos0=%d/hd=%d", c.T, c.pos0, c.hd), func(t *testing.T) {
			const heads, kvHeads, seq = 4, 2, 200
			hd := c.hd
			kvd := kvHeads * hd
			q := randn(r, c.T*heads*hd, 1)
			n := (c.pos0 + c.T) * kvd
			pack := func(src []float32) []uint32 {
				t.Helper()
				nx, ny := shaders.Grid((n/2 + 255) / 256)
				p := shaders.CopyParams{N: uint32(n), SrcOff: 2, DstOff: 0, NX: nx}
				want := make([]uint32, seq*kvd/2)
				shaders.PackF16Twin(p, src, want)
				got := make([]uint32, len(want))
				if err := d.Run(shaders.PackF16, shaders.Spec{}, [3]uint32{nx, ny, 1}, p.Words(), shaders.Bits(src), got); err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("pack_f16: word %d is %#08x, want %#08x", i, got[i], want[i])
					}
				}
				return got
			}
			kc, vc := pack(randn(r, n+2, 1)), pack(randn(r, n+2, 1))
			nsplit := (c.pos0 + c.T + shaders.AttnSplit - 1) / shaders.AttnSplit
			p := shaders.AttnParams{T: uint32(c.T), Heads: heads, KVHeads: kvHeads, HeadDim: uint32(hd), Pos0: uint32(c.pos0),
				QStride: uint32(heads * hd), DstStride: uint32(heads * hd), NSplit: uint32(nsplit), Scale: float32(math.Sqrt(float64(hd)))}
			want := make([]float32, c.T*heads*hd)
			shaders.AttentionF16Twin(p, q, kc, vc, nil, want)
			part := make([]uint32, c.T*heads*nsplit*(hd+2))
			got := make([]uint32, len(want))
			spec := shaders.Spec{KVF16: true}
			bufs := [][]uint32{shaders.Bits(q), kc, vc, part, got, {0}}
			if err := d.Run(shaders.AttnPartial, spec, [3]uint32{uint32(nsplit), heads, uint32(c.T)}, p.Words(), bufs...); err != nil {
				t.Fatal(err)
			}
			if err := d.Run(shaders.AttnReduce, spec, [3]uint32{heads, uint32(c.T), 1}, p.Words(), bufs...); err != nil {
				t.Fatal(err)
			}
			near(t, "attention-f16", shaders.Floats(got), want, 1e-5)
			checkSingle(t, d, spec, p, bufs, got)
		})
	}
}

// TestMLAAttn: mla_attn on the device equals its twin for a decode row
// and a batch at an offset, V2-Lite-like head dims scaled down (nope 8,
// rope 4, v 6).
func TestMLAAttn(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(21, 22))
	for _, c := range []struct{ T, pos0 int }{{1, 9}, {5, 3}} {
		t.Run(fmt.Sprintf("T=%d/pos0=%d", c.T, c.pos0), func(t *testing.T) {
			const H, N, P, V = 4, 8, 4, 6
			n := c.pos0 + c.T
			p := shaders.MLAAttnParams{T: uint32(c.T), Heads: H, Nope: N, Rope: P, V: V, Pos0: uint32(c.pos0),
				QOff: 3, KVOff: 5, PEOff: 2, OutOff: 1, ScStride: uint32(n), Div: 3.4}
			q := randn(r, 3+c.T*H*(N+P), 1)
			kv := randn(r, 5+n*H*(N+V), 1)
			pe := randn(r, 2+n*P, 1)
			want := make([]float32, 1+c.T*H*V)
			shaders.MLAAttnTwin(p, q, kv, pe, make([]float32, c.T*H*n), want)
			got := make([]uint32, len(want))
			sc := make([]uint32, c.T*H*n)
			if err := d.Run(shaders.MLAAttn, shaders.Spec{}, [3]uint32{1, 1, 1}, p.Words(), shaders.Bits(q), shaders.Bits(kv), shaders.Bits(pe), sc, got); err != nil {
				t.Fatal(err)
			}
			near(t, "mla_attn", shaders.Floats(got)[1:], want[1:], 1e-5)
		})
	}
}

// TestRoute: the router rules of the model families. Ids must match
// exactly; weights within 1e-6 (exp in f32 on the device).
func TestRoute(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct {
		name          string
		e, k          int
		sigmoid, bias bool
		norm          bool
		scale         float32
	}{
		{"mixtral", 8, 2, false, false, true, 1},
		{"qwen2", 60, 4, false, false, false, 1},
		{"deepseek", 64, 8, true, true, true, 2.5},
		{"olmoe", 8, 8, false, false, false, 1},
		{"deepseek-v3-noaux_tc", 64, 8, true, true, true, 2.5},
		{"deepseek-v2-group_limited_greedy", 64, 6, false, false, false, 16},
	} {
		t.Run(c.name, func(t *testing.T) {
			const T = 70
			logits := randn(r, T*c.e, 2)
			bias := shaders.Bits(randn(r, c.e, 0.3))
			p := shaders.RouteParams{T: T, LogitsStride: uint32(c.e), Sigmoid: c.sigmoid, HasBias: c.bias, Norm: c.norm, Scale: c.scale}
			rule := model.Router{Scoring: model.Softmax, TopK: c.k, NormTopK: c.norm, ScalingFactor: c.scale}
			if c.sigmoid {
				rule.Scoring = model.Sigmoid
			}
			if strings.HasPrefix(c.name, "deepseek-") {
				// 8 groups, 4 (V3) or 3 (V2) of them chosen
				p.Groups, p.TopKGroups, p.Top2 = 8, 4, c.bias
				rule.Groups, rule.TopKGroups, rule.GroupScore = 8, 4, model.GroupTop2Sum
				if !c.bias {
					p.TopKGroups, rule.TopKGroups, rule.GroupScore = 3, 3, model.GroupMax
				}
			}
			want := make([]uint32, 2*T*c.k)
			shaders.RouteTwin(c.e, c.k, p, logits, bias, want)
			// the twin is routing.Select, the CPU's rule
			var fbias []float32
			if c.bias {
				fbias = shaders.Floats(bias)
			}
			scratch := make([]float32, 3*c.e)
			for tok := range T {
				cs := routing.Select(nil, logits[tok*c.e:(tok+1)*c.e], fbias, &rule, scratch)
				for i, ch := range cs {
					w := 2 * (tok*c.k + i)
					if want[w] != uint32(ch.Expert) || math.Abs(float64(math.Float32frombits(want[w+1])-ch.Weight)) > 1e-6 {
						t.Fatalf("token %d slot %d: twin %d %v, routing.Select %d %v", tok, i, want[w], math.Float32frombits(want[w+1]), ch.Expert, ch.Weight)
					}
				}
			}
			got := make([]uint32, len(want))
			if err := d.Run(shaders.Route, shaders.Spec{E: c.e, K: c.k}, [3]uint32{2, 1, 1}, p.Words(), shaders.Bits(logits), bias, got); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(want); i += 2 {
				if got[i] != want[i] {
					t.Fatalf("slot %d: expert %d, want %d", i/2, got[i], want[i])
				}
				gw, ww := math.Float32frombits(got[i+1]), math.Float32frombits(want[i+1])
				if math.Abs(float64(gw-ww)) > 1e-6*math.Max(1, math.Abs(float64(ww))) {
					t.Fatalf("slot %d: weight %v, want %v", i/2, gw, ww)
				}
			}
		})
	}
}

// expertBufs lays out matrices the way the backend does: anywhere in
// numbered buffers, found through the MoE table by key and base word.
type expertBufs map[uint32][]uint32

// put appends a random [rows, cols] matrix in format f to buffer id and
// returns its key and base word.
func (b expertBufs) put(t *testing.T, r *rand.Rand, id uint32, f tensor.DType, rows, cols int) (key, base uint32) {
	if len(b[id]) == 0 {
		b[id] = make([]uint32, 5) // matrices never start at word 0
	}
	base = uint32(len(b[id]))
	b[id] = append(b[id], weights(t, r, f, rows, cols)...)
	return shaders.MoEKey(id, f), base
}

// TestMoE runs the MoE kernels as the backend does — moe_gu per key,
// swiglu, moe_down per key, moe_combine — over experts spread across two
// buffers and two formats (an expert's gate and up in different buffers,
// one buffer holding f32 and q8_0 matrices, so a key must match both
// buffer and format), of different widths (70 not a multiple of 32), one
// not resident, with empty slots. Bound 1e-5 relative to max(1, |out|):
// f32 sums in a different order.
//
// fused runs the decode path's fusions instead: every gate and up matrix
// under one key, so moe_gu applies swiglu itself (no swiglu dispatch), and
// moe_combine starting from zero (no shared experts) and adding its
// result into a residual stream.
//
// sum also puts every down matrix under one key and runs moe_down_sum in
// place of moe_down and moe_combine. deep gives the experts activations
// other than silu (so moe_act replaces swiglu when not fused) and a second
// block to two of them (moe_norm, then moe_gu over per-slot rows and
// moe_down adding into y), as deeper experts of model.ExpertArch have. The
// backend never runs moe_down_sum for a layer with deeper experts (it keeps
// no per-slot output for their later blocks), so sum and deep are not
// combined.
func TestMoE(t *testing.T) {
	for _, c := range []struct{ fused, sum, deep bool }{
		{false, false, false}, {true, false, false}, {true, true, false}, {false, false, true}, {true, false, true},
	} {
		for _, l := range []int{shaders.MoELanes, 1} {
			t.Run(fmt.Sprintf("fused=%v/sum=%v/deep=%v/L=%d", c.fused, c.sum, c.deep, l), func(t *testing.T) { testMoE(t, c.fused, c.sum, c.deep, l) })
		}
	}
}

func testMoE(t *testing.T, fused, sum, deep bool, lanes int) {
	d := dev(t)
	r := rand.New(rand.NewPCG(13, 14))
	const D, T, K = 64, 3, 2
	bufs := expertBufs{}
	type loc struct {
		id uint32
		f  tensor.DType
	}
	experts := []struct {
		width          int
		gate, up, down loc
		act            uint32
		width2         int // a second block's width (deep only)
		loc2           loc
	}{
		{32, loc{1, tensor.Q8_0}, loc{1, tensor.Q8_0}, loc{2, tensor.F32}, 1, 40, loc{2, tensor.F32}},
		{70, loc{2, tensor.F32}, loc{2, tensor.F32}, loc{1, tensor.F32}, 2, 0, loc{}},
		{0, loc{}, loc{}, loc{}, 0, 0, loc{}}, // not resident
		{96, loc{1, tensor.Q8_0}, loc{2, tensor.Q8_0}, loc{1, tensor.Q8_0}, 0, 64, loc{1, tensor.Q8_0}},
	}
	if fused {
		for i := range experts {
			experts[i].gate, experts[i].up = loc{1, tensor.Q8_0}, loc{1, tensor.Q8_0}
			if sum {
				experts[i].down = loc{1, tensor.F32}
			}
		}
	}
	entries, entries2 := make([]shaders.MoEEntry, len(experts)), make([]shaders.MoEEntry, len(experts))
	norms := make([]uint32, len(experts)*D)
	maxW := 0
	for i, e := range experts {
		if e.width == 0 {
			continue
		}
		en := &entries[i]
		en.Width = uint32(e.width)
		en.GateKey, en.GateBase = bufs.put(t, r, e.gate.id, e.gate.f, e.width, D)
		en.UpKey, en.UpBase = bufs.put(t, r, e.up.id, e.up.f, e.width, D)
		en.DownKey, en.DownBase = bufs.put(t, r, e.down.id, e.down.f, D, e.width)
		maxW = max(maxW, e.width)
		if !deep {
			continue
		}
		en.Act = e.act
		if e.width2 == 0 {
			continue
		}
		l := e.loc2
		if fused {
			l = loc{1, tensor.Q8_0}
		}
		en2 := &entries2[i]
		en2.Width, en2.Act = uint32(e.width2), e.act
		en2.GateKey, en2.GateBase = bufs.put(t, r, l.id, l.f, e.width2, D)
		en2.UpKey, en2.UpBase = bufs.put(t, r, l.id, l.f, e.width2, D)
		en2.DownKey, en2.DownBase = bufs.put(t, r, l.id, tensor.F32, D, e.width2)
		copy(norms[i*D:], shaders.Bits(randn(r, D, 1)))
		maxW = max(maxW, e.width2)
	}
	table, table2 := shaders.MoETableWords(entries), shaders.MoETableWords(entries2)
	var blocks []shaders.MoEBlock
	if deep {
		blocks = []shaders.MoEBlock{{Table: table2, Norms: norms}}
	}
	var routes []uint32
	for _, row := range [][]uint32{{1, 0}, {3, shaders.NoExpert}, {1, 3}} {
		for _, id := range row {
			routes = append(routes, id, math.Float32bits(r.Float32()))
		}
	}
	x := randn(r, T*D, 1)
	dst := randn(r, T*D, 1) // the shared experts' sum
	p := shaders.MoEParams{T: T, K: K, D: D, XStride: D, MaxW: uint32(maxW), SwiGLU: fused, Eps: 1e-5}
	c := shaders.MoECombineParams{T: T, K: K, D: D, DstStride: D, Init: fused, AddRes: fused, ResOff: 3, ResStride: D + 1}
	res := randn(r, 3+T*(D+1), 1)
	want, wantRes := append([]float32(nil), dst...), append([]float32(nil), res...)
	shaders.MoETwin(p, c, bufs, table, routes, x, want, wantRes, blocks...)

	g, u, y := make([]uint32, T*K*maxW), make([]uint32, T*K*maxW), make([]uint32, T*K*D)
	xb := shaders.Bits(x)
	keys := func(entries []shaders.MoEEntry, pick func(shaders.MoEEntry) uint32) []uint32 {
		var ks []uint32
		for _, e := range entries {
			if e.Width > 0 && !slices.Contains(ks, pick(e)) {
				ks = append(ks, pick(e))
			}
		}
		return ks
	}
	run := func(k shaders.Kernel, key uint32, rows int, table, x []uint32) {
		t.Helper()
		tiles := uint32(shaders.MoETiles(rows, lanes))
		p.Key, p.NX = key, tiles
		spec := shaders.Spec{Format: shaders.Formats[key&7], L: lanes}
		out := y
		if k.Entry == shaders.MoEGateUp.Entry {
			out = u
		}
		if err := d.Run(k, spec, [3]uint32{tiles, 1, T * K}, p.Words(), bufs[key>>3], table, routes, x, g, out, make([]uint32, 1)); err != nil {
			t.Fatal(err)
		}
	}
	// block runs one block's moe_gu and activation, then its moe_down per
	// key when runDown, and returns the down keys.
	block := func(entries []shaders.MoEEntry, table, x []uint32, wantDowns int, runDown bool) []uint32 {
		t.Helper()
		gu := append(keys(entries, func(e shaders.MoEEntry) uint32 { return e.GateKey }), keys(entries, func(e shaders.MoEEntry) uint32 { return e.UpKey })...)
		slices.Sort(gu)
		gu = slices.Compact(gu)
		if fused != (len(gu) == 1) {
			t.Fatalf("%d gate/up keys with fused=%v", len(gu), fused)
		}
		for _, key := range gu {
			run(shaders.MoEGateUp, key, maxW, table, x)
		}
		switch {
		case fused:
		case deep:
			if err := d.Run(shaders.MoEBlockAct, shaders.Spec{}, [3]uint32{uint32(maxW+63) / 64, T * K, 1}, p.Words(), []uint32{0}, table, routes, []uint32{0}, g, u); err != nil {
				t.Fatal(err)
			}
		default:
			fp := shaders.FFNParams{Rows: T * K, Cols: uint32(maxW), DstStride: uint32(maxW), YStride: uint32(maxW)}
			if err := d.Run(shaders.SwiGLU, shaders.Spec{}, [3]uint32{uint32(maxW+63) / 64, T * K, 1}, fp.Words(), g, u); err != nil {
				t.Fatal(err)
			}
		}
		downs := keys(entries, func(e shaders.MoEEntry) uint32 { return e.DownKey })
		if len(downs) != wantDowns {
			t.Fatalf("%d down keys, want %d (the test must spread experts)", len(downs), wantDowns)
		}
		for _, key := range downs {
			if runDown {
				run(shaders.MoEDown, key, D, table, x)
			}
		}
		return downs
	}
	if sum {
		downs := block(entries, table, xb, 1, false)
		p.Key, p.NX = downs[0], uint32(shaders.MoETiles(D, lanes))
		p.DstOff, p.DstStride, p.Init, p.AddRes, p.ResOff, p.ResStride = c.DstOff, c.DstStride, c.Init, c.AddRes, c.ResOff, c.ResStride
		got, gotRes := shaders.Bits(dst), shaders.Bits(res)
		if err := d.Run(shaders.MoEDownSum, shaders.Spec{Format: shaders.Formats[downs[0]&7], L: lanes}, [3]uint32{p.NX, 1, T}, p.Words(),
			bufs[downs[0]>>3], table, routes, xb, g, got, gotRes); err != nil {
			t.Fatal(err)
		}
		near(t, "moe", shaders.Floats(got), want, 1e-5)
		near(t, "moe residual", shaders.Floats(gotRes), wantRes, 1e-5)
		return
	}
	block(entries, table, xb, 3, true)
	if deep {
		hn := make([]uint32, T*K*D)
		if err := d.Run(shaders.MoENorm, shaders.Spec{}, [3]uint32{1, 1, T * K}, p.Words(), norms, table2, routes, xb, y, hn); err != nil {
			t.Fatal(err)
		}
		p.XSlot, p.Accum, p.XStride = true, true, D
		n := 2
		if fused {
			n = 1
		}
		block(entries2, table2, hn, n, true)
	}
	got, gotRes := shaders.Bits(dst), shaders.Bits(res)
	if err := d.Run(shaders.MoECombine, shaders.Spec{}, [3]uint32{1, T, 1}, c.Words(), table, routes, y, got, gotRes); err != nil {
		t.Fatal(err)
	}
	near(t, "moe", shaders.Floats(got), want, 1e-5)
	near(t, "moe residual", shaders.Floats(gotRes), wantRes, 1e-5)
}

// TestElementwise: swiglu, gated and plain accum, add, copy (exact up to
// the device's exp in sigmoid: 1e-6).
func TestElementwise(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(15, 16))
	const rows, cols = 3, 70
	y := randn(r, rows*cols+rows, 1)
	for _, c := range []struct {
		name string
		k    shaders.Kernel
		mode uint32
	}{
		{"swiglu", shaders.SwiGLU, 0},
		{"accum", shaders.Accum, 0},
		{"accum-init-gated", shaders.Accum, shaders.AccumInit | shaders.AccumGated},
		{"accum-zero", shaders.Accum, shaders.AccumZero},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := randn(r, rows*cols, 1)
			p := shaders.FFNParams{Rows: rows, Cols: cols, DstStride: cols, YStride: cols, GOff: rows * cols, Mode: c.mode}
			want := append([]float32(nil), dst...)
			if c.k.Entry == "swiglu" {
				shaders.SwiGLUTwin(p, want, y)
			} else {
				shaders.AccumTwin(p, want, y)
			}
			got := shaders.Bits(dst)
			if err := d.Run(c.k, shaders.Spec{}, [3]uint32{2, rows, 1}, p.Words(), got, shaders.Bits(y)); err != nil {
				t.Fatal(err)
			}
			near(t, c.name, shaders.Floats(got), want, 1e-6)
		})
	}
	t.Run("add", func(t *testing.T) {
		n := 1000
		dst, x := randn(r, n+3, 1), randn(r, n+5, 1)
		p := shaders.AddParams{N: uint32(n), DstOff: 3, XOff: 5, NX: 4}
		want := append([]float32(nil), dst...)
		shaders.AddTwin(p, want, x)
		got := shaders.Bits(dst)
		if err := d.Run(shaders.Add, shaders.Spec{}, [3]uint32{4, 1, 1}, p.Words(), got, shaders.Bits(x)); err != nil {
			t.Fatal(err)
		}
		near(t, "add", shaders.Floats(got), want, 0)
	})
	t.Run("scale", func(t *testing.T) {
		n := 1000
		x := randn(r, n+3, 1)
		p := shaders.ScaleParams{N: uint32(n), Off: 3, S: 0.22, NX: 4}
		want := append([]float32(nil), x...)
		shaders.ScaleTwin(p, want)
		got := shaders.Bits(x)
		if err := d.Run(shaders.Scale, shaders.Spec{}, [3]uint32{4, 1, 1}, p.Words(), got); err != nil {
			t.Fatal(err)
		}
		near(t, "scale", shaders.Floats(got), want, 0)
	})
	t.Run("copy", func(t *testing.T) {
		n := 1000
		src, dst := randn(r, n+7, 1), make([]float32, n+2)
		p := shaders.CopyParams{N: uint32(n), SrcOff: 7, DstOff: 2, NX: 4}
		want := append([]float32(nil), dst...)
		shaders.CopyTwin(p, src, want)
		got := shaders.Bits(dst)
		if err := d.Run(shaders.Copy, shaders.Spec{}, [3]uint32{4, 1, 1}, p.Words(), shaders.Bits(src), got); err != nil {
			t.Fatal(err)
		}
		near(t, "copy", shaders.Floats(got), want, 0)
	})
}

// TestArgmax includes ties (lowest index wins) and n not a multiple of
// the workgroup.
func TestArgmax(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(17, 18))
	for _, n := range []int{1, 255, 1000, 32003} {
		v := randn(r, n+1, 1)
		v[1+n/2] = 10
		v[1+n-1] = 10 // a tie later: the lower index wins
		p := shaders.ArgmaxParams{N: uint32(n), Off: 1}
		want := shaders.ArgmaxTwin(p, v)
		out := []uint32{0}
		if err := d.Run(shaders.Argmax, shaders.Spec{}, [3]uint32{1, 1, 1}, p.Words(), shaders.Bits(v), out); err != nil {
			t.Fatal(err)
		}
		if out[0] != want {
			t.Errorf("n=%d: argmax %d, want %d", n, out[0], want)
		}
	}
}

// TestSample draws with the kernel and with runtime/sample's Sampler (the
// reference the engine uses) from the same stream and requires the same
// ids, and checks the twin too.
func TestSample(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(19, 20))
	for _, c := range []struct {
		n, k             int
		temp, topP, minP float32
	}{
		{1000, 40, 0.8, 0, 0},
		{1000, 40, 1.0, 0.9, 0},
		{513, 8, 1.5, 0.95, 0.05},
		{300, 1, 0.7, 0, 0},
	} {
		t.Run(fmt.Sprintf("n=%d/k=%d/T=%v/p=%v/minp=%v", c.n, c.k, c.temp, c.topP, c.minP), func(t *testing.T) {
			const seed, draws = 0x1234_5678_9abc, 24
			s, err := sample.New(sample.Params{Temperature: c.temp, TopK: c.k, TopP: c.topP, MinP: c.minP, Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
			v := randn(r, c.n, 2)
			for i := range uint32(draws) {
				want := s.Sample(v, nil)
				p := shaders.SampleParams{N: uint32(c.n), Seed: seed, Draw: i, Temp: c.temp, TopP: c.topP, MinP: c.minP}
				out := []uint32{0}
				if err := d.Run(shaders.Sample, shaders.Spec{K: c.k}, [3]uint32{1, 1, 1}, p.Words(), shaders.Bits(v), out); err != nil {
					t.Fatal(err)
				}
				if twin := shaders.SampleTwin(c.k, p, v); int(twin) != want {
					t.Errorf("draw %d: twin %d, sample.Sampler %d", i, twin, want)
				}
				if int(out[0]) != want {
					t.Errorf("draw %d: kernel %d, sample.Sampler %d", i, out[0], want)
				}
			}
		})
	}
}

// TestMoEAct: gpt-oss's expert biases and clamped SwiGLU (and plain
// SwiGLU without biases) over slots of routed experts, one slot empty,
// against the twins. Bound 1e-6: elementwise f32 with one exp each.
func TestMoEAct(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(31, 32))
	const tk, maxw, bw, dd, experts = 6, 40, 36, 24, 4
	routes := []uint32{2, 0, 0, 0, shaders.NoExpert, 0, 3, 0, 1, 0, 2, 0}
	for _, clamped := range []bool{false, true} {
		t.Run(fmt.Sprintf("clamped=%v", clamped), func(t *testing.T) {
			g, u := randn(r, tk*maxw, 2), randn(r, tk*maxw, 2)
			gb, ub := randn(r, 3+experts*bw, 1), randn(r, 5+experts*bw, 1)
			p := shaders.MoEActParams{TK: tk, MaxW: maxw, D: dd, HasBias: clamped, GBOff: 3, UBOff: 5, BW: bw, Clamped: clamped, Alpha: 1.702, Limit: 0.7}
			wg := slices.Clone(g)
			shaders.MoEActTwin(p, routes, wg, slices.Clone(u), gb, ub)
			gg := shaders.Bits(g)
			if err := d.Run(shaders.MoEAct, shaders.Spec{}, [3]uint32{(bw + 63) / 64, tk, 1}, p.Words(), slices.Clone(routes), gg, shaders.Bits(u), shaders.Bits(gb), shaders.Bits(ub)); err != nil {
				t.Fatal(err)
			}
			near(t, "moe_act", shaders.Floats(gg), wg, 1e-6)
			y, db := randn(r, tk*dd, 1), randn(r, 3+experts*dd, 1)
			wy := slices.Clone(y)
			shaders.MoEBiasTwin(p, routes, wy, db)
			gy := shaders.Bits(y)
			if err := d.Run(shaders.MoEBias, shaders.Spec{}, [3]uint32{1, tk, 1}, p.Words(), slices.Clone(routes), []uint32{0}, gy, shaders.Bits(db), []uint32{0}); err != nil {
				t.Fatal(err)
			}
			near(t, "moe_bias", shaders.Floats(gy), wy, 1e-6)
		})
	}
}

// TestMoEFormats runs moe_gu (with its swiglu), then either moe_down and
// moe_combine or moe_down_sum, for every weight format, all experts under
// one key as the backend gathers them, against MoETwin. Widths and D are
// ragged where the format allows: f32 and f16 rows of 37 and 70 columns
// (not whole units, and odd f16 rows that start mid-word, so col4 takes
// every column), row counts that leave the last tile of 32 rows partly
// empty; the block formats use whole blocks (tensor.Quantize refuses
// others) with more experts than slots, a non-resident expert and empty
// slots. Bound 1e-5 relative to max(1, |out|): f32 sums in another order.
func TestMoEFormats(t *testing.T) {
	for _, f := range shaders.Formats {
		for _, sum := range []bool{false, true} {
			for _, l := range []int{shaders.MoELanes, 1} {
				t.Run(fmt.Sprintf("%v/sum=%v/L=%d", f, sum, l), func(t *testing.T) { testMoEFormat(t, f, sum, l, false) })
			}
			t.Run(fmt.Sprintf("%v/sum=%v/L=1/xu", f, sum), func(t *testing.T) { testMoEFormat(t, f, sum, 1, true) })
		}
	}
}

// xu reads moe_gu's x and the down kernels' g through uniform bindings
// (Spec.XU), which the backend binds only at offsets and strides that are
// multiples of four: x's rows then start on quads and are padded apart,
// and g's rows are maxW apart with maxW rounded up to four.
func testMoEFormat(t *testing.T, f tensor.DType, sum bool, lanes int, xu bool) {
	d := dev(t)
	r := rand.New(rand.NewPCG(21, uint64(f)))
	D, widths := 37, []int{70, 33, 0, 5}
	switch f {
	case tensor.F16:
		D, widths = 70, []int{37, 96, 0, 8}
	case tensor.Q4_K:
		D, widths = 256, []int{512, 256, 0, 256}
	case tensor.Q8_0, tensor.Q4_0, tensor.MXFP4:
		D, widths = 96, []int{64, 160, 0, 32}
	}
	const T, K = 3, 2
	bufs := expertBufs{}
	entries := make([]shaders.MoEEntry, len(widths))
	maxW := 0
	for i, w := range widths {
		if w == 0 {
			continue
		}
		en := &entries[i]
		en.Width = uint32(w)
		en.GateKey, en.GateBase = bufs.put(t, r, 1, f, w, D)
		en.UpKey, en.UpBase = bufs.put(t, r, 1, f, w, D)
		en.DownKey, en.DownBase = bufs.put(t, r, 1, f, D, w)
		maxW = max(maxW, w)
	}
	key := entries[0].GateKey
	table := shaders.MoETableWords(entries)
	var routes []uint32
	for _, row := range [][]uint32{{1, 0}, {3, shaders.NoExpert}, {2, 1}} {
		for _, id := range row {
			routes = append(routes, id, math.Float32bits(r.Float32()))
		}
	}
	xOff, xStride := 3, D // x not on a quad
	if xu {
		xOff, xStride, maxW = 4, (D+7)&^3, (maxW+3)&^3 // rows on quads, 4 to 7 values of padding apart
	}
	n := xOff + T*xStride
	if xu {
		n = (n + 3) &^ 3 // whole vec4s
	}
	x := randn(r, n, 1)
	dst := randn(r, T*D, 1)
	p := shaders.MoEParams{T: T, K: K, D: uint32(D), XOff: uint32(xOff), XStride: uint32(xStride), MaxW: uint32(maxW), SwiGLU: true, Key: key}
	c := shaders.MoECombineParams{T: T, K: K, D: uint32(D), DstStride: uint32(D), AddRes: true, ResOff: 1, ResStride: uint32(D)}
	res := randn(r, 1+T*D, 1)
	want, wantRes := append([]float32(nil), dst...), append([]float32(nil), res...)
	shaders.MoETwin(p, c, bufs, table, routes, x, want, wantRes)

	g, y := make([]uint32, T*K*maxW), make([]uint32, T*K*D)
	xb := shaders.Bits(x)
	spec := shaders.Spec{Format: f, L: lanes}
	if xu {
		spec.XU = len(xb) / 4
	}
	p.NX = uint32(shaders.MoETiles(maxW, lanes))
	if err := d.Run(shaders.MoEGateUp, spec, [3]uint32{p.NX, 1, T * K}, p.Words(), bufs[1], table, routes, xb, g, make([]uint32, len(g)), []uint32{0}); err != nil {
		t.Fatal(err)
	}
	p.NX = uint32(shaders.MoETiles(D, lanes))
	got, gotRes := shaders.Bits(dst), shaders.Bits(res)
	if xu {
		spec.XU = len(g) / 4 // T·K·maxW, a multiple of four
	}
	if sum {
		p.DstStride, p.AddRes, p.ResOff, p.ResStride = c.DstStride, true, c.ResOff, c.ResStride
		if err := d.Run(shaders.MoEDownSum, spec, [3]uint32{p.NX, 1, T}, p.Words(), bufs[1], table, routes, xb, g, got, gotRes); err != nil {
			t.Fatal(err)
		}
	} else {
		if err := d.Run(shaders.MoEDown, spec, [3]uint32{p.NX, 1, T * K}, p.Words(), bufs[1], table, routes, xb, g, y, []uint32{0}); err != nil {
			t.Fatal(err)
		}
		if err := d.Run(shaders.MoECombine, shaders.Spec{}, [3]uint32{uint32(D+63) / 64, T, 1}, c.Words(), table, routes, y, got, gotRes); err != nil {
			t.Fatal(err)
		}
	}
	near(t, "moe", shaders.Floats(got), want, 1e-5)
	near(t, "moe residual", shaders.Floats(gotRes), wantRes, 1e-5)
}
