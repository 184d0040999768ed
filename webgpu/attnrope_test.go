package webgpu_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/webgpu"
)

// TestAttnRoPEFusion decodes positions 0..69 through RoPE(q), RoPE(k) and
// Attention, which the backend records as one attn_rope dispatch that
// leaves k unrotated and keeps the rope of k aside. Reading k back must
// give the rotated k (the rope put back in), and so must a product of k
// recorded after later ops; a k overwritten first needs no rope. q, k and
// the attention output must match the CPU backend (bound 1e-5, f32).
func TestAttnRoPEFusion(t *testing.T) {
	const heads, kvHeads, hd, steps = 4, 2, 16, 70
	r := rand.New(rand.NewPCG(61, 62))
	inv := make([]float32, hd/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(10000, float64(2*i)/hd))
	}
	rope := &backend.Rope{InvFreq: inv, AttnFactor: 1}
	rows := func(n, cols int) *tensor.Tensor {
		v := make([]float32, n*cols)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return tensor.FromF32("t", []int{n, cols}, v)
	}
	qt, kt, vt := rows(steps, heads*hd), rows(steps, kvHeads*hd), rows(steps, kvHeads*hd)
	wt, wat := rows(8, kvHeads*hd), rows(8, heads*hd)
	for _, c := range []struct {
		name  string
		ropes int // rope dispatches per step
	}{{"read", 1}, {"product", 1}, {"overwritten", 0}} {
		t.Run(c.name, func(t *testing.T) {
			type out struct{ q, k, att, y []float32 }
			run := func(be backend.Backend, ropes func() int) []out {
				t.Helper()
				qw, _ := be.Upload(qt)
				kw, _ := be.Upload(kt)
				vw, _ := be.Upload(vt)
				ww, _ := be.Upload(wt)
				wa, _ := be.Upload(wat)
				q, _ := be.NewBuf(1, heads*hd)
				k, _ := be.NewBuf(1, kvHeads*hd)
				v, _ := be.NewBuf(1, kvHeads*hd)
				att, _ := be.NewBuf(1, heads*hd)
				y, _ := be.NewBuf(1, 8)
				cache, err := be.NewKV(1, steps, kvHeads*hd)
				if err != nil {
					t.Fatal(err)
				}
				var res []out
				for pos := range steps {
					be.Embed(q, qw, []int{pos})
					be.Embed(k, kw, []int{pos})
					be.Embed(v, vw, []int{pos})
					n0 := ropes()
					be.RoPE(q, hd, pos, rope)
					be.RoPE(k, hd, pos, rope)
					be.Attention(att, q, k, v, cache, backend.AttnSpec{Heads: heads, KVHeads: kvHeads, HeadDim: hd, Pos0: pos})
					switch c.name {
					case "product":
						be.MatMul(y, att, wa, nil) // something else first
						be.MatMul(y, k, ww, nil)
					case "overwritten":
						be.Embed(k, kw, []int{(pos + 1) % steps})
					}
					o := out{make([]float32, heads*hd), make([]float32, kvHeads*hd), make([]float32, heads*hd), make([]float32, 8)}
					for _, rd := range []struct {
						b   backend.Buf
						dst []float32
					}{{q, o.q}, {att, o.att}, {y, o.y}, {k, o.k}} {
						if err := be.Read(rd.b, rd.dst); err != nil {
							t.Fatal(err)
						}
					}
					if n := ropes() - n0; n != c.ropes && ropes() >= 0 {
						t.Fatalf("position %d: %d rope dispatches, want %d", pos, n, c.ropes)
					}
					res = append(res, o)
				}
				return res
			}
			want := run(cpu.New(cpu.Options{Exact: true}), func() int { return -1 << 20 })
			gpu := newBackend(t, webgpu.Options{})
			got := run(gpu, func() int { return webgpu.Dispatches(gpu, "rope.wgsl") })
			for pos := range want {
				for _, v := range []struct {
					name      string
					got, want []float32
				}{{"q", got[pos].q, want[pos].q}, {"k", got[pos].k, want[pos].k}, {"att", got[pos].att, want[pos].att}, {"y", got[pos].y, want[pos].y}} {
					for i := range v.want {
						if d := math.Abs(float64(v.got[i]-v.want[i])) / math.Max(1, math.Abs(float64(v.want[i]))); !(d <= 1e-5) {
							t.Fatalf("position %d: %s[%d] = %v, cpu %v", pos, v.name, i, v.got[i], v.want[i])
						}
					}
				}
			}
		})
	}
}
