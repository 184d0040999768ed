package membw

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Read returns the best read bandwidth, in bytes per second, of passes
// over a buffer of size bytes split between threads goroutines, each
// summing its part as 8-byte words. size should be far beyond the last
// level cache so that the reads come from memory; passes run until d has
// passed (at least two, the first of which only faults the pages in).
func Read(ctx context.Context, size int64, threads int, d time.Duration) (float64, error) {
	if threads < 1 || size < int64(8*threads) {
		return 0, fmt.Errorf("membw: %d bytes over %d threads", size, threads)
	}
	buf, free, err := alloc(size)
	if err != nil {
		return 0, fmt.Errorf("membw: %d bytes: %w", size, err)
	}
	defer free()
	for i := range buf {
		buf[i] = uint64(i) // touch every page so no pass reads the zero page
	}
	parts := make([][]uint64, threads)
	for t := range parts {
		parts[t] = buf[len(buf)*t/threads : len(buf)*(t+1)/threads]
	}
	sums := make([]uint64, threads)
	best := 0.0
	start := time.Now()
	for pass := 0; pass < 2 || time.Since(start) < d; pass++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		t0 := time.Now()
		var wg sync.WaitGroup
		for t, p := range parts {
			wg.Go(func() { sums[t] += sum(p) })
		}
		wg.Wait()
		if bw := float64(len(buf)*8) / time.Since(t0).Seconds(); pass > 0 && bw > best {
			best = bw
		}
	}
	var total uint64
	for _, s := range sums {
		total += s
	}
	if total == 0 { // never: keeps the sums observable so the loop stays
		return 0, fmt.Errorf("membw: zero sum")
	}
	return best, nil
}

// sum adds the words with four independent accumulators, so that the
// loop is bound by loads rather than by one chain of additions.
func sum(x []uint64) uint64 {
	var a, b, c, d uint64
	for len(x) >= 8 {
		a += x[0] + x[4]
		b += x[1] + x[5]
		c += x[2] + x[6]
		d += x[3] + x[7]
		x = x[8:]
	}
	for _, v := range x {
		a += v
	}
	return a + b + c + d
}
