//go:build !linux

package membw

// alloc is a plain slice where there is no madvise(MADV_HUGEPAGE) (the
// engine's weights are on ordinary pages there too).
func alloc(size int64) (buf []uint64, free func(), err error) {
	return make([]uint64, size/8), func() {}, nil
}
