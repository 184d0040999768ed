package vec

// The matrix-product kernels below compute dot products of weight rows
// with activation rows for the CPU backend's f32 (and decoded f16) matrix
// products. Each output is summed the same way whichever kernel computes
// it, so a product does not depend on how outputs are tiled (one token or
// a batch, four rows or one): n/8 chunks of eight in eight lanes, one lane
// per position in the chunk, the lanes summed by hsum8, then the last n%8
// products added in order. The assembly fuses each multiply-add; the pure
// Go rounds the product first, so the two differ by rounding (they are
// not used together: a build has one or the other).

// DotLanes is one output: Σ a[j]·b[j] over a, summed as above.
func DotLanes(a, b []float32) float32 {
	b = b[:len(a)]
	if len(a) == 0 {
		return 0
	}
	return dotLanes(a, b)
}

// Dot4x1 sets out[r] to DotLanes of weight row r (w[r·ws : r·ws+n]) and
// x[:n], for four rows, sharing the loads of x.
func Dot4x1(out *[4]float32, w []float32, ws int, x []float32, n int) {
	w, x = w[:3*ws+n], x[:n]
	if n == 0 {
		*out = [4]float32{}
		return
	}
	dot4x1(out, w, ws, x, n)
}

// DotRows sets out[r] to DotLanes of weight row r (w[r·ws : r·ws+n]) and
// x[:n] for every r < len(out): the same sums as Dot4x1 gives in fours.
// Where StreamRows holds it reads the rows one after the other, one
// stream in memory order; elsewhere four at a time, sharing x's loads.
func DotRows(out, w []float32, ws int, x []float32, n int) {
	if len(out) == 0 {
		return
	}
	w, x = w[:(len(out)-1)*ws+n], x[:n]
	if n == 0 {
		clear(out)
		return
	}
	dotRows(out, w, ws, x, n)
}

// dotRows4 is DotRows four rows at a time, then one.
func dotRows4(out, w []float32, ws int, x []float32, n int) {
	r := 0
	var o4 [4]float32
	for ; r+4 <= len(out); r += 4 {
		dot4x1(&o4, w[r*ws:], ws, x, n)
		copy(out[r:r+4], o4[:])
	}
	for ; r < len(out); r++ {
		out[r] = dotLanes(w[r*ws:r*ws+n], x)
	}
}

// Dot4x3 sets out[4t+r] to DotLanes of weight row r (w[r·ws:]) and
// activation row t (x[t·xs:]) over n elements, for four rows and three
// activation rows: twelve sums in flight from seven loads per eight
// elements, where one dot product at a time needs two loads per eight.
func Dot4x3(out *[12]float32, w []float32, ws int, x []float32, xs, n int) {
	w, x = w[:3*ws+n], x[:2*xs+n]
	if n == 0 {
		*out = [12]float32{}
		return
	}
	dot4x3(out, w, ws, x, xs, n)
}

func dotLanesGo(a, b []float32) float32 {
	b = b[:len(a)]
	var acc [8]float32
	n := len(a) &^ 7
	for j := 0; j < n; j += 8 {
		for k := range acc {
			acc[k] += float32(a[j+k] * b[j+k])
		}
	}
	s := hsum8(&acc)
	for j := n; j < len(a); j++ {
		s += float32(a[j] * b[j])
	}
	return s
}

func dot4x1Go(out *[4]float32, w []float32, ws int, x []float32, n int) {
	for r := range out {
		out[r] = dotLanesGo(w[r*ws:r*ws+n], x)
	}
}

func dot4x3Go(out *[12]float32, w []float32, ws int, x []float32, xs, n int) {
	for t := range 3 {
		for r := range 4 {
			out[4*t+r] = dotLanesGo(w[r*ws:r*ws+n], x[t*xs:t*xs+n])
		}
	}
}
