package shaders

import (
	"math"

	"github.com/moderuntime/mode/runtime/tensor"
)

func sigmoid(x float32) float32 { return 1 / (1 + float32(math.Exp(float64(-x)))) }

// RouterRouteTwin is router.wgsl: MatMulTwin of the router's rows over x
// into logits at p.Route.LogitsOff, then RouteTwin over them.
func RouterRouteTwin(f tensor.DType, e, k int, p RouterParams, w []uint32, x, logits []float32, bias, routes []uint32) {
	mp := MatMulParams{Rows: p.Rows, Cols: p.Cols, T: 1, XOff: p.XOff, XStride: p.Cols, DstOff: p.Route.LogitsOff, DstStride: p.Rows, WBase: p.WBase}
	MatMulTwin(f, mp, w, x, logits, nil)
	RouteTwin(e, k, p.Route, logits, bias, routes)
}

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
		if p.Groups > 1 {
			size := e / int(p.Groups)
			gs := make([]float32, p.Groups)
			keep := make([]bool, p.Groups)
			for g := range gs {
				a, b := sel[g*size], float32(-3.0e38)
				for _, v := range sel[g*size+1 : (g+1)*size] {
					if v > a {
						a, b = v, a
					} else if v > b {
						b = v
					}
				}
				gs[g] = a
				if p.Top2 {
					gs[g] = a + b
				}
			}
			for range p.TopKGroups {
				best := -1
				for g, v := range gs {
					if !keep[g] && (best < 0 || v > gs[best]) {
						best = g
					}
				}
				keep[best] = true
			}
			for i := range taken {
				taken[i] = !keep[i/size]
			}
		}
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

// MoEBlock is a later block of the layer's deeper experts for MoETwin:
// its table (MoETableWords) and its norm weights, D per expert.
type MoEBlock struct {
	Table []uint32
	Norms []uint32
}

// ActTwin is moe.wgsl's act: the gated activation of table code a.
func ActTwin(a uint32, v float32) float32 {
	switch a {
	case 1:
		return v * sigmoid(1.5957691216057308*(v+0.044715*(v*v*v)))
	case 2:
		r := max(v, 0)
		return r * r
	}
	return v * sigmoid(v)
}

// MoETwin computes what the MoE kernels compute together — moe_gu for
// every key, the activation (swiglu or moe_act), moe_down for every key,
// for each later block moe_norm, moe_gu, moe_act and moe_down adding into
// y, then moe_combine: dst (holding the shared experts' sum) += Σ_k
// weight_k · expert_k(x) per token, in rank order (from zero when c.Init,
// and added into res when c.AddRes). p.SwiGLU changes nothing here: the
// fused kernel computes the same activation. bufs maps a buffer id to
// that buffer's words; a table key's low three bits are the format code
// (FormatCode).
func MoETwin(p MoEParams, c MoECombineParams, bufs map[uint32][]uint32, table, routes []uint32, x, dst, res []float32, blocks ...MoEBlock) {
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
	block := func(te []uint32, xr []float32, y []float32, accum bool) {
		wd := te[6]
		h := make([]float32, wd)
		for i := range wd {
			gf, gw, gm := mat(te[0], te[1], wd, p.D)
			uf, uw, um := mat(te[2], te[3], wd, p.D)
			g, u := dot(gf, gw, gm, i, xr), dot(uf, uw, um, i, xr)
			h[i] = ActTwin(te[7], g) * u
		}
		df, dw, dm := mat(te[4], te[5], p.D, wd)
		for j := range p.D {
			v := dot(df, dw, dm, j, h)
			if accum {
				y[j] += v
			} else {
				y[j] = v
			}
		}
	}
	y := make([][]float32, p.T*p.K)
	for slot := range p.T * p.K {
		e := routes[p.RoutesOff+2*slot]
		if e == NoExpert || table[8*e+6] == 0 {
			continue
		}
		xr := x[p.XOff+slot/p.K*p.XStride:][:p.D]
		y[slot] = make([]float32, p.D)
		block(table[8*e:], xr, y[slot], false)
		for _, b := range blocks {
			if b.Table[8*e+6] == 0 {
				continue
			}
			// moe_norm
			hn := make([]float32, p.D)
			var s float32
			for i := range hn {
				v := xr[i] + y[slot][i]
				s += v * v
			}
			inv := 1 / float32(math.Sqrt(float64(s/float32(p.D)+p.Eps)))
			for i := range hn {
				hn[i] = math.Float32frombits(b.Norms[e*p.D+uint32(i)]) * (inv * (xr[i] + y[slot][i]))
			}
			block(b.Table[8*e:], hn, y[slot], true)
		}
	}
	for t := range c.T {
		for j := range c.D {
			o := c.DstOff + t*c.DstStride + j
			acc := dst[o]
			if c.Init {
				acc = 0
			}
			for k := range c.K {
				slot := t*c.K + k
				if y[slot] != nil {
					acc += math.Float32frombits(routes[c.RoutesOff+2*slot+1]) * y[slot][j]
				}
			}
			dst[o] = acc
			if c.AddRes {
				res[c.ResOff+t*c.ResStride+j] += acc
			}
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

// MoEActTwin is moe_act.wgsl's moe_act: for each slot's expert e, the raw
// gate and up values plus the expert's biases (when HasBias), through
// SwiGLU or the clamped variant, into g.
func MoEActTwin(p MoEActParams, routes []uint32, g, u, gb, ub []float32) {
	for slot := range p.TK {
		e := routes[2*slot]
		if e == NoExpert {
			continue
		}
		for i := range p.BW {
			a := slot*p.MaxW + i
			gv, uv := g[a], u[a]
			if p.HasBias {
				gv += gb[p.GBOff+e*p.BW+i]
				uv += ub[p.UBOff+e*p.BW+i]
			}
			if p.Clamped {
				gv = min(gv, p.Limit)
				uv = max(min(uv, p.Limit), -p.Limit)
				g[a] = (uv + 1) * (gv * sigmoid(p.Alpha*gv))
			} else {
				g[a] = (gv * sigmoid(gv)) * uv
			}
		}
	}
}

// MoEBiasTwin is moe_act.wgsl's moe_bias: y[slot] += the down bias of the
// slot's expert.
func MoEBiasTwin(p MoEActParams, routes []uint32, y, db []float32) {
	for slot := range p.TK {
		e := routes[2*slot]
		if e == NoExpert {
			continue
		}
		for j := range p.D {
			y[slot*p.D+j] += db[p.GBOff+e*p.D+j]
		}
	}
}
