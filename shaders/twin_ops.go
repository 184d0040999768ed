package shaders

import (
	"math"

	"github.com/moderuntime/mode/runtime/tensor"
)

// The twins below compute what the kernel of the same name computes, from
// the same params and buffers (weights as u32 words, activations as
// float32). They sum in plain order where the kernels reduce in a tree, so
// they agree with the kernels to rounding, not bit for bit.

// EmbedTwin is embed.wgsl.
func EmbedTwin(f tensor.DType, p EmbedParams, w, ids []uint32, dst []float32) {
	m := Mat{p.WBase, p.Rows, p.Cols}
	for i := range p.N {
		id := ids[p.IdsOff+i]
		if id < p.Row0 || id-p.Row0 >= p.Rows {
			continue
		}
		for ch := uint32(0); ch*32 < p.Cols; ch++ {
			v := WChunk(f, w, m, id-p.Row0, ch)
			n := min(32, p.Cols-32*ch)
			copy(dst[p.DstOff+i*p.DstStride+32*ch:][:n], v[:n])
		}
	}
}

// MatMulTwin is matmul.wgsl.
func MatMulTwin(f tensor.DType, p MatMulParams, w []uint32, x, dst []float32, bias []uint32) {
	m := Mat{p.WBase, p.Rows, p.Cols}
	for r := range p.Rows {
		for t := range p.T {
			var acc float32
			for ch := uint32(0); ch*32 < p.Cols; ch++ {
				wv := WChunk(f, w, m, r, ch)
				n := min(32, p.Cols-32*ch)
				xb := x[p.XOff+t*p.XStride+32*ch:]
				var s float32
				for j := range n {
					s += wv[j] * xb[j]
				}
				acc += s
			}
			if p.HasBias {
				acc += math.Float32frombits(bias[p.BiasOff+p.Row0+r])
			}
			dst[p.DstOff+t*p.DstStride+p.Row0+r] = acc
		}
	}
}

// RMSNormTwin is rmsnorm.wgsl.
func RMSNormTwin(p RMSNormParams, w []uint32, x, dst []float32) {
	for r := range p.Rows {
		for g := range p.Cols / p.Group {
			xs := x[p.XOff+r*p.XStride+g*p.Group:][:p.Group]
			var s float32
			for _, v := range xs {
				s += v * v
			}
			inv := 1 / float32(math.Sqrt(float64(s/float32(p.Group)+p.Eps)))
			o := dst[p.DstOff+r*p.DstStride+g*p.Group:][:p.Group]
			for i, v := range xs {
				o[i] = math.Float32frombits(w[p.WOff+uint32(i)]) * (inv * v)
			}
		}
	}
}

// RoPETwin is rope.wgsl.
func RoPETwin(p RoPEParams, inv []uint32, x []float32) {
	half := p.HeadDim / 2
	for t := range p.Rows {
		for q := range p.Cols / 2 {
			h, i := q/half, q%half
			a := float32(p.Pos0+t) * math.Float32frombits(inv[p.InvOff+i])
			c := float32(math.Cos(float64(a))) * p.AttnFactor
			s := float32(math.Sin(float64(a))) * p.AttnFactor
			base := p.XOff + t*p.XStride + h*p.HeadDim
			ia, ib := base+i, base+i+half
			if p.Interleaved {
				ia, ib = base+2*i, base+2*i+1
			}
			v0, v1 := x[ia], x[ib]
			x[ia] = v0*c - v1*s
			x[ib] = v0*s + v1*c
		}
	}
}

// CopyTwin is copy.wgsl.
func CopyTwin(p CopyParams, src, dst []float32) {
	copy(dst[p.DstOff:p.DstOff+p.N], src[p.SrcOff:])
}

// PackF16Twin is pack_f16.wgsl: p.N values of src (from SrcOff) rounded
// to f16 and packed in pairs into dst from f16 index DstOff (low half
// first, as pack2x16float does).
func PackF16Twin(p CopyParams, src []float32, dst []uint32) {
	for i := range p.N / 2 {
		s := p.SrcOff + 2*i
		lo, hi := tensor.F32ToF16(src[s]), tensor.F32ToF16(src[s+1])
		dst[p.DstOff/2+i] = uint32(lo) | uint32(hi)<<16
	}
}

