package tensor

import (
	"fmt"

	"github.com/moderuntime/mode/internal/wasmsimd"
	"github.com/moderuntime/mode/runtime/vec"
)

// Matrix is a read-only view of a tensor stored in f16 or a block format,
// split into the arrays of its layout, for kernels that compute from the
// stored form directly instead of decoding the whole matrix to float32.
// Backends go through its methods, so the layouts and the dequantisation
// arithmetic live only in this package.
//
// A Matrix shares the tensor's Data and is safe for concurrent use as long
// as Data is not modified.
type Matrix struct {
	dtype      DType
	rows, cols int
	nb         int // blocks per row (super-blocks for q4_k); cols for f16
	size       int // bytes of Data, and of scales32
	a          blockArrays
	f16        []byte
	// scales32 is a q8_0 or q4_0 matrix's block scales as f32, in a wasm
	// build whose SIMD128 kernels are loaded: they take them decoded
	// (exactly, F16ToF32), since decoding four f16 scales in the kernel's
	// loop cost it a seventh of its time (RATIONALE.md, "`mode run
	// --wasm`: where the time goes"), for 4 bytes more a block.
	scales32 []float32
}

// NewMatrix checks t and views it as a Matrix. t must be f16, q8_0, q4_0 or
// q4_k.
func NewMatrix(t *Tensor) (*Matrix, error) { return newMatrix(t, nil) }

