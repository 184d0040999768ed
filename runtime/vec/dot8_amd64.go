//go:build amd64 && !purego

package vec

func dotQ8_0Q8x4N(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int8, groups int) {
	switch {
	case hasAVX512:
		dotQ8_0Q8x4VNNI(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xq[0], len(xd), groups)
	case hasAVX2:
		dotQ8_0Q8x4AVX2(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xq[0], len(xd), groups)
	default:
		dotQ8_0Q8x4NGo(out, wd, sd, wq, sq, xd, xq, groups)
	}
}

func dotQ4_0Q8x4N(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int8, groups int) {
	switch {
	case hasAVX512:
		dotQ4_0Q8x4VNNI(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xq[0], len(xd), groups)
	case hasAVX2:
		dotQ4_0Q8x4AVX2(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xq[0], len(xd), groups)
	default:
		dotQ4_0Q8x4NGo(out, wd, sd, wq, sq, xd, xq, groups)
	}
}

//go:noescape
func dotQ8_0Q8x4AVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int8, nb, groups int)

//go:noescape
func dotQ4_0Q8x4AVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int8, nb, groups int)

//go:noescape
func dotQ8_0Q8x4VNNI(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int8, nb, groups int)

//go:noescape
func dotQ4_0Q8x4VNNI(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int8, nb, groups int)

func quantizeQ8(q []int8, d, x []float32) {
	if hasAVX2 {
		quantizeQ8AVX2(&q[0], &d[0], &x[0], len(d))
		return
	}
	quantizeQ8Go(q, d, x)
}

//go:noescape
func quantizeQ8AVX2(q *int8, d, x *float32, nb int)