// UnpackF16 returns the 2·len(w) f16 values packed in w as float32.
func UnpackF16(w []uint32) []float32 {
	f := make([]float32, 2*len(w))
	for i, x := range w {
		f[2*i], f[2*i+1] = tensor.F16ToF32(uint16(x)), tensor.F16ToF32(uint16(x>>16))
	}
	return f
}

// AddTwin is add.wgsl.
func AddTwin(p AddParams, dst, x []float32) {
	for i := range p.N {
		dst[p.DstOff+i] += x[p.XOff+i]
	}
}

// ScaleTwin is scale.wgsl.
func ScaleTwin(p ScaleParams, x []float32) {
	for i := range p.N {
		x[p.Off+i] *= p.S
	}
}

// ArgmaxTwin is argmax.wgsl.
func ArgmaxTwin(p ArgmaxParams, v []float32) uint32 {
	best := uint32(0)
	for i := range p.N {
		if v[p.Off+i] > v[p.Off+best] {
			best = i
		}
	}
	return best
}

// f16 rounds v to the nearest f16 (ties to even), as f16 arithmetic does.
func f16(v float64) float32 { return tensor.F16ToF32(tensor.F32ToF16(float32(v))) }

// MatMulF16Twin is matmul.wgsl, matvec_rows.wgsl and gemm.wgsl with f16
// arithmetic (dot_f16.wgsl, tile_f16.wgsl) for an f16 matrix with an even
// number of columns: per 32-column chunk, x rounded to f16, products and
// their running sums in two f16 lanes (even and odd columns), each
// rounded to f16; the chunk's sum is the two lanes added in f32, and the
// chunk sums are added in f32 in column order.
func MatMulF16Twin(p MatMulParams, w []uint32, x, dst []float32, bias []uint32) {
	for r := range p.Rows {
		for t := range p.T {
			var acc float32
			for c0 := uint32(0); c0 < p.Cols; c0 += 32 {
				n := min(32, p.Cols-c0)
				var lane [2]float32
				h := 2*p.WBase + r*p.Cols + c0
				xb := x[p.XOff+t*p.XStride+c0:]
				for j := range n {
					prod := f16(float64(halfAt(w, h+j)) * float64(f16(float64(xb[j]))))
					lane[j%2] = f16(float64(lane[j%2]) + float64(prod))
				}
				acc += lane[0] + lane[1]
			}
			if p.HasBias {
				acc += math.Float32frombits(bias[p.BiasOff+p.Row0+r])
			}
			dst[p.DstOff+t*p.DstStride+p.Row0+r] = acc
		}
	}
}

// GEMMTwin is gemm.wgsl's f32 path: each output sums its products in
// column order (the order the CPU backend uses), in f32.
func GEMMTwin(f tensor.DType, p MatMulParams, w []uint32, x, dst []float32, bias []uint32) {
	m := Mat{p.WBase, p.Rows, p.Cols}
	for r := range p.Rows {
		for t := range p.T {
			var acc float32
			for ch := uint32(0); ch*32 < p.Cols; ch++ {
				wv := WChunk(f, w, m, r, ch)
				xb := x[p.XOff+t*p.XStride+32*ch:]
				for j := range min(32, p.Cols-32*ch) {
					acc += float32(wv[j] * xb[j]) // no fused multiply-add, as the kernel
				}
			}
			if p.HasBias {
				acc += math.Float32frombits(bias[p.BiasOff+p.Row0+r])
			}
			dst[p.DstOff+t*p.DstStride+p.Row0+r] = acc
		}
	}
}

// MatVecTwin is matvec.wgsl's main: MatMulTwin, then, when p.AddRes, the
// result added into res.
func MatVecTwin(f tensor.DType, p MatMulParams, w []uint32, x, dst []float32, bias []uint32, res []float32) {
	MatMulTwin(f, p, w, x, dst, bias)
	if !p.AddRes {
		return
	}
	for t := range p.T {
		for r := range p.Rows {
			res[p.ResOff+t*p.ResStride+p.Row0+r] += dst[p.DstOff+t*p.DstStride+p.Row0+r]
		}
	}
}

