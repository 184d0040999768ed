//go:build !wasip1

package shard

import "crypto/sha256"

func sum256(b []byte) [sha256.Size]byte { return sha256.Sum256(b) }
