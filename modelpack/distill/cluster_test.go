package distill

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestKMeans(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, dim = 96, 12
	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for _, tc := range []struct {
		name     string
		k        int
		balanced bool
	}{
		{"balanced 8", 8, true},
		{"balanced 5 (uneven)", 5, true},
		{"natural 8", 8, false},
		{"natural 1", 1, false},
		{"natural n", n, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := kmeans(x, n, dim, tc.k, tc.balanced, 42)
			if b := kmeans(x, n, dim, tc.k, tc.balanced, 42); !slices.Equal(a, b) {
				t.Fatal("same seed, different partition")
			}
			groups := members(a, tc.k)
			seen := make([]int, n)
			for c, g := range groups {
				if len(g) == 0 {
					t.Errorf("cluster %d is empty", c)
				}
				if tc.balanced && (len(g) < n/tc.k || len(g) > n/tc.k+1) {
					t.Errorf("balanced cluster %d has %d of %d rows", c, len(g), n)
				}
				for _, i := range g {
					seen[i]++
				}
			}
			for i, s := range seen {
				if s != 1 {
					t.Fatalf("row %d is in %d clusters", i, s)
				}
			}
			if tc.balanced && n%tc.k == 0 {
				for c, g := range groups {
					if len(g) != n/tc.k {
						t.Errorf("cluster %d: %d rows, want %d", c, len(g), n/tc.k)
					}
				}
			}
		})
	}
}

// TestKMeansFindsClusters: well separated blobs come back as clusters.
func TestKMeansFindsClusters(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const k, per, dim = 4, 10, 6
	x := make([]float32, 0, k*per*dim)
	for c := 0; c < k; c++ {
		for i := 0; i < per; i++ {
			for j := 0; j < dim; j++ {
				centre := float32(0)
				if j == c {
					centre = 10
				}
				x = append(x, centre+float32(0.1*r.NormFloat64()))
			}
		}
	}
	for _, balanced := range []bool{false, true} {
		a := kmeans(x, k*per, dim, k, balanced, 1)
		for c := 0; c < k; c++ {
			for i := 1; i < per; i++ {
				if a[c*per+i] != a[c*per] {
					t.Fatalf("balanced %v: blob %d split: %v", balanced, c, a)
				}
			}
		}
	}
}
