package cpu

import (
	"syscall"
	"unsafe"
)

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14), which the
// syscall package does not name.
const madvPopulateWrite = 23

// populate asks Linux to back the pages of the n bytes at p before they
// are written, in one call: a KV cache row written into a page never
// touched costs that page's fault on the decoding goroutine (32 a token
// for the OLMoE-shaped model, whose rows are 4 KB), and faulting 16 pages
// in one madvise cost about an eighth of faulting them one at a time here
// (RATIONALE.md, "The KV cache is backed ahead of its rows"). The range
// is widened to whole pages, which changes no byte of the memory beside
// it; failures (an older kernel) are ignored: it is a hint.
func populate(p unsafe.Pointer, n uintptr) {
	const page = 4096
	lo := uintptr(p) &^ (page - 1)
	hi := (uintptr(p) + n + page - 1) &^ (page - 1)
	syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, madvPopulateWrite)
}
