//go:build !linux

package cpu

import "unsafe"

// populate is a no-op where there is no madvise(MADV_POPULATE_WRITE).
func populate(unsafe.Pointer, uintptr) {}
