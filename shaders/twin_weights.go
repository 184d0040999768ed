package shaders

import (
	"math"

	"github.com/moderuntime/mode/runtime/tensor"
)

// Mat is a weight matrix inside a u32 weight buffer: its first word and
// shape. The block formats' arrays follow base as runtime/tensor lays them
// out.
type Mat struct{ Base, Rows, Cols uint32 }

func halfAt(w []uint32, h uint32) float32 {
	v := w[h>>1]
	if h&1 == 1 {
		v >>= 16
	}
	return tensor.F16ToF32(uint16(v))
}

// e2m1 is fmt_mxfp4.wgsl's e2m1: the value of an FP4 code.
func e2m1(c uint32) float32 {
	e, m := (c>>1)&3, float32(c&1)
	v := m * 0.5
	if e > 0 {
		v = (1 + m*0.5) * float32(math.Exp2(float64(e)-1))
	}
	if c&8 != 0 {
		v = -v
	}
	return v
}

func byteAt(w []uint32, wb, i uint32) uint32 { return (w[wb+i>>2] >> (8 * (i & 3))) & 0xff }

// WChunk is the twin of the format snippets' w_chunk: elements
// [32ch, 32ch+32) of row r of m in format f, zero past Cols.
func WChunk(f tensor.DType, w []uint32, m Mat, r, ch uint32) [32]float32 {
	var o [32]float32
	c0 := 32 * ch
	switch f {
	case tensor.F32:
		n := min(32, m.Cols-c0)
		b := m.Base + r*m.Cols + c0
		for j := range n {
			o[j] = math.Float32frombits(w[b+j])
		}
	case tensor.F16:
		n := min(32, m.Cols-c0)
		h := 2*m.Base + r*m.Cols + c0
		for j := range n {
			o[j] = halfAt(w, h+j)
		}
	case tensor.Q8_0:
		nb := m.Rows * (m.Cols / 32)
		b := r*(m.Cols/32) + ch
		d := halfAt(w, 2*m.Base+b)
		qb := m.Base + (2*nb+3)/4 + 8*b
		for i := range uint32(8) {
			v := w[qb+i]
			for k := range uint32(4) {
				o[4*i+k] = d * float32(int8(v>>(8*k)))
			}
		}
	case tensor.Q4_0:
		nb := m.Rows * (m.Cols / 32)
		b := r*(m.Cols/32) + ch
		d := halfAt(w, 2*m.Base+b)
		qb := m.Base + (2*nb+3)/4 + 4*b
		for i := range uint32(4) {
			v := w[qb+i]
			for k := range uint32(4) {
				q := (v >> (8 * k)) & 0xff
				o[4*i+k] = d * (float32(q&15) - 8)
				o[4*i+k+16] = d * (float32(q>>4) - 8)
			}
		}
	case tensor.MXFP4:
		nb := m.Rows * (m.Cols / 32)
		b := r*(m.Cols/32) + ch
		d := tensor.E8M0(uint8(byteAt(w, m.Base, b)))
		qb := m.Base + (nb+3)/4 + 4*b
		for i := range uint32(4) {
			v := w[qb+i]
			for k := range uint32(4) {
				q := (v >> (8 * k)) & 0xff
				o[8*i+2*k] = d * e2m1(q&15)
				o[8*i+2*k+1] = d * e2m1(q>>4)
			}
		}
	case tensor.Q4_K:
		n := m.Rows * (m.Cols / 256)
		g := r*(m.Cols/32) + ch
		sb, s := g/8, g%8
		dm := w[m.Base+sb]
		d, dmin := tensor.F16ToF32(uint16(dm)), tensor.F16ToF32(uint16(dm>>16))
		ds := d * float32(byteAt(w, m.Base+n, 8*sb+s))
		ms := dmin * float32(byteAt(w, m.Base+3*n, 8*sb+s))
		qb := m.Base + 5*n + 32*sb + 4*s
		for i := range uint32(4) {
			v := w[qb+i]
			for k := range uint32(4) {
				q := (v >> (8 * k)) & 0xff
				o[4*i+k] = ds*float32(q&15) - ms
				o[4*i+k+16] = ds*float32(q>>4) - ms
			}
		}
	default:
		panic("shaders: WChunk of " + f.String())
	}
	return o
}

// Words returns data as little-endian u32 words, zero-padding the last.
func Words(data []byte) []uint32 {
	w := make([]uint32, (len(data)+3)/4)
	for i, b := range data {
		w[i/4] |= uint32(b) << (8 * (i % 4))
	}
	return w
}

// Bits returns v as u32 words.
func Bits(v []float32) []uint32 {
	w := make([]uint32, len(v))
	for i, x := range v {
		w[i] = math.Float32bits(x)
	}
	return w
}

// Floats returns the words of w as float32s.
func Floats(w []uint32) []float32 {
	v := make([]float32, len(w))
	for i, x := range w {
		v[i] = math.Float32frombits(x)
	}
	return v
}
