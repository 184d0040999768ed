package tensor

import "github.com/moderuntime/mode/runtime/vec"

// Q8Rows holds rows of activations quantised to 8 bits, llama.cpp's q8_0
// for activations: each 32 consecutive values x of a row become 32 int8 q
// and an f32 scale d = max|x|/127 with q = round(x/d), so |x − d·q| ≤ d/2,
// a relative error of 1/254 of the block's largest value (Q16Rows': 2^-16).
//
// It exists for MulQuantized8, which the CPU backend does not use by
// default: on the test models, 8-bit activations moved the exact path's
// greedy choice at more than 1% of teacher-forced positions, and the
// kernels were not clearly faster than the 16-bit ones (RATIONALE.md,
// "8-bit activations, measured").
type Q8Rows struct {
	rows, cols int
	qs         []int8    // rows·cols
	d          []float32 // rows·cols/32 scales
}

// Rows and Cols are the shape last quantised.
func (q *Q8Rows) Rows() int { return q.rows }
func (q *Q8Rows) Cols() int { return q.cols }

// Quantize sets q to the rows rows of x (row stride cols; cols a multiple
// of 32), reusing q's storage when it is large enough.
func (q *Q8Rows) Quantize(x []float32, rows, cols int) {
	nb := rows * cols / qk
	q.rows, q.cols = rows, cols
	q.qs = grow(q.qs, rows*cols)
	q.d = grow(q.d, nb)
	vec.QuantizeQ8(q.qs, q.d, x[:rows*cols])
}

// CanMulQuantized8 reports whether MulQuantized8 takes m: q8_0 and q4_0.
func (m *Matrix) CanMulQuantized8() bool { return m.dtype == Q8_0 || m.dtype == Q4_0 }

// MulQuantized8 is MulQuantized with 8-bit activations: dst[t·stride+i]
// is row i of m times row t of x for i0 ≤ i < i1, from the integer
// products of each block (vec.DotQ8_0Q8x4N, vec.DotQ4_0Q8x4N). Each result
// has the same bits whatever the range. m must be q8_0 or q4_0 and x
// quantised with m's Cols.
func (m *Matrix) MulQuantized8(dst []float32, stride int, x *Q8Rows, i0, i1 int) {
	n := m.cols / qk
	if !m.CanMulQuantized8() {
		panic("tensor: MulQuantized8 of " + m.dtype.String())
	}
	groups := (i1 - i0) / 4
	end := i0 + 4*groups
	for t := range x.rows {
		xq, xd := x.qs[t*m.cols:(t+1)*m.cols], x.d[t*n:(t+1)*n]
		o := dst[t*stride+i0 : t*stride+end]
		if m.dtype == Q8_0 {
			vec.DotQ8_0Q8x4N(o, m.a.scales[2*i0*n:], 2*n, m.a.qs[qk*i0*n:], qk*n, xd, xq, groups)
		} else {
			vec.DotQ4_0Q8x4N(o, m.a.scales[2*i0*n:], 2*n, m.a.qs[qk/2*i0*n:], qk/2*n, xd, xq, groups)
		}
		for i := end; i < i1; i++ {
			if m.dtype == Q8_0 {
				dst[t*stride+i] = vec.DotQ8_0Q8(m.a.scales[2*i*n:], m.a.qs[qk*i*n:], xd, xq)
			} else {
				dst[t*stride+i] = vec.DotQ4_0Q8(m.a.scales[2*i*n:], m.a.qs[qk/2*i*n:], xd, xq)
			}
		}
	}
}
