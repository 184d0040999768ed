package cpu

import "github.com/moderuntime/mode/runtime/tensor"

// matmulMatrix is matmul for a weight kept in f16 or a block format: the
// same split across goroutines by blocks of four output rows, each weight
// row read once for all tokens, with the dot products computed from the
// stored form by tensor.Matrix (Dot4 for whole blocks of four rows, Dot for
// the rest; they agree bit for bit, as does the naive loop).
func (b *Backend) matmulMatrix(dst []float32, dstStride int, x []float32, rows, cols int, m *tensor.Matrix) {
	out := m.Rows()
	// Formats with per-block minimums need Σx per 32 elements of each
	// token; compute them once here rather than once per output row.
	nsum := cols / 32
	var xsum []float32
	if m.NeedsSums() {
		xsum = make([]float32, rows*nsum)
		for t := 0; t < rows; t++ {
			tensor.BlockSums(xsum[t*nsum:(t+1)*nsum], x[t*cols:(t+1)*cols])
		}
	}
	sums := func(t int) []float32 {
		if xsum == nil {
			return nil
		}
		return xsum[t*nsum : (t+1)*nsum]
	}
	if b.naive {
		for t := 0; t < rows; t++ {
			for i := 0; i < out; i++ {
				dst[t*dstStride+i] = m.Dot(i, x[t*cols:(t+1)*cols], sums(t))
			}
		}
		return
	}
	b.parallel((out+3)/4, rows*out*cols, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			i := 4 * blk
			if i+4 <= out {
				for t := 0; t < rows; t++ {
					o := dst[t*dstStride+i : t*dstStride+i+4]
					o[0], o[1], o[2], o[3] = m.Dot4(i, x[t*cols:(t+1)*cols], sums(t))
				}
				continue
			}
			for ; i < out; i++ {
				for t := 0; t < rows; t++ {
					dst[t*dstStride+i] = m.Dot(i, x[t*cols:(t+1)*cols], sums(t))
				}
			}
		}
	})
}
