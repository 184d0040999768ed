package cpu

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// countTask counts how often each item is run.
type countTask struct{ seen []atomic.Int32 }

func (c *countTask) run(_, lo, hi int) {
	for i := lo; i < hi; i++ {
		c.seen[i].Add(1)
	}
}

// slowTask counts like its countTask after outlasting the pool's spinning.
type slowTask struct{ c *countTask }

func (s slowTask) run(w, lo, hi int) {
	time.Sleep(2 * spinFor)
	s.c.run(w, lo, hi)
}

// TestPool: every item of every op runs exactly once, whatever the chunk
// size and whether the goroutines spun or parked between ops, ops are
// reused without allocating, and stop ends the goroutines; with as many
// goroutines as Ps (which spin) and more (which do not).
func TestPool(t *testing.T) {
	for _, threads := range []int{2, runtime.GOMAXPROCS(0) + 1} {
		t.Run(fmt.Sprint(threads), func(t *testing.T) { testPool(t, threads) })
	}
}

func testPool(t *testing.T, threads int) {
	// The pool's own count of its helpers: the process's goroutine count
	// also moves with other tests' pools, whose helpers return after their
	// stop (TestPool/2 once read 0 helpers that way under -race).
	p := newPool(threads)
	if n := int(p.live.Load()); n != threads-1 {
		t.Errorf("%d helper goroutines, want %d", n, threads-1)
	}
	t.Logf("spinning: %v", p.spin)
	for _, tc := range []struct{ items, chunk int }{{1, 1}, {10, 3}, {100, 4}, {7, 100}} {
		c := &countTask{seen: make([]atomic.Int32, tc.items)}
		for range 50 {
			p.run(tc.items, tc.chunk, c, true)
		}
		for i := range c.seen {
			if n := c.seen[i].Load(); n != 50 {
				t.Fatalf("items %d chunk %d: item %d ran %d times in 50 ops", tc.items, tc.chunk, i, n)
			}
		}
	}
	// Ops far enough apart that the helpers park between them, and the
	// caller while they finish (a task slower than spinFor).
	c := &countTask{seen: make([]atomic.Int32, 64)}
	for range 5 {
		time.Sleep(3 * spinFor)
		p.run(64, 4, c, true)
		p.run(2, 1, slowTask{c}, true)
	}
	for i := range c.seen {
		want := int32(5)
		if i < 2 {
			want = 10
		}
		if n := c.seen[i].Load(); n != want {
			t.Fatalf("after parking: item %d ran %d times, want %d", i, n, want)
		}
	}
	if a := testing.AllocsPerRun(100, func() { p.run(64, 4, c, true) }); a != 0 {
		t.Errorf("%v allocations per op", a)
	}
	p.stop()
	deadline := time.Now().Add(5 * time.Second)
	for p.live.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := p.live.Load(); n > 0 {
		t.Errorf("%d helper goroutines still running 5 s after stop", n)
	}
}

// callTask records its calls and takes d per call.
type callTask struct {
	calls [][2]int
	d     time.Duration
}

func (c *callTask) run(_, lo, hi int) {
	c.calls = append(c.calls, [2]int{lo, hi})
	time.Sleep(c.d)
}

// TestPoolSolo: when every helper is left out of soloAfter short ops in a
// row that each took the caller over outAfter (here a helper that never
// runs, as one whose core another process holds), the next short ops run
// on the caller in one call each; ops quicker than outAfter do not count,
// and long ops are still handed out. The stretches alone grow from
// soloMin to soloMax while the helpers stay away.
func TestPoolSolo(t *testing.T) {
	p := &pool{done: make(chan struct{}, 1),
		state: make([]atomic.Int32, 1), joined: make([]atomic.Uint64, 1), wake: []chan struct{}{make(chan struct{}, 1)}}
	short := &callTask{}
	for range 2 * soloAfter {
		p.run(8, 2, short, true)
	}
	if n := p.solos.Load(); n != 0 {
		t.Fatalf("went solo %d times after ops shorter than outAfter", n)
	}
	// A short op that a pause (the race detector, a loaded machine) made
	// last over outAfter counts toward the streak, and the slow ops below
	// would then reach soloAfter one early: start them from none.
	p.outs = 0
	slow := &callTask{d: outAfter}
	for range soloAfter {
		slow.calls = slow.calls[:0]
		p.run(8, 2, slow, true)
		if len(slow.calls) != 4 {
			t.Fatalf("before going solo: %d calls, want 4 chunks", len(slow.calls))
		}
	}
	if n := p.solos.Load(); n != 1 {
		t.Fatalf("went solo %d times, want 1", n)
	}
	if p.soloLen != soloMin {
		t.Errorf("first solo stretch %v, want %v", p.soloLen, soloMin)
	}
	// Longer than the test's ops take on a loaded machine.
	p.soloUntil = time.Now().Add(time.Minute)
	slow.calls = slow.calls[:0]
	p.run(8, 2, slow, true)
	if fmt.Sprint(slow.calls) != "[[0 8]]" {
		t.Errorf("solo op's calls %v, want [[0 8]]", slow.calls)
	}
	// A long op is still handed out (here, as before, the caller claims
	// every chunk), and does not end the solo stretch.
	slow.calls = slow.calls[:0]
	p.run(8, 2, slow, false)
	if len(slow.calls) != 4 {
		t.Errorf("long op while solo: %d calls, want 4 chunks", len(slow.calls))
	}
	slow.calls = slow.calls[:0]
	p.run(8, 2, slow, true)
	if len(slow.calls) != 1 {
		t.Errorf("short op after a long one while solo: %d calls, want 1", len(slow.calls))
	}

	// Left out again right after a stretch, the next is twice as long,
	// and so on up to soloMax; left out again long after one, the next
	// is soloMin again.
	p.soloUntil = time.Now()
	outAgain := func() {
		t.Helper()
		time.Sleep(time.Until(p.soloUntil))
		n := p.solos.Load()
		for range soloAfter {
			p.run(8, 2, slow, true)
		}
		if p.solos.Load() != n+1 {
			t.Fatalf("left out %d more times after a stretch: went solo %d times, want %d", soloAfter, p.solos.Load(), n+1)
		}
	}
	for _, want := range []time.Duration{2 * soloMin, 4 * soloMin, 8 * soloMin, 16 * soloMin, soloMax, soloMax} {
		outAgain()
		if p.soloLen != want {
			t.Errorf("stretch after stretch: %v, want %v", p.soloLen, want)
		}
	}
	time.Sleep(time.Until(p.soloUntil) + soloMax + time.Millisecond)
	outAgain()
	if p.soloLen != soloMin {
		t.Errorf("stretch long after the last: %v, want %v", p.soloLen, soloMin)
	}
}
