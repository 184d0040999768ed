//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"
)

// Delete drops an entry from Cache Storage, so the shard store can evict.
func (c *cacheStorage) Delete(ctx context.Context, key string) error {
	cache, err := c.open(ctx)
	if err != nil {
		return err
	}
	if _, err := await(ctx, cache.Call("delete", key)); err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// platformEstimate returns navigator.storage.estimate as an estimateFunc,
// or nil where the browser has none.
func platformEstimate() estimateFunc {
	st := js.Global().Get("navigator").Get("storage")
	if !st.Truthy() || !st.Get("estimate").Truthy() {
		return nil
	}
	return func(ctx context.Context) (usage, quota int64, err error) {
		v, err := await(ctx, st.Call("estimate"))
		if err != nil {
			return 0, 0, fmt.Errorf("navigator.storage.estimate: %w", err)
		}
		if !v.Get("quota").Truthy() {
			return 0, 0, errors.New("navigator.storage.estimate gave no quota")
		}
		return int64(v.Get("usage").Float()), int64(v.Get("quota").Float()), nil
	}
}
