//go:build wasip1

package shard

import (
	"crypto/sha256"
	"unsafe"
)

// sha256 of the n bytes at p, written to out (32 bytes), by the host:
// natively, where the guest's pure-Go SHA-256 ran at a small fraction of
// the host's speed (41% of a profiled `mode bench --wasm` of an
// OLMoE-shaped pack went to hashing its shards). The guest still checks
// the bytes it holds; it trusts the host no more than for those bytes.
//
//go:wasmimport mode sha256
func hostSHA256(p unsafe.Pointer, n int32, out unsafe.Pointer)

func sum256(b []byte) (sum [sha256.Size]byte) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	if len(b) > 1<<31-1 {
		return sha256.Sum256(b) // past what one call can say
	}
	hostSHA256(p, int32(len(b)), unsafe.Pointer(&sum[0]))
	return sum
}
