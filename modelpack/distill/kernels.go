package distill

// Blocked float32 kernels. Go compiles them to scalar code; sharing one
// operand across four products halves the loads per multiply-add compared
// with dot and axpy, which is most of the time of these small matrices.

// dot4 returns the dot products of a with b0, b1, b2 and b3.
func dot4(a, b0, b1, b2, b3 []float32) (s0, s1, s2, s3 float32) {
	n := len(a)
	b0, b1, b2, b3 = b0[:n], b1[:n], b2[:n], b3[:n]
	for i, v := range a {
		s0 += v * b0[i]
		s1 += v * b1[i]
		s2 += v * b2[i]
		s3 += v * b3[i]
	}
	return
}

// axpy4 adds a0·x0 + a1·x1 + a2·x2 + a3·x3 to y.
func axpy4(y []float32, a0, a1, a2, a3 float32, x0, x1, x2, x3 []float32) {
	n := len(y)
	x0, x1, x2, x3 = x0[:n], x1[:n], x2[:n], x3[:n]
	for i := range y {
		y[i] += a0*x0[i] + a1*x1[i] + a2*x2[i] + a3*x3[i]
	}
}

// axpy4To adds a0·x to y0, a1·x to y1, a2·x to y2 and a3·x to y3.
func axpy4To(y0, y1, y2, y3 []float32, a0, a1, a2, a3 float32, x []float32) {
	n := len(x)
	y0, y1, y2, y3 = y0[:n], y1[:n], y2[:n], y3[:n]
	for i, v := range x {
		y0[i] += a0 * v
		y1[i] += a1 * v
		y2[i] += a2 * v
		y3[i] += a3 * v
	}
}
