package webgpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/webgpu"
)

// TestNormFusion records an RMSNorm followed by matvecs that take it in
// (one, and q/k/v as one matvec_multi, which does not write the norm's
// output h) and then uses h in each way that must see the norm's output:
// read back, bound by a later product after the norm's input has changed,
// or overwritten by another norm first. Every value read must match the
// CPU backend doing the same ops (bound 1e-5, the f32 kernels' usual), and
// the norm dispatches that remain must be only those whose output is
// needed, or whose reader has too many workgroups to take it in.
func TestNormFusion(t *testing.T) {
	const D = 64
	r := rand.New(rand.NewPCG(41, 42))
	mat := func(name string, rows, cols int, std float64) *tensor.Tensor {
		v := make([]float32, rows*cols)
		for i := range v {
			v[i] = float32(std * r.NormFloat64())
		}
		if rows == 1 {
			return tensor.FromF32(name, []int{cols}, v)
		}
		return tensor.FromF32(name, []int{rows, cols}, v)
	}
	tensors := map[string]*tensor.Tensor{
		"nw": mat("nw", 1, D, 1), "nw2": mat("nw2", 1, D, 1), "x": mat("x", 1, D, 2), "x2": mat("x2", 1, D, 1),
		"wbig": mat("wbig", 65*256, D, 0.2), // 65 workgroups of 256 rows
		"wq":   mat("wq", 32, D, 0.2), "wk": mat("wk", 16, D, 0.2), "wv": mat("wv", 16, D, 0.2), "wo": mat("wo", 24, D, 0.2),
	}
	type bufs struct{ x, x2, h, q, k, v, o backend.Buf }
	// run does the ops of case c on be and returns h, q and o as read
	// back.
	run := func(t *testing.T, be backend.Backend, c string) (h, q, o []float32) {
		t.Helper()
		w := map[string]backend.Weight{}
		for n, tt := range tensors {
			var err error
			if w[n], err = be.Upload(tt); err != nil {
				t.Fatal(err)
			}
		}
		var b bufs
		for _, p := range []*backend.Buf{&b.x, &b.x2, &b.h} {
			*p, _ = be.NewBuf(1, D)
		}
		b.q, _ = be.NewBuf(1, 32)
		b.k, _ = be.NewBuf(1, 16)
		b.v, _ = be.NewBuf(1, 16)
		b.o, _ = be.NewBuf(1, 24)
		be.Embed(b.x, w["x"], []int{0}) // a one-row table: x = its row
		be.Embed(b.x2, w["x2"], []int{0})
		be.RMSNorm(b.h, b.x, w["nw"], 1e-5)
		if c == "many-groups" {
			big, _ := be.NewBuf(1, 65*256)
			be.MatMul(big, b.h, w["wbig"], nil) // too many workgroups to take the norm in
		}
		be.MatMul(b.q, b.h, w["wq"], nil)
		if c != "one" {
			be.MatMul(b.k, b.h, w["wk"], nil)
			be.MatMul(b.v, b.h, w["wv"], nil)
		}
		switch c {
		case "later-use":
			be.Add(b.x, b.x2) // the norm's input changes before h is used
			be.MatMul(b.o, b.h, w["wo"], nil)
		case "overwritten":
			be.RMSNorm(b.h, b.x, w["nw2"], 1e-5)
			be.MatMul(b.o, b.h, w["wo"], nil)
		}
		h, q, o = make([]float32, D), make([]float32, 32), make([]float32, 24)
		for _, rd := range []struct {
			b   backend.Buf
			dst []float32
		}{{b.h, h}, {b.q, q}, {b.o, o}} {
			if err := be.Read(rd.b, rd.dst); err != nil {
				t.Fatal(err)
			}
		}
		return h, q, o
	}
	for _, c := range []struct {
		name  string
		norms int // rmsnorm dispatches submitted
	}{{"one", 0}, {"read", 1}, {"later-use", 1}, {"overwritten", 0}, {"many-groups", 1}} {
		t.Run(c.name, func(t *testing.T) {
			gpu := newBackend(t, webgpu.Options{})
			hw, qw, ow := run(t, cpu.New(cpu.Options{Exact: true}), c.name)
			before := webgpu.Dispatches(gpu, "rmsnorm.wgsl")
			hg, qg, og := run(t, gpu, c.name)
			if n := webgpu.Dispatches(gpu, "rmsnorm.wgsl") - before; n != c.norms {
				t.Errorf("%d rmsnorm dispatches, want %d", n, c.norms)
			}
			for _, v := range []struct {
				name      string
				got, want []float32
			}{{"h", hg, hw}, {"q", qg, qw}, {"o", og, ow}} {
				if c.name == "overwritten" && v.name == "h" {
					continue // h is the second norm's: checked through o
				}
				for i := range v.want {
					if d := math.Abs(float64(v.got[i]-v.want[i])) / math.Max(1, math.Abs(float64(v.want[i]))); !(d <= 1e-5) {
						t.Fatalf("%s[%d] = %v, cpu %v", v.name, i, v.got[i], v.want[i])
					}
				}
			}
			t.Log(fmt.Sprintf("%s: h, q and o match the cpu", c.name))
		})
	}
}
