package shaders_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/moderuntime/mode/runtime/sample"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
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

// TestAttention: decode over a cache longer than one 64-position split
// and a causal prefill batch, with grouped query heads. Bound 1e-5: the
// split softmax rescales partial sums the twin computes in one pass.
func TestAttention(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(9, 10))
	for _, c := range []struct{ T, pos0 int }{{1, 0}, {1, 130}, {7, 60}} {
		t.Run(fmt.Sprintf("T=%d/pos0=%d", c.T, c.pos0), func(t *testing.T) {
			const heads, kvHeads, hd, seq = 4, 2, 24, 200
			q := randn(r, c.T*heads*hd, 1)
			kc := randn(r, seq*kvHeads*hd, 1)
			vc := randn(r, seq*kvHeads*hd, 1)
			nsplit := (c.pos0 + c.T + shaders.AttnSplit - 1) / shaders.AttnSplit
			p := shaders.AttnParams{T: uint32(c.T), Heads: heads, KVHeads: kvHeads, HeadDim: hd, Pos0: uint32(c.pos0),
				QStride: heads * hd, DstStride: heads * hd, NSplit: uint32(nsplit), Scale: float32(math.Sqrt(hd))}
			want := make([]float32, c.T*heads*hd)
			shaders.AttentionTwin(p, q, kc, vc, want)
			part := make([]uint32, c.T*heads*nsplit*(hd+2))
			got := make([]uint32, len(want))
			bufs := [][]uint32{shaders.Bits(q), shaders.Bits(kc), shaders.Bits(vc), part, got}
			if err := d.Run(shaders.AttnPartial, shaders.Spec{}, [3]uint32{uint32(nsplit), heads, uint32(c.T)}, p.Words(), bufs...); err != nil {
				t.Fatal(err)
			}
			if err := d.Run(shaders.AttnReduce, shaders.Spec{}, [3]uint32{heads, uint32(c.T), 1}, p.Words(), bufs...); err != nil {
				t.Fatal(err)
			}
			near(t, "attention", shaders.Floats(got), want, 1e-5)
		})
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
			shaders.AttentionF16Twin(p, q, kc, vc, want)
			part := make([]uint32, c.T*heads*nsplit*(hd+2))
			got := make([]uint32, len(want))
			spec := shaders.Spec{KVF16: true}
			bufs := [][]uint32{shaders.Bits(q), kc, vc, part, got}
			if err := d.Run(shaders.AttnPartial, spec, [3]uint32{uint32(nsplit), heads, uint32(c.T)}, p.Words(), bufs...); err != nil {
				t.Fatal(err)
			}
			if err := d.Run(shaders.AttnReduce, spec, [3]uint32{heads, uint32(c.T), 1}, p.Words(), bufs...); err != nil {
				t.Fatal(err)
			}
			near(t, "attention-f16", shaders.Floats(got), want, 1e-5)
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
	} {
		t.Run(c.name, func(t *testing.T) {
			const T = 70
			logits := randn(r, T*c.e, 2)
			bias := shaders.Bits(randn(r, c.e, 0.3))
			p := shaders.RouteParams{T: T, LogitsStride: uint32(c.e), Sigmoid: c.sigmoid, HasBias: c.bias, Norm: c.norm, Scale: c.scale}
			want := make([]uint32, 2*T*c.k)
			shaders.RouteTwin(c.e, c.k, p, logits, bias, want)
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
func TestMoE(t *testing.T) {
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
	}{
		{32, loc{1, tensor.Q8_0}, loc{1, tensor.Q8_0}, loc{2, tensor.F32}},
		{70, loc{2, tensor.F32}, loc{2, tensor.F32}, loc{1, tensor.F32}},
		{0, loc{}, loc{}, loc{}}, // not resident
		{96, loc{1, tensor.Q8_0}, loc{2, tensor.Q8_0}, loc{1, tensor.Q8_0}},
	}
	entries := make([]shaders.MoEEntry, len(experts))
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
	}
	table := shaders.MoETableWords(entries)
	var routes []uint32
	for _, row := range [][]uint32{{1, 0}, {3, shaders.NoExpert}, {1, 3}} {
		for _, id := range row {
			routes = append(routes, id, math.Float32bits(r.Float32()))
		}
	}
	x := randn(r, T*D, 1)
	dst := randn(r, T*D, 1) // the shared experts' sum
	p := shaders.MoEParams{T: T, K: K, D: D, XStride: D, MaxW: uint32(maxW)}
	c := shaders.MoECombineParams{T: T, K: K, D: D, DstStride: D}
	want := append([]float32(nil), dst...)
	shaders.MoETwin(p, c, bufs, table, routes, x, want)

	g, u, y := make([]uint32, T*K*maxW), make([]uint32, T*K*maxW), make([]uint32, T*K*D)
	keys := func(pick func(shaders.MoEEntry) uint32) []uint32 {
		var ks []uint32
		for i, e := range entries {
			if experts[i].width > 0 && !slices.Contains(ks, pick(e)) {
				ks = append(ks, pick(e))
			}
		}
		return ks
	}
	run := func(k shaders.Kernel, key uint32, rows int) {
		t.Helper()
		p.Key, p.NX = key, uint32(rows)
		spec := shaders.Spec{Format: shaders.Formats[key&7]}
		out := y
		if k.Entry == shaders.MoEGateUp.Entry {
			out = u
		}
		if err := d.Run(k, spec, [3]uint32{uint32(rows), 1, T * K}, p.Words(), bufs[key>>3], table, routes, shaders.Bits(x), g, out); err != nil {
			t.Fatal(err)
		}
	}
	gu := append(keys(func(e shaders.MoEEntry) uint32 { return e.GateKey }), keys(func(e shaders.MoEEntry) uint32 { return e.UpKey })...)
	slices.Sort(gu)
	for _, key := range slices.Compact(gu) {
		run(shaders.MoEGateUp, key, maxW)
	}
	fp := shaders.FFNParams{Rows: T * K, Cols: uint32(maxW), DstStride: uint32(maxW), YStride: uint32(maxW)}
	if err := d.Run(shaders.SwiGLU, shaders.Spec{}, [3]uint32{uint32(maxW+63) / 64, T * K, 1}, fp.Words(), g, u); err != nil {
		t.Fatal(err)
	}
	downs := keys(func(e shaders.MoEEntry) uint32 { return e.DownKey })
	if len(downs) != 3 {
		t.Fatalf("%d down keys, want 3 (the test must spread experts)", len(downs))
	}
	for _, key := range downs {
		run(shaders.MoEDown, key, D)
	}
	got := shaders.Bits(dst)
	if err := d.Run(shaders.MoECombine, shaders.Spec{}, [3]uint32{1, T, 1}, c.Words(), table, routes, y, got); err != nil {
		t.Fatal(err)
	}
	near(t, "moe", shaders.Floats(got), want, 1e-5)
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
