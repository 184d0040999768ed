package webgpu

import (
	"slices"

	"github.com/moderuntime/mode/shaders"
)

// Fusing a one-row RMSNorm into the matvec that reads its output (the
// norms before the q/k/v, router, gate/up and head projections): RMSNorm
// records its dispatch as usual and remembers it (lastOut); a matvec whose
// input is exactly that dispatch's output, recorded right after it, takes
// the dispatch back and runs its *Norm variant on the raw row instead
// (shaders.Spec.Norm), which also writes the normalised row, so later
// readers of it see what the norm would have written. matvec_multi has no
// binding left for that row (eight storage bindings at most), so when q,
// k and v join, the norm's dispatch is kept aside (pendOp) and put back at
// its place if anything binds the row's buffer before an op overwrites
// it, or at the flush.

// normFuseMaxGroups is the most workgroups a matvec may have to take a
// norm in. Each workgroup recomputes the row's sum of squares: a read of
// the row and six barriers, which on lavapipe cost more than the
// dispatch saved once there are many workgroups. Measured with
// BenchmarkFusion: the Mixtral shape's head (32000 rows, 1000 workgroups)
// with the final norm taken in made decode 2.4x slower; with the norm only
// in matvecs of at most 64 workgroups (its q/k/v, 16; router, 1) decode
// was 1.06x faster than unfused. Shapes here have nothing between 16 and
// 1000 workgroups, so the bound is not tuned finer than that; a GPU, where
// barriers are cheap, may want a larger one (not measured).
const normFuseMaxGroups = 64

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
// exactly x, the matvec taking it in has at most normFuseMaxGroups
// workgroups and none of its writable buffers are the norm's, and removes
// it from the stream; nil otherwise.
func (b *Backend) normFor(x *buf, groups int, writable ...*buffer) *mvNorm {
	l := b.lastOut
	n := len(b.s.ops)
	if groups > normFuseMaxGroups || b.oldMatVec || b.s.err != nil || n == 0 || l.op != n-1 || l.submits != b.s.submits || *l.n.h != *x {
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

// pendOp is a dispatch taken out of the stream whose output another
// dispatch made unnecessary for the kernels that follow, but not for
// others: a norm a matvec_multi took in without writing its output, the
// rope of k attn_rope did without writing k back. It goes back in at
// index at when anything binds its output's buffer again (stream.run), or
// at the flush, and is dropped when an op overwrites the output first
// (stream.overwritten).
type pendOp struct {
	out         buf // what it writes
	at, submits int
	d           dispatch
	file        string
}

// materialize puts the pending dispatches writing to buffer b (all of
// them when b is nil) back at their places.
func (s *stream) materialize(b *buffer) {
	for i := 0; i < len(s.pend); {
		p := s.pend[i]
		if b != nil && p.out.b != b {
			i++
			continue
		}
		s.pend = slices.Delete(s.pend, i, i+1)
		if p.submits != s.submits || s.err != nil {
			continue
		}
		at := min(p.at, len(s.ops))
		s.ops = slices.Insert(s.ops, at, p.d)
		s.byFile[p.file]++
		for j := range s.pend {
			if s.pend[j].at >= at {
				s.pend[j].at++
			}
		}
	}
}

// pending reports whether a pending dispatch writes to b.
func (s *stream) pending(b *buffer) bool {
	for _, p := range s.pend {
		if p.out.b == b {
			return true
		}
	}
	return false
}

// overwritten drops the pending dispatches whose output is exactly v, which
// an op about to be recorded writes in full, unless that op also reads
// v's buffer (reads).
func (s *stream) overwritten(v *buf, reads ...*buffer) {
	for _, r := range reads {
		if r == v.b {
			return
		}
	}
	s.pend = slices.DeleteFunc(s.pend, func(p pendOp) bool { return p.out == *v })
}
