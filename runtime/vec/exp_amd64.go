//go:build amd64 && !purego

package vec

// siluMulN and expShiftN run the AVX2 kernels over the whole groups of
// eight and return how many elements they did; the caller does the rest.
func siluMulN(g, u []float32) int {
	n := len(g) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	u = u[:n]
	siluMulAVX2(&g[0], &u[0], n)
	return n
}

func expShiftN(dst, x []float32, m float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	dst = dst[:n]
	expShiftAVX2(&dst[0], &x[0], n, m)
	return n
}

//go:noescape
func siluMulAVX2(gp, u *float32, n int)

//go:noescape
func expShiftAVX2(dst, x *float32, n int, m float32)
