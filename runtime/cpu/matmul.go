package cpu

// matmul writes dst[t*dstStride+i] = Σ_j w[i][j]·x[t][j] for rows tokens of
// x (row stride cols) and every output row i of w, split across goroutines
// by output rows so that each weight row is read once for all tokens.
//
// Four output rows are computed together: four independent accumulators
// give the CPU instruction-level parallelism while each dot product still
// sums in input order (the explicit float32 conversions forbid fused
// multiply-adds), so the result equals a naive loop's bit for bit.
//
// Weights kept in f16 or a block format go to matmulMatrix; without
// Options.Exact, every product goes to matmulFast.
func (b *Backend) matmul(dst []float32, dstStride int, x []float32, rows, cols int, w *weight) {
	if !b.exact {
		b.matmulFast(dst, dstStride, x, rows, cols, w)
		return
	}
	if w.m != nil {
		b.matmulMatrix(dst, dstStride, x, rows, cols, w.m)
		return
	}
	out := w.rows
	if b.naive {
		for t := 0; t < rows; t++ {
			for i := 0; i < out; i++ {
				dst[t*dstStride+i] = dot(w.f[i*cols:(i+1)*cols], x[t*cols:(t+1)*cols])
			}
		}
		return
	}
	b.parallel((out+3)/4, rows*out*cols, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			i := 4 * blk
			if i+4 <= out {
				w0 := w.f[i*cols : (i+1)*cols]
				w1 := w.f[(i+1)*cols : (i+2)*cols]
				w2 := w.f[(i+2)*cols : (i+3)*cols]
				w3 := w.f[(i+3)*cols : (i+4)*cols]
				for t := 0; t < rows; t++ {
					xv := x[t*cols : (t+1)*cols]
					var a0, a1, a2, a3 float32
					for j, v := range xv {
						a0 += float32(w0[j] * v)
						a1 += float32(w1[j] * v)
						a2 += float32(w2[j] * v)
						a3 += float32(w3[j] * v)
					}
					o := dst[t*dstStride+i : t*dstStride+i+4]
					o[0], o[1], o[2], o[3] = a0, a1, a2, a3
				}
				continue
			}
			for ; i < out; i++ {
				wr := w.f[i*cols : (i+1)*cols]
				for t := 0; t < rows; t++ {
					dst[t*dstStride+i] = dot(wr, x[t*cols:(t+1)*cols])
				}
			}
		}
	})
}

// dot sums a[j]*b[j] in order.
func dot(a, b []float32) float32 {
	var s float32
	b = b[:len(a)]
	for j, v := range a {
		s += float32(v * b[j])
	}
	return s
}
