package shaders

import (
	"math"

	"github.com/moderuntime/mode/runtime/tensor"
)

func sigmoid(x float32) float32 { return 1 / (1 + float32(math.Exp(float64(-x)))) }

// RouteTwin is route.wgsl for e experts and k choices per token.
func RouteTwin(e, k int, p RouteParams, logits []float32, bias, routes []uint32) {
	sc := make([]float32, e)
	sel := make([]float32, e)
	for t := range p.T {
		lg := logits[p.LogitsOff+t*p.LogitsStride:][:e]
		if p.Sigmoid {
			for i, v := range lg {
				sc[i] = sigmoid(v)
			}
		} else {
			m := lg[0]
			for _, v := range lg[1:] {
				m = max(m, v)
			}
			var sum float32
			for i, v := range lg {
				sc[i] = float32(math.Exp(float64(v - m)))
				sum += sc[i]
			}
			for i := range sc {
				sc[i] /= sum
			}
		}
		copy(sel, sc)
		if p.HasBias {
			for i := range sel {
				sel[i] += math.Float32frombits(bias[p.BiasOff+uint32(i)])
			}
		}
		taken := make([]bool, e)
		ids := make([]int, k)
		var sum float32
		for r := range ids {
			best := -1
			for i, v := range sel {
				if !taken[i] && (best < 0 || v > sel[best]) {
					best = i
				}
			}
			taken[best] = true
			ids[r] = best
			sum += sc[best]
		}
		o := p.RoutesOff + 2*uint32(k)*t
		for r, id := range ids {
			v := sc[id]
			if p.Norm && sum > 0 {
				v /= sum
			}
			routes[o+2*uint32(r)] = uint32(id)
			routes[o+2*uint32(r)+1] = math.Float32bits(v * p.Scale)
		}
	}
}

// ExpertEntry is one expert's entry in a pooled expert buffer's table.
type ExpertEntry struct{ Gate, Up, Down, Width uint32 }

// MoETwin is moe.wgsl's moe_up then moe_down: dst (holding the shared
// experts' sum) += Σ_k weight_k · expert_k(x) per token, over the pooled
// weights w whose first words are the expert table. h is scratch of
// T·K·MaxW values.
func MoETwin(f tensor.DType, p MoEParams, w, routes []uint32, x, h, dst []float32) {
	width := func(e uint32) uint32 {
		if e == NoExpert {
			return 0
		}
		return w[4*e+3]
	}
	for slot := range p.T * p.K {
		t := slot / p.K
		e := routes[p.RoutesOff+2*slot]
		wd := width(e)
		if wd == 0 {
			continue
		}
		gm, um := Mat{w[4*e], wd, p.D}, Mat{w[4*e+1], wd, p.D}
		xr := x[p.XOff+t*p.XStride:]
		for i := range wd {
			var g, u float32
			for ch := uint32(0); ch*32 < p.D; ch++ {
				gv, uv := WChunk(f, w, gm, i, ch), WChunk(f, w, um, i, ch)
				for j := range min(32, p.D-32*ch) {
					g += gv[j] * xr[32*ch+j]
					u += uv[j] * xr[32*ch+j]
				}
			}
			h[slot*p.MaxW+i] = (g * sigmoid(g)) * u
		}
	}
	for t := range p.T {
		for j := range p.D {
			acc := dst[p.DstOff+t*p.DstStride+j]
			for k := range p.K {
				slot := t*p.K + k
				e := routes[p.RoutesOff+2*slot]
				wd := width(e)
				if wd == 0 {
					continue
				}
				dm := Mat{w[4*e+2], p.D, wd}
				var s float32
				for ch := uint32(0); ch*32 < wd; ch++ {
					dv := WChunk(f, w, dm, j, ch)
					for c := range min(32, wd-32*ch) {
						s += dv[c] * h[slot*p.MaxW+32*ch+c]
					}
				}
				acc += math.Float32frombits(routes[p.RoutesOff+2*slot+1]) * s
			}
			dst[p.DstOff+t*p.DstStride+j] = acc
		}
	}
}

// SwiGLUTwin is ffn.wgsl's swiglu: dst = silu(dst)·y.
func SwiGLUTwin(p FFNParams, dst, y []float32) {
	for r := range p.Rows {
		for c := range p.Cols {
			a := p.DstOff + r*p.DstStride + c
			v := dst[a]
			dst[a] = (v * sigmoid(v)) * y[p.YOff+r*p.YStride+c]
		}
	}
}

// AccumTwin is ffn.wgsl's accum.
func AccumTwin(p FFNParams, dst, y []float32) {
	for r := range p.Rows {
		for c := range p.Cols {
			o := p.DstOff + r*p.DstStride + c
			if p.Mode&AccumZero != 0 {
				dst[o] = 0
				continue
			}
			v := y[p.YOff+r*p.YStride+c]
			if p.Mode&AccumGated != 0 {
				v *= sigmoid(y[p.GOff+r])
			}
			if p.Mode&AccumInit != 0 {
				dst[o] = v
			} else {
				dst[o] += v
			}
		}
	}
}
