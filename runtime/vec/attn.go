package vec

// Scores sets dst[i] to Σ_j q[j]·k[i·stride+j] for every i of dst: the
// attention scores of one query against consecutive cache rows. Each is
// one dot product summed in an unspecified (but fixed) order.
func Scores(dst, q, k []float32, stride int) {
	n, hd := len(dst), len(q)
	if n == 0 || hd == 0 {
		clear(dst)
		return
	}
	k = k[:(n-1)*stride+hd]
	scores(dst, q, k, stride)
}

// WeightedSum sets o[j] to Σ_i a[i]·v[i·stride+j] for every j of o, the
// terms added in order of i: attention's weighted sum of values.
func WeightedSum(o, a, v []float32, stride int) {
	n, hd := len(a), len(o)
	if n == 0 || hd == 0 {
		clear(o)
		return
	}
	v = v[:(n-1)*stride+hd]
	weightedSum(o, a, v, stride)
}

// scoresLoop and weightedSumLoop are the kernels one row at a time, with
// the row kernels (assembly where there is some).
func scoresLoop(dst, q, k []float32, stride int) {
	for i := range dst {
		dst[i] = dot(q, k[i*stride:i*stride+len(q)])
	}
}

func weightedSumLoop(o, a, v []float32, stride int) {
	clear(o)
	for i, w := range a {
		axpy(o, w, v[i*stride:i*stride+len(o)])
	}
}

// ScoresHeads is Scores for heads consecutive heads of one query over
// rows consecutive cache rows (row i at k[i·stride:]), a block of rows
// at a time for all the heads rather than one head's slice of every row
// (heads that share a KV head read the block once from memory): head h
// (from 0) takes q[h·hd:(h+1)·hd] against its row's slice at
// ((phase+h)/group)·hd, the grouped-query layout with the first head
// phase heads into its group, and its score for row i goes to
// dst[h·n+i]. Each score has the bits of Scores' for that head and row.
func ScoresHeads(dst []float32, n int, q, k []float32, stride, rows, heads, hd, group, phase int) {
	if rows <= 0 || heads <= 0 {
		return
	}
	span := ((phase+heads-1)/group + 1) * hd // the row's part the heads read
	dst, q, k = dst[:(heads-1)*n+rows], q[:heads*hd], k[:(rows-1)*stride+span]
	scoresHeads(dst, n, q, k, stride, rows, heads, hd, group, phase)
}

// AxpyHeads is Axpy for heads consecutive heads over rows consecutive
// value rows (row i at v[i·stride:]): for each row in order, head h's
// o[h·hd:(h+1)·hd] += a[h·n+i] times its row's slice at
// ((phase+h)/group)·hd, a block of rows at a time for all the heads. Each
// output has the bits of Axpy's in the same order of rows.
func AxpyHeads(o, a []float32, n int, v []float32, stride, rows, heads, hd, group, phase int) {
	if rows <= 0 || heads <= 0 {
		return
	}
	span := ((phase+heads-1)/group + 1) * hd
	o, a, v = o[:heads*hd], a[:(heads-1)*n+rows], v[:(rows-1)*stride+span]
	axpyHeads(o, a, n, v, stride, rows, heads, hd, group, phase)
}

// scoresHeadsLoop and axpyHeadsLoop are the kernels a head and a row at a
// time, with the row kernels (assembly where there is some).
func scoresHeadsLoop(dst []float32, n int, q, k []float32, stride, rows, heads, hd, group, phase int) {
	for i := range rows {
		row := k[i*stride:]
		for h := range heads {
			off := (phase + h) / group * hd
			scores(dst[h*n+i:h*n+i+1], q[h*hd:(h+1)*hd], row[off:off+hd], stride)
		}
	}
}

func axpyHeadsLoop(o, a []float32, n int, v []float32, stride, rows, heads, hd, group, phase int) {
	for i := range rows {
		row := v[i*stride:]
		for h := range heads {
			off := (phase + h) / group * hd
			axpy(o[h*hd:(h+1)*hd], a[h*n+i], row[off:off+hd])
		}
	}
}

// HalfRows decodes rows rows of n binary16 values each, row i at
// src[i·stride:], into dst[i·n:(i+1)·n], exactly: an f16 cache's rows
// made f32 a block at a time for Scores' and WeightedSum's kernels.
func HalfRows(dst []float32, src []uint16, stride, rows, n int) {
	if rows <= 0 || n <= 0 {
		return
	}
	dst, src = dst[:rows*n], src[:(rows-1)*stride+n]
	halfRows(dst, src, stride, rows, n)
}

func halfRowsGo(dst []float32, src []uint16, stride, rows, n int) {
	for i := range rows {
		for j, h := range src[i*stride : i*stride+n] {
			dst[i*n+j] = half(h)
		}
	}
}
