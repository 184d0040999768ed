package shaders_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/shaders"
)

// TestRouterRoute runs router_route (RouterRoute, and RouterRouteNorm with
// the RMSNorm on the way in) for every format on Mixtral's router and, in
// f32 and q4_0, on routers of ragged expert counts, the lane counts the backends use and both ways lanes meet where
// the device has subgroups, with softmax, sigmoid with a selection bias
// and DeepSeek's groups. The logits must be matvec main's on the device
// (closeTo's 1e-6; the normalised row MatVecNorm's bit for bit) and the
// routes route.wgsl's over main's logits (the same experts, the weights
// within TestRoute's 1e-6); against the twin (RouterRouteTwin), the logits
// within TestMatVec's 1e-5, and RouteTwin over the kernel's own logits
// gives its experts, weights within 1e-6.
func TestRouterRoute(t *testing.T) {
	d := dev(t)
	r := rand.New(rand.NewPCG(61, 62))
	type rc struct {
		e, k, cols, L int
		sigmoid, bias bool
		groups        bool
	}
	for _, f := range shaders.Formats {
		// Every format on Mixtral's router; the selection rules, which do
		// not depend on the format, in f32 and q4_0 (each (E, K, format,
		// lanes) is a pipeline of its own to compile).
		cases := []rc{{8, 2, 512, 1, false, false, false}}
		if f == tensor.F32 || f == tensor.Q4_0 {
			cases = append(cases, rc{7, 3, 64, 1, false, false, false}, rc{64, 8, 256, 8, true, true, true}, rc{60, 4, 512, 4, false, false, false})
		}
		for _, c := range cases {
			if c.cols%shaders.MatVecUnit(f) != 0 {
				continue
			}
			for _, norm := range []bool{false, true} {
				for _, sg := range lanePaths(d, c.L) {
					name := fmt.Sprintf("%v/E=%d/K=%d/cols=%d/L=%d%s", f, c.e, c.k, c.cols, c.L, pathName(sg))
					if norm {
						name += "/norm"
					}
					t.Run(name, func(t *testing.T) {
						const xOff, nOff, hOff, lOff, wBase, rOff, bOff, eps = 8, 3, 5, 2, 3, 4, 1, 1e-5
						x := randn(r, xOff+c.cols, 2)
						nw := shaders.Bits(append(randn(r, nOff, 1), randn(r, c.cols, 0.3)...))
						xn := x
						if norm {
							xn = shaders.NormRowTwin(nw, nOff, eps, x, xOff, uint32(c.cols))
						}
						w := append([]uint32{1, 2, 3}, weights(t, r, f, c.e, c.cols)...)
						bias := shaders.Bits(append(randn(r, bOff, 1), randn(r, c.e, 0.3)...))
						rp := shaders.RouteParams{T: 1, LogitsOff: lOff, LogitsStride: uint32(c.e), Sigmoid: c.sigmoid, HasBias: c.bias, BiasOff: bOff,
							Norm: true, Scale: 1.5, RoutesOff: rOff}
						if c.groups {
							rp.Groups, rp.TopKGroups, rp.Top2 = 8, 4, true
						}
						p := shaders.RouterParams{Rows: uint32(c.e), Cols: uint32(c.cols), XOff: xOff, WBase: wBase, NOff: nOff, Eps: eps, HOff: hOff, Route: rp}
						spec := shaders.Spec{Format: f, L: c.L, Subgroups: sg, Norm: norm, E: c.e, K: c.k}
						logits, routes, h := make([]uint32, lOff+c.e), make([]uint32, rOff+2*c.k), make([]uint32, hOff+c.cols)
						k, plain := shaders.RouterRoute, shaders.MatVec
						args := [][]uint32{w, shaders.Bits(x), logits, bias, routes}
						if norm {
							k, plain = shaders.RouterRouteNorm, shaders.MatVecNorm
							args = append(args, nw, h)
						}
						if err := d.Run(k, spec, [3]uint32{1, 1, 1}, p.Words(), args...); err != nil {
							t.Fatal(err)
						}
						// main and route.wgsl on the device.
						per := shaders.MatVecGroupRows(shaders.MatVec, c.L)
						nx, ny := shaders.Grid((c.e + per - 1) / per)
						mp := shaders.MatMulParams{Rows: uint32(c.e), Cols: uint32(c.cols), T: 1, XOff: xOff, XStride: uint32(c.cols),
							DstOff: lOff, DstStride: uint32(c.e), WBase: wBase, NX: nx, NOff: nOff, Eps: eps, HOff: hOff}
						want, wh := make([]uint32, lOff+c.e), make([]uint32, hOff+c.cols)
						margs := [][]uint32{w, shaders.Bits(x), want, []uint32{0}, []uint32{0}, []uint32{0}}
						if norm {
							margs = append(margs, nw, wh)
						}
						mspec := shaders.Spec{Format: f, L: c.L, Subgroups: sg, Norm: norm}
						if err := d.Run(plain, mspec, [3]uint32{nx, ny, 1}, mp.Words(), margs...); err != nil {
							t.Fatal(err)
						}
						closeTo(t, "logits", logits, want)
						if norm {
							same(t, "h", h, wh)
						}
						wr := make([]uint32, len(routes))
						if err := d.Run(shaders.Route, shaders.Spec{E: c.e, K: c.k}, [3]uint32{1, 1, 1}, rp.Words(), want, bias, wr); err != nil {
							t.Fatal(err)
						}
						sameRoutes(t, "route.wgsl", routes[rOff:], wr[rOff:])
						tl, tr := make([]float32, lOff+c.e), make([]uint32, len(routes))
						shaders.RouterRouteTwin(f, c.e, c.k, p, w, xn, tl, bias, tr)
						near(t, "twin logits", shaders.Floats(logits)[lOff:], tl[lOff:], 1e-5)
						own := make([]uint32, len(routes))
						shaders.RouteTwin(c.e, c.k, rp, shaders.Floats(logits), bias, own)
						sameRoutes(t, "RouteTwin", routes[rOff:], own[rOff:])
					})
				}
			}
		}
	}
}

// sameRoutes fails t unless got names want's experts in want's order with
// weights within 1e-6 relative to max(1, |want|).
func sameRoutes(t *testing.T, what string, got, want []uint32) {
	t.Helper()
	for i := 0; i < len(want); i += 2 {
		if got[i] != want[i] {
			t.Fatalf("%s: slot %d: expert %d, want %d", what, i/2, got[i], want[i])
		}
		gw, ww := math.Float32frombits(got[i+1]), math.Float32frombits(want[i+1])
		if math.Abs(float64(gw-ww)) > 1e-6*math.Max(1, math.Abs(float64(ww))) {
			t.Fatalf("%s: slot %d: weight %v, want %v", what, i/2, gw, ww)
		}
	}
}
