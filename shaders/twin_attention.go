package shaders

import "math"

// AttentionTwin is attention.wgsl's attn_partial followed by attn_reduce:
// causal grouped-query attention of p.T query rows over the caches, each
// token t seeing positions first..Pos0+t (first = 0, or the start of its
// window of p.Window), position i read from slot i mod p.Ring, and with
// p.HasSinks head h's sink logit sinks[p.SinksOff+h] joining the softmax
// (its maximum and denominator) without a value.
func AttentionTwin(p AttnParams, q, kc, vc, sinks, dst []float32) {
	kvd := p.KVHeads * p.HeadDim
	group := p.Heads / p.KVHeads
	ring := p.Ring
	if ring == 0 {
		ring = 1 << 31
	}
	sc := make([]float32, 0, 64)
	for t := range p.T {
		pos := p.Pos0 + t
		first := uint32(0)
		if p.Window > 0 && pos+1 > p.Window {
			first = pos + 1 - p.Window
		}
		for h := range p.Heads {
			koff := (h / group) * p.HeadDim
			qh := q[p.QOff+t*p.QStride+h*p.HeadDim:][:p.HeadDim]
			sc = sc[:0]
			m := float32(math.Inf(-1))
			for i := first; i <= pos; i++ {
				var d float32
				for x, v := range qh {
					d += v * kc[(i%ring)*kvd+koff+uint32(x)]
				}
				s := d / p.Scale
				sc = append(sc, s)
				m = max(m, s)
			}
			var l float32
			if p.HasSinks {
				m = max(m, sinks[p.SinksOff+h])
				l = float32(math.Exp(float64(sinks[p.SinksOff+h] - m)))
			}
			for i, s := range sc {
				sc[i] = float32(math.Exp(float64(s - m)))
				l += sc[i]
			}
			o := dst[p.DstOff+t*p.DstStride+h*p.HeadDim:][:p.HeadDim]
			for x := range o {
				var a float32
				for i, e := range sc {
					a += e * vc[((first+uint32(i))%ring)*kvd+koff+uint32(x)]
				}
				o[x] = a / l
			}
		}
	}
}

// AttentionF16Twin is attention.wgsl specialised by Spec.KVF16: the same
// attention over caches of packed f16 pairs (see PackF16Twin).
func AttentionF16Twin(p AttnParams, q []float32, kc, vc []uint32, sinks, dst []float32) {
	AttentionTwin(p, q, UnpackF16(kc), UnpackF16(vc), sinks, dst)
}

// MLAAttnTwin is mla_attn.wgsl.
func MLAAttnTwin(p MLAAttnParams, q, kv, pe, sc, out []float32) {
	d, kvw := p.Nope+p.Rope, p.Nope+p.V
	for j := range p.T * p.Heads {
		t, h := j/p.Heads, j%p.Heads
		n := p.Pos0 + t + 1
		qb := p.QOff + t*p.Heads*d + h*d
		so := j * p.ScStride
		var m float32
		for i := range n {
			kb := p.KVOff + i*p.Heads*kvw + h*kvw
			pb := p.PEOff + i*p.Rope
			var dot float32
			for x := range p.Nope {
				dot += q[qb+x] * kv[kb+x]
			}
			for x := range p.Rope {
				dot += q[qb+p.Nope+x] * pe[pb+x]
			}
			s := dot / p.Div
			sc[so+i] = s
			if i == 0 || s > m {
				m = s
			}
		}
		var sum float32
		for i := range n {
			e := float32(math.Exp(float64(sc[so+i] - m)))
			sc[so+i] = e
			sum += e
		}
		for i := range n {
			sc[so+i] /= sum
		}
		ob := p.OutOff + t*p.Heads*p.V + h*p.V
		for x := range p.V {
			var acc float32
			for i := range n {
				acc += sc[so+i] * kv[p.KVOff+i*p.Heads*kvw+h*kvw+p.Nope+x]
			}
			out[ob+x] = acc
		}
	}
}
