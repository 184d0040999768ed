package main

import (
	"context"
	"crypto/sha256"

	"github.com/moderuntime/mode/modelpack/hfrepo"
)

// keptIndexes keeps hf: repositories' indexes (hfrepo.Keeper) in the
// shard store, so that a reload of a commit already indexed reads no file
// of the repository (a branch: only config.json, for the commit). An
// entry is sealed with its sha256 like a range entry and counts against
// the storage budget; it is never evicted, like the up-front shards the
// same visits need (an index is a few megabytes at most: the tokenizer
// and the safetensors headers). What it holds is checked twice: the seal
// against damage, then hfrepo replays it through the checks network
// bytes go through.
type keptIndexes struct {
	s    *shardStore
	logf func(format string, args ...any)
}

var _ hfrepo.Keeper = keptIndexes{}

// id is the store's key for an index key.
func (k keptIndexes) id(key string) string { return hashOf([]byte("hf index\x00" + key)) }

func (k keptIndexes) Get(ctx context.Context, key string) ([]byte, bool) {
	id := k.id(key)
	e, ok, err := k.s.get(ctx, id, false)
	if err != nil {
		k.logf("storage: reading a kept hf: index: %v", err)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	b, ok := unseal(e, int64(len(e)-sha256.Size))
	if !ok {
		k.logf("storage: a kept hf: index is damaged (%d bytes); indexing the repository again", len(e))
		k.s.drop(ctx, id)
		return nil, false
	}
	return b, true
}

func (k keptIndexes) Put(ctx context.Context, key string, b []byte) {
	if _, err := k.s.put(ctx, k.id(key), seal(b), false); err != nil {
		k.logf("storage: keeping an hf: index: %v", err)
	}
}

func (k keptIndexes) Drop(ctx context.Context, key string) { k.s.drop(ctx, k.id(key)) }
