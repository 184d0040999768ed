package membw

import (
	"context"
	"testing"
	"time"
)

func TestSum(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 100} {
		x := make([]uint64, n)
		want := uint64(0)
		for i := range x {
			x[i] = uint64(3*i + 1)
			want += x[i]
		}
		if got := sum(x); got != want {
			t.Errorf("sum of %d words = %d, want %d", n, got, want)
		}
	}
}

func TestReadRejects(t *testing.T) {
	for _, c := range []struct {
		size    int64
		threads int
	}{{1 << 20, 0}, {8, 2}} {
		if _, err := Read(context.Background(), c.size, c.threads, 0); err == nil {
			t.Errorf("Read(%d bytes, %d threads) succeeded", c.size, c.threads)
		}
	}
}

func TestReadMeasures(t *testing.T) {
	bw, err := Read(context.Background(), 8<<20, 2, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Any machine reads 8 MiB faster than 10 MB/s and slower than 10 TB/s.
	if bw < 1e7 || bw > 1e13 {
		t.Errorf("bandwidth %.3g B/s is not plausible", bw)
	}
}