// newMatrix is NewMatrix; non-nil scales are the f32 block scales (one
// per block, for a q8_0 or q4_0 t) that a wasm build with the SIMD
// kernels decodes from t otherwise.
func newMatrix(t *Tensor, scales []float32) (*Matrix, error) {
	switch t.DType {
	case F16, Q8_0, Q4_0, Q4_K, MXFP4:
	default:
		return nil, fmt.Errorf("tensor %s: %v is not a format kernels compute from directly", t.Name, t.DType)
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	m := &Matrix{dtype: t.DType, rows: t.Rows(), cols: t.Cols(), size: len(t.Data)}
	m.nb = m.cols / BlockSize(t.DType)
	if t.DType == F16 {
		m.f16 = t.Data
	} else {
		m.a = splitArrays(t.DType, t.Data, m.rows*m.nb)
		if ok, _ := wasmsimd.Ready(); scales == nil && ok && (t.DType == Q8_0 || t.DType == Q4_0) {
			scales = make([]float32, m.rows*m.nb)
			for i := range scales {
				scales[i] = F16ToF32(uint16(m.a.scales[2*i]) | uint16(m.a.scales[2*i+1])<<8)
			}
		}
		if scales != nil {
			m.scales32 = scales
			m.size += 4 * len(m.scales32)
		}
	}
	return m, nil
}

// DType is the storage format.
func (m *Matrix) DType() DType { return m.dtype }

// Rows and Cols are the matrix's shape.
func (m *Matrix) Rows() int { return m.rows }
func (m *Matrix) Cols() int { return m.cols }

// Bytes is the size of the stored data (with the f32 scales a wasm build
// keeps beside q8_0 and q4_0 blocks).
func (m *Matrix) Bytes() int { return m.size }

// NeedsSums reports whether Dot and Dot4 read xsum: formats with per-block
// minimums (q4_k) subtract min·Σx per block.
func (m *Matrix) NeedsSums() bool { return m.dtype == Q4_K }

// BlockSums sets dst[k] to the sum of x[32k : 32k+32], in order, for every
// whole block of x: the xsum a q4_k Dot needs, computed once per activation
// row and shared by every output row.
func BlockSums(dst, x []float32) {
	for k := range len(x) / qk {
		var s float32
		for _, v := range (*[qk]float32)(x[qk*k:]) {
			s += v
		}
		dst[k] = s
	}
}

// HalfRows is the stored f16 values (two bytes each, little-endian) of
// rows i0 ≤ i < i1 of an f16 matrix, for kernels that decode as they read.
func (m *Matrix) HalfRows(i0, i1 int) []byte {
	if m.dtype != F16 {
		panic("tensor: HalfRows of a " + m.dtype.String() + " matrix")
	}
	return m.f16[2*i0*m.cols : 2*i1*m.cols]
}

// DequantizeRow decodes row i into dst[:Cols].
func (m *Matrix) DequantizeRow(i int, dst []float32) {
	dst = dst[:m.cols]
	switch m.dtype {
	case F16:
		vec.HalfToFloat(dst, m.f16[2*i*m.cols:2*(i+1)*m.cols])
	case Q8_0:
		dequantQ8_0(dst, m.a.scales[2*i*m.nb:], m.a.qs[qk*i*m.nb:])
	case Q4_0:
		dequantQ4_0(dst, m.a.scales[2*i*m.nb:], m.a.qs[qk/2*i*m.nb:])
	case MXFP4:
		dequantMXFP4(dst, m.a.scales[i*m.nb:], m.a.qs[qk/2*i*m.nb:])
	case Q4_K:
		dequantQ4_K(dst, m.a.scales[4*i*m.nb:], m.a.sub[8*i*m.nb:], m.a.mins[8*i*m.nb:], m.a.qs[qkK/2*i*m.nb:])
	}
}

// Dot is Σ_j row_i[j]·x[j] over x[:Cols], computed from the stored form.
// For q4_k, xsum must hold BlockSums of x; other formats ignore it. The
// sum's order is fixed by the format (see the per-format dot functions), so
// Dot and Dot4 agree bit for bit.
func (m *Matrix) Dot(i int, x, xsum []float32) float32 {
	x = x[:m.cols]
	switch m.dtype {
	case F16:
		return dotF16(m.f16[2*i*m.cols:], x)
	case Q8_0:
		return dotQ8_0(m.a.scales[2*i*m.nb:], m.a.qs[qk*i*m.nb:], x)
	case Q4_0:
		return dotQ4_0(m.a.scales[2*i*m.nb:], m.a.qs[qk/2*i*m.nb:], x)
	case Q4_K:
		return dotQ4_K(m.a.scales[4*i*m.nb:], m.a.sub[8*i*m.nb:], m.a.mins[8*i*m.nb:], m.a.qs[qkK/2*i*m.nb:], x, xsum)
	case MXFP4:
		return dotMXFP4(m.a.scales[i*m.nb:], m.a.qs[qk/2*i*m.nb:], x)
	}
	panic("tensor: Dot of " + m.dtype.String())
}

// Dot4 is Dot for rows i..i+3 at once: the kernel loads each element of x
// once for four rows and keeps four independent sums in flight.
func (m *Matrix) Dot4(i int, x, xsum []float32) (a0, a1, a2, a3 float32) {
	x = x[:m.cols]
	switch m.dtype {
	case F16:
		return dot4F16(m.f16[2*i*m.cols:], x)
	case Q8_0:
		return dot4Q8_0(m.a.scales[2*i*m.nb:], m.a.qs[qk*i*m.nb:], x)
	case Q4_0:
		return dot4Q4_0(m.a.scales[2*i*m.nb:], m.a.qs[qk/2*i*m.nb:], x)
	case Q4_K:
		return dot4Q4_K(m.a.scales[4*i*m.nb:], m.a.sub[8*i*m.nb:], m.a.mins[8*i*m.nb:], m.a.qs[qkK/2*i*m.nb:], x, xsum)
	case MXFP4:
		// Four rows of the one-row sum: the same bits as Dot.
		return m.Dot(i, x, xsum), m.Dot(i+1, x, xsum), m.Dot(i+2, x, xsum), m.Dot(i+3, x, xsum)
	}
	panic("tensor: Dot4 of " + m.dtype.String())
}

// dotF16 is Σ w[j]·x[j] in order, w the f16 row starting at w, each element
// converted as it is read.
func dotF16(w []byte, x []float32) float32 {
	w = w[:2*len(x)]
	var s float32
	for j, v := range x {
		s += float32(F16ToF32(uint16(w[2*j])|uint16(w[2*j+1])<<8) * v)
	}
	return s
}

// dot4F16 is dotF16 for four consecutive rows starting at w.
func dot4F16(w []byte, x []float32) (a0, a1, a2, a3 float32) {
	n := 2 * len(x)
	w0, w1, w2, w3 := w[:n], w[n:2*n], w[2*n:3*n], w[3*n:4*n]
	for j, v := range x {
		a0 += float32(F16ToF32(uint16(w0[2*j])|uint16(w0[2*j+1])<<8) * v)
		a1 += float32(F16ToF32(uint16(w1[2*j])|uint16(w1[2*j+1])<<8) * v)
		a2 += float32(F16ToF32(uint16(w2[2*j])|uint16(w2[2*j+1])<<8) * v)
		a3 += float32(F16ToF32(uint16(w3[2*j])|uint16(w3[2*j+1])<<8) * v)
	}
	return a0, a1, a2, a3
}

// Sub views t, a copy of rows [r0, r1) and columns [c0, c1) of m's tensor
// (Sub's), as a Matrix: NewMatrix(t), with the decoded block scales a wasm
// build keeps taken from m's rather than decoded again. Splitting a
// routed expert between engine instances (runtime/cpu's peers) decodes
// no scale twice that way; decoding them was a quarter of the split's
// cost under wazero.
func (m *Matrix) Sub(t *Tensor, r0, r1, c0, c1 int) (*Matrix, error) {
	if m.scales32 == nil || t.DType != m.dtype {
		return NewMatrix(t)
	}
	if r0 < 0 || r1 > m.rows || r0 >= r1 || c0 < 0 || c1 > m.cols || c0 >= c1 || t.Rows() != r1-r0 || t.Cols() != c1-c0 {
		return nil, fmt.Errorf("tensor %s: a %v sub-matrix of rows [%d, %d) and columns [%d, %d) of a %d×%d matrix", t.Name, t.Shape, r0, r1, c0, c1, m.rows, m.cols)
	}
	bs := BlockSize(m.dtype)
	if c0%bs != 0 || c1%bs != 0 {
		return nil, fmt.Errorf("tensor %s: columns [%d, %d) are not on %v's blocks of %d", t.Name, c0, c1, m.dtype, bs)
	}
	sc := make([]float32, 0, (r1-r0)*(c1-c0)/bs)
	for r := r0; r < r1; r++ {
		sc = append(sc, m.scales32[r*m.nb+c0/bs:r*m.nb+c1/bs]...)
	}
	return newMatrix(t, sc)
}
