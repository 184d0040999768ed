//go:build !linux

package shard

// adviseHugePages is a no-op where there is no madvise(MADV_HUGEPAGE).
func adviseHugePages([]byte) {}
