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
// its exact path, and the reference internal/wasmsimd's KernelRMSNorm
// matches bit for bit.
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

// RMSNormLanes is RMSNorm with Σx² in eight lanes: square j goes into
// lane j mod 8 (the tail past the last whole eight into lanes 0, 1, …),
// and the lanes are added as hsum8 adds them, ((a0+a4) + (a2+a6)) +
// ((a1+a5) + (a3+a7)); each square is rounded before it is added, as in
// RMSNorm, and the rest is RMSNorm's. One chain of additions took 0.6 µs
// of a 512-wide norm, and a decode step runs two to four of them a layer
// between the pool's ops, on one goroutine (RATIONALE.md, "RMSNorm's sum
// in eight lanes"). The CPU backend's fast path; internal/wasmsimd's
// KernelRMSNormLanes matches it bit for bit.
func RMSNormLanes(o, x, w []float32, eps float32) {
	n := len(x)
	o, w = o[:n], w[:n]
	var a [8]float32
	j := sumSquares8N(&a, x)
	for ; j+8 <= n; j += 8 {
		v := x[j : j+8 : j+8]
		a[0] += float32(v[0] * v[0])
		a[1] += float32(v[1] * v[1])
		a[2] += float32(v[2] * v[2])
		a[3] += float32(v[3] * v[3])
		a[4] += float32(v[4] * v[4])
		a[5] += float32(v[5] * v[5])
		a[6] += float32(v[6] * v[6])
		a[7] += float32(v[7] * v[7])
	}
	for k := 0; j < n; j, k = j+1, k+1 {
		a[k] += float32(x[j] * x[j])
	}
	ss := hsum8(&a)
	ss /= float32(n)
	ss += eps
	ss = 1 / float32(math.Sqrt(float64(ss)))
	for j := rmsScaleN(o, w, x, ss); j < n; j++ {
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