// MatVecArgmaxTwin is matvec.wgsl's head_argmax for one token (p.T = 1,
// no bias): MatMulTwin into dst, and argmax.wgsl's index over the rows'
// values.
func MatVecArgmaxTwin(f tensor.DType, p MatMulParams, w []uint32, x, dst []float32) uint32 {
	MatMulTwin(f, p, w, x, dst, nil)
	return ArgmaxTwin(ArgmaxParams{N: p.Rows, Off: p.DstOff + p.Row0}, dst)
}

// MatVecGateUpTwin is matvec.wgsl's gate_up: silu(g)·u for g = gate·x (the
// matrix at WBase of w) and u = up·x (at W2Base of w2).
func MatVecGateUpTwin(f tensor.DType, p MatMulParams, w, w2 []uint32, x, dst []float32) {
	q := p
	q.HasBias = false
	g := make([]float32, len(dst))
	MatMulTwin(f, q, w, x, g, nil)
	q.WBase = p.W2Base
	up := make([]float32, len(dst))
	MatMulTwin(f, q, w2, x, up, nil)
	for t := range p.T {
		for r := range p.Rows {
			i := p.DstOff + t*p.DstStride + p.Row0 + r
			v := g[i]
			dst[i] = v * float32(1/(1+math.Exp(float64(-v)))) * up[i]
		}
	}
}

// KVStoreTwin is kvstore.wgsl: with rope, rope_store (q and k rotated as
// RoPETwin does, then k and v stored as f32 bits); otherwise store (k and
// v stored as f32 bits, or as f16 pairs when p.F16).
func KVStoreTwin(p KVStoreParams, rope bool, inv []uint32, q, k, v []float32, kc, vc []uint32) {
	if rope {
		rp := RoPEParams{Rows: p.Rows, HeadDim: p.HeadDim, Pos0: p.Pos0, Interleaved: p.Interleaved, AttnFactor: p.AttnFactor, InvOff: p.InvOff}
		rp.Cols, rp.XOff, rp.XStride = p.QCols, p.QOff, p.QStride
		RoPETwin(rp, inv, q)
		rp.Cols, rp.XOff, rp.XStride = p.KVDim, p.KOff, p.KStride
		RoPETwin(rp, inv, k)
	}
	for t := range p.Rows {
		pos := p.Pos0 + t
		ks, vs := k[p.KOff+t*p.KStride:][:p.KVDim], v[p.VOff+t*p.VStride:][:p.KVDim]
		if rope || !p.F16 {
			copy(kc[pos*p.KVDim:], Bits(ks))
			copy(vc[pos*p.KVDim:], Bits(vs))
			continue
		}
		for j := range p.KVDim / 2 {
			w := pos*p.KVDim/2 + j
			kc[w] = uint32(tensor.F32ToF16(ks[2*j])) | uint32(tensor.F32ToF16(ks[2*j+1]))<<16
			vc[w] = uint32(tensor.F32ToF16(vs[2*j])) | uint32(tensor.F32ToF16(vs[2*j+1]))<<16
		}
	}
}

// MatVecMultiTwin is matvec_multi.wgsl: each matrix i with rows is
// MatMulTwin of one token into outs[i].
func MatVecMultiTwin(f tensor.DType, p MatVecMultiParams, ws [3][]uint32, x []float32, outs [3][]float32) {
	for i := range 3 {
		if p.Rows[i] == 0 {
			continue
		}
		MatMulTwin(f, MatMulParams{Rows: p.Rows[i], Cols: p.Cols, T: 1, XOff: p.XOff, DstOff: p.DstOff[i], WBase: p.Base[i]}, ws[i], x, outs[i], nil)
	}
}

// NormRowTwin is xn_on.wgsl's view of x for the *Norm matvec kernels
// (Spec.Norm): the one row of cols values at xOff normalised as
// RMSNormTwin does with the weight at nOff of nw, returned as a row
// starting at xOff (zeros before it) so that the kernel's params serve
// the plain twins unchanged.
func NormRowTwin(nw []uint32, nOff uint32, eps float32, x []float32, xOff, cols uint32) []float32 {
	out := make([]float32, xOff+cols)
	RMSNormTwin(RMSNormParams{Rows: 1, Cols: cols, Group: cols, XOff: xOff, XStride: cols, DstOff: xOff, DstStride: cols, Eps: eps, WOff: nOff}, nw, x, out)
	return out
}
