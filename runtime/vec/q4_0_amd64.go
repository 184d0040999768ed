//go:build amd64 && !purego

package vec

func q4_0Layout() bool { return hasAVX2 }

func prepQ4_0(xb []byte, c []int32, nb int, q []int16, b0 int) {
	if !hasAVX2 {
		prepQ4_0Go(xb, c, nb, q, b0)
		return
	}
	prepQ4_0AVX2(&xb[0], &c[0], nb, &q[0], b0, len(q)/BlockSize)
}

func dotQ4_0Rows(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xb []byte, c []int32, rows int) {
	if hasAVX512 {
		dotQ4_0x1NAVX512(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xb[0], &c[0], len(xd), rows)
		return
	}
	dotQ4_0x1NAVX2(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xb[0], &c[0], len(xd), rows)
}

//go:noescape
func prepQ4_0AVX2(xb *byte, c *int32, nb int, q *int16, b0, n int)

//go:noescape
func dotQ4_0x1NAVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xb *byte, c *int32, nb, rows int)

//go:noescape
func dotQ4_0x1NAVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xb *byte, c *int32, nb, rows int)

func dotQ4_0RowsTokens(dst []float32, ds int, wd []byte, sd int, wq []byte, sq int, xd []float32, xb []byte, c []int32, n, nt, rows int) {
	lb, lc := Q4_0LayoutBytes(n), Q4_0Lanes*n
	t := 0
	if hasAVX512 {
		// two tokens at a time: each step of a row unpacked once for both
		for ; t+2 <= nt; t += 2 {
			dotQ4_0x1N2AVX512(&dst[t*ds], &dst[(t+1)*ds], &wd[0], sd, &wq[0], sq, &xd[t*n], &xd[(t+1)*n],
				&xb[t*lb], &xb[(t+1)*lb], &c[t*lc], &c[(t+1)*lc], n, rows)
		}
	}
	for ; t < nt; t++ {
		dotQ4_0Rows(dst[t*ds:], wd, sd, wq, sq, xd[t*n:(t+1)*n], xb[t*lb:], c[t*lc:], rows)
	}
}

//go:noescape
func dotQ4_0x1N2AVX512(out, outB *float32, wd *byte, sd int, wq *byte, sq int, xd, xdB *float32, xb, xbB *byte, c, cB *int32, nb, rows int)
