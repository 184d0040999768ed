package webgpu

import "github.com/moderuntime/mode/shaders"

// Fusing a one-row RMSNorm into the matvec that reads its output (the
// norms before the q/k/v, router, gate/up and head projections): RMSNorm
// records its dispatch as usual and remembers it (lastOut); a matvec whose
// input is exactly that dispatch's output, recorded right after it, takes
// the dispatch back and runs its *Norm variant on the raw row instead
// (shaders.Spec.Norm), which also writes the normalised row, so later
// readers of it see what the norm would have written. matvec_multi has no
// binding left for that row (eight storage bindings at most), so when q,
// k and v join, the norm's dispatch is kept aside (stream.pend) and put
// back at its place if anything binds the row's buffer before another
// norm overwrites it, or at the flush.

// mvNorm is an RMSNorm a matvec applies on the way in: it reads the raw
// row x, the norm's weight at w[base:], and writes the normalised row h.
type mvNorm struct {
	x, h *buf
	w    *buffer
	base uint32
	eps  float32
	d    dispatch // the norm's own dispatch, taken back
}

// lastOut is a recorded one-row, one-group rmsnorm main dispatch a matvec
// may take in (see lastMatVec for op and submits).
type lastOut struct {
	op, submits int
	n           mvNorm
}

// noteNorm records that the dispatch just recorded normalised the row x
// into h with w, for normFor.
func (b *Backend) noteNorm(x, h *buf, w *buffer, base uint32, eps float32) {
	if b.oldMatVec || b.unfused || x.rows != 1 || x.off%4 != 0 || x.cols%4 != 0 || x.b == h.b {
		b.lastOut = lastOut{op: -1}
		return
	}
	n := len(b.s.ops)
	b.lastOut = lastOut{op: n - 1, submits: b.s.submits, n: mvNorm{x: x, h: h, w: w, base: base, eps: eps, d: b.s.ops[n-1]}}
}

// normFor returns the rmsnorm dispatch recorded last when it wrote
// exactly x and none of the writable buffers (besides x's) are the norm's
// input, and removes it from the stream; nil otherwise.
func (b *Backend) normFor(x *buf, writable ...*buffer) *mvNorm {
	l := b.lastOut
	n := len(b.s.ops)
	if b.oldMatVec || b.s.err != nil || n == 0 || l.op != n-1 || l.submits != b.s.submits || *l.n.h != *x {
		return nil
	}
	for _, w := range writable {
		if w == l.n.x.b || w == l.n.h.b {
			return nil
		}
	}
	b.s.ops = b.s.ops[:n-1] // its params stay in the arena, unused unless put back
	b.s.byFile[shaders.RMSNorm.File]--
	b.lastOut = lastOut{op: -1}
	nm := l.n
	return &nm
}

// pendNorm is a norm dispatch a matvec_multi took in without writing its
// output h: it goes back into the stream at index at (before the
// matvec_multi, which does not touch h) when anything binds h's buffer
// again, unless an RMSNorm rewrites h first.
type pendNorm struct {
	h           buf
	at, submits int
	d           dispatch
}

// materialize puts the pending norm dispatch back at its place.
func (s *stream) materialize() {
	p := s.pend
	if p == nil {
		return
	}
	s.pend = nil
	if p.submits != s.submits || s.err != nil {
		return
	}
	at := min(p.at, len(s.ops))
	s.ops = append(s.ops, dispatch{})
	copy(s.ops[at+1:], s.ops[at:])
	s.ops[at] = p.d
	s.byFile[shaders.RMSNorm.File]++
}
