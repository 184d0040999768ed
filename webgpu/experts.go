package webgpu

import (
	"fmt"
	"sort"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/tensor"
)

// expertPool holds the matrices of every resident routed expert, of all
// layers, in pages: buffers of at most one storage binding, each carved
// into extents. An expert's gate, up and down matrices are written straight
// into free extents when the engine uploads them and the extents are
// returned when it frees them; nothing is copied between buffers and an
// expert has no other copy on the device. The MoE kernels find a matrix by
// the page's buffer id and its base word (see moe.wgsl), so a layer's
// experts may lie in any pages, and one layer may hold more expert bytes
// than one binding.
//
// Pages are never released before the backend closes: after the first
// ones, a new page is as large as all earlier pages together (up to the
// binding limit), so the pool's capacity stays within about twice the
// largest number of expert bytes that were ever resident at once, which
// the engine's expert budget bounds.
type expertPool struct {
	pages    []*poolPage
	used     uint64 // bytes in live extents
	capacity uint64 // bytes of all pages
}

type poolPage struct {
	buf  *buffer
	free []span // free word ranges, sorted by offset, never adjacent
}

// span is n words from word off.
type span struct{ off, n uint64 }

// extent is a pooled matrix's place.
type extent struct {
	pg     *poolPage
	off, n uint64 // words
}

// minPage is the smallest page, in bytes.
const minPage = 1 << 20

// alloc returns an extent of n words, adding a page when none has room.
func (p *expertPool) alloc(d *Device, n uint64) (extent, error) {
	for _, pg := range p.pages {
		if e, ok := p.allocIn(pg, n); ok {
			return e, nil
		}
	}
	pg, err := p.newPage(d, 4*n)
	if err != nil {
		return extent{}, err
	}
	e, _ := p.allocIn(pg, n)
	return e, nil
}

// allocIn returns the first extent of n free words in pg, if any.
func (p *expertPool) allocIn(pg *poolPage, n uint64) (extent, bool) {
	for i, s := range pg.free {
		if s.n < n {
			continue
		}
		e := extent{pg: pg, off: s.off, n: n}
		if s.n == n {
			pg.free = append(pg.free[:i], pg.free[i+1:]...)
		} else {
			pg.free[i] = span{s.off + n, s.n - n}
		}
		p.used += 4 * n
		return e, true
	}
	return extent{}, false
}

// newPage adds an empty page of at least need bytes: as large as all
// earlier pages together, eight times need or minPage, whichever is
// largest, within the binding limit.
func (p *expertPool) newPage(d *Device, need uint64) (*poolPage, error) {
	limit := min(d.MaxBinding, d.MaxBuffer) &^ 3
	if need > limit {
		return nil, fmt.Errorf("a %d-byte expert matrix exceeds the %d-byte binding limit", need, limit)
	}
	size := max(need, min(limit, max(p.capacity, 8*need, minPage)))
	b, err := d.newBuffer("experts", size, wgpu.BufferUsageStorage|wgpu.BufferUsageCopyDst|wgpu.BufferUsageCopySrc)
	if err != nil {
		return nil, err
	}
	pg := &poolPage{buf: b, free: []span{{0, b.size / 4}}}
	p.pages = append(p.pages, pg)
	p.capacity += b.size
	return pg, nil
}

// release returns e to its page, merging it with free neighbours.
func (p *expertPool) release(e extent) {
	pg := e.pg
	i := sort.Search(len(pg.free), func(i int) bool { return pg.free[i].off > e.off })
	s := span{e.off, e.n}
	if i > 0 && pg.free[i-1].off+pg.free[i-1].n == s.off {
		i--
		s = span{pg.free[i].off, pg.free[i].n + s.n}
		pg.free = append(pg.free[:i], pg.free[i+1:]...)
	}
	if i < len(pg.free) && s.off+s.n == pg.free[i].off {
		s.n += pg.free[i].n
		pg.free = append(pg.free[:i], pg.free[i+1:]...)
	}
	pg.free = append(pg.free, span{})
	copy(pg.free[i+1:], pg.free[i:])
	pg.free[i] = s
	p.used -= 4 * e.n
}

func (p *expertPool) releaseAll() {
	for _, pg := range p.pages {
		pg.buf.Release()
	}
	p.pages, p.used, p.capacity = nil, 0, 0
}

// uploadExpert puts a routed expert's matrix into the pool. A freed
// extent may still be read by dispatches recorded but not yet submitted,
// so those are submitted first: the queue runs them before the write.
func (b *Backend) uploadExpert(t *tensor.Tensor) (backend.Weight, error) {
	w, data, err := prepare(t)
	if err != nil {
		return nil, err
	}
	data = pad4(data)
	if uint64(len(data)) > min(b.d.MaxBinding, b.d.MaxBuffer) {
		// Too large for one binding: paged in buffers of its own, which
		// the MoE op refuses with an error that says so.
		return b.uploadOwn(t)
	}
	e, err := b.experts.alloc(b.d, uint64(len(data)/4))
	if err != nil {
		return nil, fmt.Errorf("webgpu: upload %s: %w", t.Name, err)
	}
	if len(b.s.ops) > 0 {
		if err := b.s.flush(nil); err != nil {
			b.experts.release(e)
			b.s.fail(err)
			return nil, err
		}
	}
	if err := b.d.write(e.pg.buf, 4*e.off, data); err != nil {
		b.experts.release(e)
		return nil, fmt.Errorf("webgpu: writing %s: %w", t.Name, err)
	}
	w.pages = []page{{buf: e.pg.buf, rows: w.rows, base: uint32(e.off)}}
	w.pooled = &e
	w.bytes = int64(4 * e.n)
	return w, nil
}
