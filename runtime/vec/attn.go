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
