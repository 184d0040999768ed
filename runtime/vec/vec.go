package vec

import "math"

// BlockSize is the number of elements one integer block dot covers.
const BlockSize = 32

// Dot is Σ a[j]·b[j] over a, summed in an unspecified order.
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	if len(a) == 0 {
		return 0
	}
	return dot(a, b)
}

// Axpy adds a·x[j] to y[j] for every j of y.
func Axpy(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	if len(y) == 0 {
		return
	}
	axpy(y, a, x)
}

// RMSNorm sets o[j] = w[j]·(s·x[j]) for every j of x, s = 1/√(Σx²/n +
// eps), in run.c's order: the squares added one by one, the square root
// taken in float64 and rounded to f32 once. The CPU backend's RMSNorm on
// both paths, and the reference internal/wasmsimd's KernelRMSNorm matches
// bit for bit.
func RMSNorm(o, x, w []float32, eps float32) {
	o, w = o[:len(x)], w[:len(x)]
	var ss float32
	for _, v := range x {
		ss += float32(v * v)
	}
	ss /= float32(len(x))
	ss += eps
	ss = 1 / float32(math.Sqrt(float64(ss)))
	for j := range x {
		o[j] = w[j] * float32(ss*x[j])
	}
}

// dotGo keeps four sums in flight, so the loop is bound by the multiplies
// rather than by one chain of dependent additions.
func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	j := 0
	for ; j+4 <= len(a); j += 4 {
		s0 += a[j] * b[j]
		s1 += a[j+1] * b[j+1]
		s2 += a[j+2] * b[j+2]
		s3 += a[j+3] * b[j+3]
	}
	for ; j < len(a); j++ {
		s0 += a[j] * b[j]
	}
	return (s0 + s1) + (s2 + s3)
}

func axpyGo(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for j := range y {
		y[j] += a * x[j]
	}
}
