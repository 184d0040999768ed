package shard

import (
	"syscall"
	"unsafe"
)

// hugePage is the size of an x86-64 or arm64 transparent huge page.
const hugePage = 2 << 20

// adviseHugePages asks Linux to back b with 2 MB pages as it is first
// written. A decode step streams every active weight once, hundreds of MB
// of them, and on 4 KB pages each page needs its own TLB entry: on the
// OLMoE-shaped q4_0 pack, weights on huge pages took 0.93× the CPU time
// per decoded token (RATIONALE.md, "Huge pages for the weights"). Machines
// whose transparent huge pages are "madvise" (the usual default) give them
// only to memory so advised; the Go runtime does not advise its heap.
//
// The advice covers the 2 MB-aligned range around b, which may reach up
// to 2 MB past either end into heap memory beside it: the advice changes
// no byte, only how pages not yet touched are backed. Buffers under
// 512 KB are left alone, so that small reads do not pull their
// neighbours onto huge pages, and failures are ignored: it is a hint.
func adviseHugePages(b []byte) {
	if len(b) < hugePage/4 {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := p &^ (hugePage - 1)
	hi := (p + uintptr(len(b)) + hugePage - 1) &^ (hugePage - 1)
	syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_HUGEPAGE)
}
