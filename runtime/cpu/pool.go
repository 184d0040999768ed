package cpu

import (
	"runtime"
	"sync/atomic"
	"time"
)

// task is one op split into items that workers claim in chunks; worker
// numbers a goroutine of the pool (0 is the caller), so a task can keep
// scratch memory per worker.
type task interface {
	run(worker, lo, hi int)
}

// funcTask adapts a closure, for the ops that are not worth a dedicated
// task type (the exact path).
type funcTask func(lo, hi int)

func (f funcTask) run(_, lo, hi int) { f(lo, hi) }

// pool is a fixed set of goroutines, started once. An op is published by
// bumping an epoch counter; the caller works too, and everyone claims
// chunks of items from an atomic counter until none are left, so a slow or
// descheduled goroutine delays the op by at most one chunk. Nothing is
// allocated per op.
//
// The caller waits only for the helpers that joined the op: one that has
// not when every item is claimed is left out of it. On a busy machine the
// system may not run a woken helper for milliseconds; waiting for it to
// find that nothing is left made ops stall.
//
// Between ops a helper spins on the epoch for up to spinFor before it
// parks on its channel, and the caller spins the same while the helpers
// finish. A decode step is hundreds of ops of tens of microseconds with a
// few microseconds of serial work between them: waking a parked goroutine
// (a futex and the Go scheduler) took about as long as the op, so the
// second goroutine often arrived after the caller had done all the work.
// Spinning is bounded, so an idle engine costs nothing, and is off when
// there are more goroutines than Ps (a spinning helper would then hold
// the P the caller needs).
//
// Another process may hold a helper's core (on this 2-core machine, other
// sessions' work). The helper then spins away its share of the core
// between ops that the caller does alone: with one other busy process,
// decode on two threads took 1.7–1.9× the time of one thread. So when every helper is left out of a
// few short but not tiny ops in a row, the pool runs the short ops on the
// caller alone for a while (a millisecond, doubling while the helpers stay
// away, up to 20), the helpers park, and then it tries
// them again. Long ops (prefill's) still go to the helpers: one that is
// late still takes its part of them.
//
// A pool runs one op at a time: a Backend's ops are called from one
// goroutine.
type pool struct {
	wake   []chan struct{} // one per helper goroutine; closed to stop it
	state  []atomic.Int32  // per helper: running or parked
	joined []atomic.Uint64 // per helper: the last op it took part in or was left out of
	spin   bool

	// The op in progress, written before the epoch is bumped, which
	// orders them before the helpers' reads.
	t            task
	items, chunk int
	next         atomic.Int64
	epoch        atomic.Uint64
	pending      atomic.Int32 // helpers not yet done with the op
	stopped      atomic.Bool

	callerParked atomic.Bool
	done         chan struct{} // wakes a parked caller

	ops  atomic.Int64 // ops run, for tests and benchmarks counting hand-offs
	live atomic.Int32 // helper goroutines not yet returned, for tests

	outs      int           // ops in a row that every helper was left out of
	soloUntil time.Time     // until then, ops run on the caller alone
	soloLen   time.Duration // the last solo stretch's length
	solos     atomic.Int64  // times the pool went solo, for tests
}

const (
	running = iota
	parked
)

// spinFor is how long a helper waits for the next op, and the caller for
// the helpers, before parking: longer than the serial work between two
// ops of a decode step, short against any pause of the engine.
const spinFor = 100 * time.Microsecond

// outAfter, soloAfter, soloMin and soloMax: when every helper is left
// out of soloAfter short ops in a row, each of which kept the caller busy
// more than outAfter, the short ops run on the caller alone for a stretch
// of soloMin, or twice the last one's length, up to soloMax, when they
// are left out again less than soloMax after its end (see run).
const (
	outAfter  = 20 * time.Microsecond
	soloAfter = 3
	soloMin   = time.Millisecond
	soloMax   = 20 * time.Millisecond
)

// newPool starts threads−1 helper goroutines.
func newPool(threads int) *pool {
	p := &pool{done: make(chan struct{}, 1), spin: threads <= runtime.GOMAXPROCS(0)}
	p.state = make([]atomic.Int32, threads-1)
	p.joined = make([]atomic.Uint64, threads-1)
	for w := 1; w < threads; w++ {
		c := make(chan struct{}, 1)
		p.wake = append(p.wake, c)
	}
	for w := 1; w < threads; w++ {
		p.live.Add(1)
		go p.helper(w, p.wake[w-1])
	}
	return p
}

