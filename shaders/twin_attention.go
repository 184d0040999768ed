package shaders

import "math"

// AttentionTwin is attention.wgsl's attn_partial followed by attn_reduce:
// causal grouped-query attention of p.T query rows over the caches, each
// token t seeing positions 0..Pos0+t.
func AttentionTwin(p AttnParams, q, kc, vc, dst []float32) {
	kvd := p.KVHeads * p.HeadDim
	group := p.Heads / p.KVHeads
	sc := make([]float32, 0, 64)
	for t := range p.T {
		pos := p.Pos0 + t
		for h := range p.Heads {
			koff := (h / group) * p.HeadDim
			qh := q[p.QOff+t*p.QStride+h*p.HeadDim:][:p.HeadDim]
			sc = sc[:0]
			m := float32(math.Inf(-1))
			for i := range pos + 1 {
				var d float32
				for x, v := range qh {
					d += v * kc[i*kvd+koff+uint32(x)]
				}
				s := d / p.Scale
				sc = append(sc, s)
				m = max(m, s)
			}
			var l float32
			for i, s := range sc {
				sc[i] = float32(math.Exp(float64(s - m)))
				l += sc[i]
			}
			o := dst[p.DstOff+t*p.DstStride+h*p.HeadDim:][:p.HeadDim]
			for x := range o {
				var a float32
				for i, e := range sc {
					a += e * vc[uint32(i)*kvd+koff+uint32(x)]
				}
				o[x] = a / l
			}
		}
	}
}

// AttentionF16Twin is attention.wgsl specialised by Spec.KVF16: the same
// attention over caches of packed f16 pairs (see PackF16Twin).
func AttentionF16Twin(p AttnParams, q []float32, kc, vc []uint32, dst []float32) {
	AttentionTwin(p, q, UnpackF16(kc), UnpackF16(vc), dst)
}
