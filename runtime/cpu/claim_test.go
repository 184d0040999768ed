package cpu

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestClaimChunks checks the down projections' chunk claims: the owner
// takes halves of what is left from the front, a helper single chunks
// from the back, and every chunk goes to exactly one claim, also when
// goroutines claim at once.
func TestClaimChunks(t *testing.T) {
	var a atomic.Uint64
	a.Store(16 << 32)
	var got []int
	for _, step := range []struct {
		back   bool
		c, n   int
		chunks int
	}{
		{false, 0, 8, 8},  // half of 16
		{true, 15, 1, 7},  // the last
		{false, 8, 3, 4},  // half of 7
		{true, 14, 1, 3},  //
		{false, 11, 1, 2}, // half of 3
		{false, 12, 1, 1}, //
		{true, 13, 1, 0},  //
		{false, 0, 0, 0},  // none left
		{true, 0, 0, 0},
	} {
		var c, n int
		if step.back {
			var ok bool
			c, ok = claimBack(&a)
			if ok {
				n = 1
			}
		} else {
			c, n = claimFront(&a)
		}
		if n != step.n || (n > 0 && c != step.c) || chunksLeft(&a) != step.chunks {
			t.Fatalf("claim (back %v): chunks %d+%d, %d left; want %d+%d, %d left", step.back, c, n, chunksLeft(&a), step.c, step.n, step.chunks)
		}
		for i := range n {
			got = append(got, c+i)
		}
	}
	if len(got) != 16 {
		t.Fatalf("claimed %v", got)
	}

	const chunks = 1000
	a.Store(chunks << 32)
	counts := make([]atomic.Int32, chunks)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for {
				var c, n int
				if g%2 == 0 {
					c, n = claimFront(&a)
				} else if k, ok := claimBack(&a); ok {
					c, n = k, 1
				}
				if n == 0 {
					return
				}
				for i := range n {
					counts[c+i].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for i := range counts {
		if n := counts[i].Load(); n != 1 {
			t.Errorf("chunk %d claimed %d times", i, n)
		}
	}
}
