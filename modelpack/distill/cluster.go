package distill

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// kmeans partitions the n rows of x (each dim wide) into k clusters by
// Lloyd's algorithm from a k-means++ seeding drawn from seed. With balanced
// set every cluster gets n/k rows (the first n%k one more); otherwise
// clusters keep their natural sizes, but none is left empty. It returns the
// cluster of each row.
func kmeans(x []float32, n, dim, k int, balanced bool, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	row := func(i int) []float32 { return x[i*dim : (i+1)*dim] }
	cent := make([]float32, k*dim)
	// k-means++: each next centre is drawn with probability proportional to
	// the squared distance to the nearest centre chosen so far.
	d2 := make([]float64, n)
	for i := range d2 {
		d2[i] = math.Inf(1)
	}
	first := r.IntN(n)
	copy(cent[:dim], row(first))
	for c := 1; c < k; c++ {
		var total float64
		for i := 0; i < n; i++ {
			d2[i] = math.Min(d2[i], dist2(row(i), cent[(c-1)*dim:c*dim]))
			total += d2[i]
		}
		pick := n - 1
		u := r.Float64() * total
		for i := 0; i < n; i++ {
			if u -= d2[i]; u < 0 {
				pick = i
				break
			}
		}
		copy(cent[c*dim:(c+1)*dim], row(pick))
	}
	assign := make([]int, n)
	for i := range assign {
		assign[i] = -1
	}
	dist := make([]float64, n*k)
	for iter := 0; iter < 50; iter++ {
		for i := 0; i < n; i++ {
			for c := 0; c < k; c++ {
				dist[i*k+c] = dist2(row(i), cent[c*dim:(c+1)*dim])
			}
		}
		var next []int
		if balanced {
			next = balancedAssign(dist, n, k)
		} else {
			next = nearestAssign(dist, n, k)
		}
		if slices.Equal(next, assign) {
			break
		}
		assign = next
		centroids(cent, x, assign, n, dim, k)
	}
	return assign
}

// nearestAssign gives each row its nearest centre, then moves the row
// farthest from its centre into each empty cluster so that every expert has
// at least one neuron.
func nearestAssign(dist []float64, n, k int) []int {
	a := make([]int, n)
	size := make([]int, k)
	for i := 0; i < n; i++ {
		best := 0
		for c := 1; c < k; c++ {
			if dist[i*k+c] < dist[i*k+best] {
				best = c
			}
		}
		a[i] = best
		size[best]++
	}
	for c := 0; c < k; c++ {
		if size[c] > 0 {
			continue
		}
		far := -1
		for i := 0; i < n; i++ {
			if size[a[i]] > 1 && (far < 0 || dist[i*k+a[i]] > dist[far*k+a[far]]) {
				far = i
			}
		}
		size[a[far]]--
		a[far] = c
		size[c]++
	}
	return a
}

// balancedAssign fills clusters to equal capacity by taking (row, centre)
// pairs in order of increasing distance: a greedy solution of the balanced
// assignment problem that is exact enough for initialising experts.
func balancedAssign(dist []float64, n, k int) []int {
	capa := make([]int, k)
	for c := range capa {
		capa[c] = n / k
		if c < n%k {
			capa[c]++
		}
	}
	pairs := make([]int, n*k)
	for i := range pairs {
		pairs[i] = i
	}
	sort.SliceStable(pairs, func(a, b int) bool { return dist[pairs[a]] < dist[pairs[b]] })
	a := make([]int, n)
	for i := range a {
		a[i] = -1
	}
	for _, p := range pairs {
		i, c := p/k, p%k
		if a[i] < 0 && capa[c] > 0 {
			a[i] = c
			capa[c]--
		}
	}
	return a
}

func centroids(cent, x []float32, assign []int, n, dim, k int) {
	sum := make([]float64, k*dim)
	cnt := make([]int, k)
	for i := 0; i < n; i++ {
		c := assign[i]
		cnt[c]++
		for j, v := range x[i*dim : (i+1)*dim] {
			sum[c*dim+j] += float64(v)
		}
	}
	for c := 0; c < k; c++ {
		if cnt[c] == 0 {
			continue // keep the old centre
		}
		for j := 0; j < dim; j++ {
			cent[c*dim+j] = float32(sum[c*dim+j] / float64(cnt[c]))
		}
	}
}

func dist2(a, b []float32) float64 {
	var s float64
	for i, v := range a {
		d := float64(v - b[i])
		s += d * d
	}
	return s
}

// members returns the sorted rows of each cluster.
func members(assign []int, k int) [][]int {
	out := make([][]int, k)
	for i, c := range assign {
		out[c] = append(out[c], i)
	}
	return out
}

// neuronFeatures describes each neuron i of a dense FFN by its gate row,
// up row and down column and, when acts is given ([tokens, width]), its
// activation over the calibration tokens; each part is normalised to unit
// length so that no part dominates by scale.
func neuronFeatures(e *expert, dim int, acts []float32, tokens int, neurons []int) ([]float32, int) {
	W := e.width
	fdim := 3 * dim
	if acts != nil {
		fdim += tokens
	}
	out := make([]float32, len(neurons)*fdim)
	col := make([]float32, dim)
	for r, i := range neurons {
		f := out[r*fdim : (r+1)*fdim]
		copy(f[:dim], e.gate[i*dim:(i+1)*dim])
		copy(f[dim:2*dim], e.up[i*dim:(i+1)*dim])
		for j := 0; j < dim; j++ {
			col[j] = e.down[j*W+i]
		}
		copy(f[2*dim:3*dim], col)
		normalise(f[:dim])
		normalise(f[dim : 2*dim])
		normalise(f[2*dim : 3*dim])
		if acts != nil {
			a := f[3*dim:]
			for t := 0; t < tokens; t++ {
				a[t] = acts[t*W+i]
			}
			normalise(a)
		}
	}
	return out, fdim
}

func normalise(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}
