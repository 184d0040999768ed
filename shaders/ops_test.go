package shaders_test

import (
	"fmt"
	"math"
	"math/rand/v2"
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

// pool lays out experts as the backend's pooled expert buffer: a table of
// four words per expert, then each expert's gate, up and down matrices.
func pool(t *testing.T, r *rand.Rand, f tensor.DType, dim int, widths []int) []uint32 {
	w := make([]uint32, 4*len(widths))
	for e, width := range widths {
		if width == 0 {
			continue
		}
		for j, shape := range [][2]int{{width, dim}, {width, dim}, {dim, width}} {
			w[4*e+j] = uint32(len(w))
			w = append(w, weights(t, r, f, shape[0], shape[1])...)
		}
		w[4*e+3] = uint32(width)
	}
	return w
}

// TestMoE: experts of different widths (one not resident), empty slots,
// several tokens; f32 with widths that are not multiples of 32 and q8_0.
// Bound 1e-5 relative to max(1, |out|).
func TestMoE(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(13, 14))
	for _, c := range []struct {
		f      tensor.DType
		dim    int
		widths []int
	}{
		{tensor.F32, 40, []int{32, 96, 0, 16, 70}},
		{tensor.Q8_0, 64, []int{32, 96, 64, 0}},
	} {
		t.Run(c.f.String(), func(t *testing.T) {
			const T, K = 3, 2
			w := pool(t, r, c.f, c.dim, c.widths)
			routes := []uint32{}
			ids := [][]uint32{{1, 0}, {4 % uint32(len(c.widths)), shaders.NoExpert}, {1, 3 % uint32(len(c.widths))}}
			for _, row := range ids {
				for _, id := range row {
					if id != shaders.NoExpert && c.widths[id] == 0 {
						id = 0
					}
					routes = append(routes, id, math.Float32bits(r.Float32()))
				}
			}
			maxW := 0
			for _, x := range c.widths {
				maxW = max(maxW, x)
			}
			x := randn(r, T*c.dim, 1)
			dst := randn(r, T*c.dim, 1) // the shared experts' sum
			h := make([]float32, T*K*maxW)
			p := shaders.MoEParams{T: T, K: K, D: uint32(c.dim), XStride: uint32(c.dim), MaxW: uint32(maxW), DstStride: uint32(c.dim)}
			want := append([]float32(nil), dst...)
			shaders.MoETwin(c.f, p, w, routes, x, append([]float32(nil), h...), want)
			got := shaders.Bits(dst)
			bufs := [][]uint32{w, routes, shaders.Bits(x), shaders.Bits(h), got}
			p.NX = uint32(maxW)
			if err := d.Run(shaders.MoEUp, shaders.Spec{Format: c.f}, [3]uint32{uint32(maxW), 1, T * K}, p.Words(), bufs...); err != nil {
				t.Fatal(err)
			}
			p.NX = uint32(c.dim)
			if err := d.Run(shaders.MoEDown, shaders.Spec{Format: c.f}, [3]uint32{uint32(c.dim), 1, T}, p.Words(), bufs...); err != nil {
				t.Fatal(err)
			}
			near(t, "moe", shaders.Floats(got), want, 1e-5)
		})
	}
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
