package vec

// DotLanesGo, ScoresGo and WeightedSumGo are DotLanes, Scores and
// WeightedSum as the pure-Go build computes them (the wasm builds'
// fallback, whatever this build's kernels are): the twins that other
// implementations of the same sums, such as internal/wasmsimd's SIMD128
// kernels, reproduce bit for bit and are tested against.
func DotLanesGo(a, b []float32) float32 { return dotLanesGo(a, b) }

func ScoresGo(dst, q, k []float32, stride int) {
	if len(dst) == 0 || len(q) == 0 {
		clear(dst)
		return
	}
	k = k[:(len(dst)-1)*stride+len(q)]
	for i := range dst {
		dst[i] = dotGo(q, k[i*stride:i*stride+len(q)])
	}
}

func WeightedSumGo(o, a, v []float32, stride int) {
	if len(a) == 0 || len(o) == 0 {
		clear(o)
		return
	}
	v = v[:(len(a)-1)*stride+len(o)]
	clear(o)
	for i, w := range a {
		axpyGo(o, w, v[i*stride:i*stride+len(o)])
	}
}
