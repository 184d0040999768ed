//go:build !wasip1 && !js

package main

import (
	"context"

	"github.com/tetratelabs/wazero/experimental"
)

// withGuestMemory makes the guests' linear memories anonymous mappings of
// their whole maximum (4 GiB for Go's modules), reserved but not
// committed: growing one is taking more of the mapping, in place. wazero's
// own memories grow by append, which copies the whole memory at every
// doubling and leaves the old one to the collector; for the guest's
// hundreds of MiB that was part of the start-up (4% of a profiled run was
// the copy) and most of the peak RSS. Where mapping fails it falls back
// to a slice grown as wazero grows its own.
func withGuestMemory(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(func(capBytes, maxBytes uint64) experimental.LinearMemory {
		if b, err := mmapAnon(maxBytes); err == nil {
			return &mappedMemory{buf: b}
		}
		return &sliceMemory{buf: make([]byte, 0, capBytes), max: maxBytes}
	}))
}

type mappedMemory struct{ buf []byte }

func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	return m.buf[:size]
}

func (m *mappedMemory) Free() {
	if m.buf != nil {
		munmapAnon(m.buf)
		m.buf = nil
	}
}

type sliceMemory struct {
	buf []byte
	max uint64
}

func (m *sliceMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if n := uint64(len(m.buf)); size > n {
		m.buf = append(m.buf, make([]byte, size-n)...)
	}
	return m.buf[:size]
}

func (m *sliceMemory) Free() { m.buf = nil }
