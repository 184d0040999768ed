package distill

import (
	"runtime"
	"sync"
)

// dot is an unrolled float32 dot product; four accumulators let the CPU
// overlap the additions.
func dot(a, b []float32) float32 {
	n := len(b)
	a = a[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy adds a*x to y.
func axpy(y []float32, a float32, x []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}

// matmul returns x [T, in] times w^T where w is [out, in]: y = x·wᵀ. Each
// weight row is used for every token while it is in cache, four tokens at
// a time.
func matmul(x, w []float32, T, in, out int) []float32 {
	y := make([]float32, T*out)
	for o := 0; o < out; o++ {
		wr := w[o*in : (o+1)*in]
		t := 0
		for ; t+4 <= T; t += 4 {
			s0, s1, s2, s3 := dot4(wr, x[t*in:(t+1)*in], x[(t+1)*in:(t+2)*in], x[(t+2)*in:(t+3)*in], x[(t+3)*in:(t+4)*in])
			y[t*out+o], y[(t+1)*out+o], y[(t+2)*out+o], y[(t+3)*out+o] = s0, s1, s2, s3
		}
		for ; t < T; t++ {
			y[t*out+o] = dot(wr, x[t*in:(t+1)*in])
		}
	}
	return y
}

// matmulBack adds the gradients of y = x·wᵀ: dx += dy·w and, when dw is
// not nil, dw += dyᵀ·x.
func matmulBack(dx, dw, x, w, dy []float32, T, in, out int) {
	row := func(m []float32, i int) []float32 { return m[i*in : (i+1)*in] }
	for t := 0; t < T; t++ {
		dyt := dy[t*out : (t+1)*out]
		dxt := dx[t*in : (t+1)*in]
		o := 0
		for ; o+4 <= out; o += 4 {
			axpy4(dxt, dyt[o], dyt[o+1], dyt[o+2], dyt[o+3], row(w, o), row(w, o+1), row(w, o+2), row(w, o+3))
		}
		for ; o < out; o++ {
			if g := dyt[o]; g != 0 {
				axpy(dxt, g, row(w, o))
			}
		}
	}
	if dw != nil {
		weightGrad(dw, x, dy, T, in, out)
	}
}

// weightGrad adds to dw [out, in] the weight gradient of y = x·wᵀ given
// dy [T, out] and x [T, in].
func weightGrad(dw, x, dy []float32, T, in, out int) {
	row := func(m []float32, i int) []float32 { return m[i*in : (i+1)*in] }
	for o := 0; o < out; o++ {
		dwr := dw[o*in : (o+1)*in]
		t := 0
		for ; t+4 <= T; t += 4 {
			axpy4(dwr, dy[t*out+o], dy[(t+1)*out+o], dy[(t+2)*out+o], dy[(t+3)*out+o], row(x, t), row(x, t+1), row(x, t+2), row(x, t+3))
		}
		for ; t < T; t++ {
			if g := dy[t*out+o]; g != 0 {
				axpy(dwr, g, row(x, t))
			}
		}
	}
}

// parallel calls fn(i) for i in [0, n) on up to threads goroutines
// (GOMAXPROCS when threads <= 0) and returns when all have finished.
func parallel(n, threads int, fn func(worker, i int)) {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	threads = min(threads, n)
	if threads <= 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < threads; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := range next {
				fn(w, i)
			}
		}(w)
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// workers returns the number of goroutines parallel will use.
func workers(n, threads int) int {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	return max(1, min(threads, n))
}
