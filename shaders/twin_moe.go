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

// MoETwin computes what the MoE kernels compute together — moe_gu for
// every key, swiglu, moe_down for every key, then moe_combine: dst
// (holding the shared experts' sum) += Σ_k weight_k · expert_k(x) per
// token, in rank order. bufs maps a buffer id to that buffer's words; a
// table key's low three bits are the format code (FormatCode).
func MoETwin(p MoEParams, c MoECombineParams, bufs map[uint32][]uint32, table, routes []uint32, x, dst []float32) {
	mat := func(key, base, rows, cols uint32) (tensor.DType, []uint32, Mat) {
		return Formats[key&7], bufs[key>>3], Mat{base, rows, cols}
	}
	dot := func(f tensor.DType, w []uint32, m Mat, r uint32, v []float32) float32 {
		var s float32
		for ch := uint32(0); ch*32 < m.Cols; ch++ {
			wv := WChunk(f, w, m, r, ch)
			for j := range min(32, m.Cols-32*ch) {
				s += wv[j] * v[32*ch+j]
			}
		}
		return s
	}
	y := make([][]float32, p.T*p.K)
	for slot := range p.T * p.K {
		e := routes[p.RoutesOff+2*slot]
		if e == NoExpert || table[8*e+6] == 0 {
			continue
		}
		te := table[8*e:]
		wd := te[6]
		xr := x[p.XOff+slot/p.K*p.XStride:]
		h := make([]float32, wd)
		for i := range wd {
			gf, gw, gm := mat(te[0], te[1], wd, p.D)
			uf, uw, um := mat(te[2], te[3], wd, p.D)
			g, u := dot(gf, gw, gm, i, xr), dot(uf, uw, um, i, xr)
			h[i] = (g * sigmoid(g)) * u
		}
		df, dw, dm := mat(te[4], te[5], p.D, wd)
		y[slot] = make([]float32, p.D)
		for j := range p.D {
			y[slot][j] = dot(df, dw, dm, j, h)
		}
	}
	for t := range c.T {
		for j := range c.D {
			o := c.DstOff + t*c.DstStride + j
			acc := dst[o]
			for k := range c.K {
				slot := t*c.K + k
				if y[slot] != nil {
					acc += math.Float32frombits(routes[c.RoutesOff+2*slot+1]) * y[slot][j]
				}
			}
			dst[o] = acc
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
