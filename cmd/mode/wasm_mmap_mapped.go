//go:build linux || darwin

package main

import (
	"errors"
	"math"
	"syscall"
)

// mmapAnon maps n bytes of zeroed memory that takes no RAM (and no swap
// reservation) until it is touched.
func mmapAnon(n uint64) ([]byte, error) {
	if n == 0 || n > math.MaxInt {
		return nil, errors.New("no mapping of that size")
	}
	return syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
}

func munmapAnon(b []byte) { syscall.Munmap(b) }
