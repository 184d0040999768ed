package webgpu

import (
	"math/bits"

	"github.com/cogentcore/webgpu/wgpu"
)

// pool recycles buffers by usage and power-of-two size: staging buffers
// for readback and the scratch of ops (attention partials, expert hidden
// states). A scratch buffer may go back to the pool as soon as the ops
// using it are recorded: dispatches run in recording order, so a later op
// that takes the same buffer sees it only after they finish with it.
type pool struct {
	d    *Device
	free map[poolKey][]*buffer
	all  []*buffer
}

type poolKey struct {
	usage wgpu.BufferUsage
	size  uint64
}

func newPool(d *Device) *pool { return &pool{d: d, free: map[poolKey][]*buffer{}} }

func roundPow2(n uint64) uint64 {
	if n <= 256 {
		return 256
	}
	return 1 << bits.Len64(n-1)
}

// get returns a buffer of at least size bytes with usage.
func (p *pool) get(label string, size uint64, usage wgpu.BufferUsage) (*buffer, error) {
	k := poolKey{usage, roundPow2(size)}
	if k.size > p.d.MaxBuffer && size <= p.d.MaxBuffer {
		k.size = (size + 3) &^ 3
	}
	if l := p.free[k]; len(l) > 0 {
		b := l[len(l)-1]
		p.free[k] = l[:len(l)-1]
		return b, nil
	}
	b, err := p.d.newBuffer(label, k.size, usage)
	if err != nil {
		return nil, err
	}
	p.all = append(p.all, b)
	return b, nil
}

func (p *pool) put(b *buffer) {
	k := poolKey{b.usage, b.size}
	p.free[k] = append(p.free[k], b)
}

func (p *pool) release() {
	for _, b := range p.all {
		b.Release()
	}
	p.all, p.free = nil, nil
}
