package membw

import (
	"syscall"
	"unsafe"
)

// alloc maps size bytes of anonymous memory advised onto 2 MB pages, as
// the engine's weights are (runtime/shard's adviseHugePages): the probe
// is the bound decode is compared against, so it must read memory the
// way decode does. On 4 KB pages the same loop read about a fifth slower
// on one thread here (23.5–28.8 against 29.5–31.5 GB/s, four rounds with
// nothing else running; the hardware prefetchers stop at every 4 KB
// boundary), which would make decode look closer to the limit than it
// is. free unmaps it.
func alloc(size int64) (buf []uint64, free func(), err error) {
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	// A failed advice leaves 4 KB pages: a hint, as for the weights.
	syscall.Syscall(syscall.SYS_MADVISE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), syscall.MADV_HUGEPAGE)
	buf = unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
	return buf, func() { syscall.Munmap(b) }, nil
}