func (p *pool) helper(worker int, wake chan struct{}) {
	defer p.live.Add(-1)
	st, joined := &p.state[worker-1], &p.joined[worker-1]
	var seen uint64
	for {
		e, ok := p.waitEpoch(seen, st, wake)
		if !ok || p.stopped.Load() {
			return
		}
		seen = e
		// Take part in op e unless the caller, done with it, has left
		// this goroutine out (joined is then e already).
		if !joined.CompareAndSwap(e-1, e) {
			continue
		}
		p.work(worker)
		if p.pending.Add(-1) == 0 && p.callerParked.CompareAndSwap(true, false) {
			p.done <- struct{}{}
		}
	}
}

// waitEpoch spins, then parks, until the epoch passes seen; false when
// the pool is stopped while parked.
func (p *pool) waitEpoch(seen uint64, st *atomic.Int32, wake chan struct{}) (uint64, bool) {
	if p.spin {
		var t0 time.Time
		for i := 0; ; i++ {
			if e := p.epoch.Load(); e != seen {
				return e, true
			}
			if i&63 == 63 {
				if t0.IsZero() {
					t0 = time.Now()
				} else if time.Since(t0) > spinFor {
					break
				}
				runtime.Gosched()
			}
		}
	}
	// Announce the park before the last look at the epoch: either run
	// sees parked and sends, or this sees the new epoch.
	st.Store(parked)
	if e := p.epoch.Load(); e != seen {
		if st.CompareAndSwap(parked, running) {
			return e, true
		}
		// run has claimed the wake-up and sends it: take it.
		_, ok := <-wake
		return p.epoch.Load(), ok
	}
	_, ok := <-wake
	return p.epoch.Load(), ok
}

// run calls t.run over [0, items) in chunks of chunk items, on every
// goroutine of the pool, and returns when all are done. A short op may run
// on the caller alone (see the end of run); a long one is always handed
// out.
func (p *pool) run(items, chunk int, t task, short bool) {
	p.ops.Add(1)
	start := time.Now()
	if short && start.Before(p.soloUntil) {
		t.run(0, 0, items)
		return
	}
	p.t, p.items, p.chunk = t, items, chunk
	p.next.Store(0)
	p.pending.Store(int32(len(p.wake)))
	p.epoch.Add(1)
	for i := range p.state {
		if p.state[i].Load() == parked && p.state[i].CompareAndSwap(parked, running) {
			p.wake[i] <- struct{}{}
		}
	}
	p.work(0)
	// Every item is claimed: leave out the helpers that have not yet
	// joined the op (descheduled, or still waking), rather than wait for
	// the system to run them only to find nothing left.
	e := p.epoch.Load()
	out := 0
	for i := range p.joined {
		if p.joined[i].CompareAndSwap(e-1, e) {
			p.pending.Add(-1)
			out++
		}
	}
	p.wait()
	p.t = nil
	// A spinning helper joins an op within a microsecond. When every
	// helper was left out of short ops that kept the caller busy longer,
	// soloAfter of them in a row, another process has their cores, and
	// a helper spends what it gets of its core spinning between ops the
	// caller has done alone. Run the ops on the caller alone for a
	// while, so the helpers park, then try them again. The while starts
	// short: on a quiet virtual machine a helper's core goes away for a
	// millisecond or so now and then (decoding the OLMoE-shaped model,
	// the pool went solo 0–6 times a run with its helper not parked),
	// and 20 ms alone each time cost more than it saved. It doubles while
	// the helpers stay away, so a busy machine still sees few hand-offs.
	if !short {
		return
	}
	if out == len(p.joined) && time.Since(start) > outAfter {
		if p.outs++; p.outs >= soloAfter {
			p.outs = 0
			if p.soloLen > 0 && start.Sub(p.soloUntil) < soloMax {
				p.soloLen = min(2*p.soloLen, soloMax)
			} else {
				p.soloLen = soloMin
			}
			p.soloUntil = time.Now().Add(p.soloLen)
			p.solos.Add(1)
		}
	} else {
		p.outs = 0
	}
}

// wait returns when every helper is done with the op.
func (p *pool) wait() {
	if p.spin {
		var t0 time.Time
		for i := 0; ; i++ {
			if p.pending.Load() == 0 {
				return
			}
			if i&63 == 63 {
				if t0.IsZero() {
					t0 = time.Now()
				} else if time.Since(t0) > spinFor {
					break
				}
				runtime.Gosched()
			}
		}
	}
	p.callerParked.Store(true)
	if p.pending.Load() == 0 && p.callerParked.CompareAndSwap(true, false) {
		return
	}
	<-p.done
}

func (p *pool) work(worker int) {
	for {
		hi := int(p.next.Add(int64(p.chunk)))
		lo := hi - p.chunk
		if lo >= p.items {
			return
		}
		p.t.run(worker, lo, min(hi, p.items))
	}
}

// stop ends the helper goroutines.
func (p *pool) stop() {
	if p.stopped.Swap(true) {
		return
	}
	p.epoch.Add(1)
	for _, c := range p.wake {
		close(c)
	}
	p.wake = nil
}
