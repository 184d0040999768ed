package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/moderuntime/mode/modelpack/manifest"
	"github.com/moderuntime/mode/runtime/shard"
)

// span is a byte range of a file as a Source is asked for it.
type span struct {
	file      string
	off, size int64
}

// content is what the manifest says a span holds.
type content struct {
	sha256  string // hex
	upfront bool   // loaded before the first token (core, layer, tokenizer)
}

// cachingSource is a shard.Source that keeps what it reads in a blobStore
// keyed by content hash, so a second visit (or a second pack sharing a
// shard) downloads nothing. Only spans the manifest names with a hash are
// kept: a whole single-piece shard or a tokenizer file. Their bytes are
// checked against the hash before they are stored and after they are read
// back, so a damaged cache entry is refetched, never used.
//
// The store keeps within a storage budget by evicting cold expert shards
// (see shardStore). It also counts traffic and reports load progress for
// up-front spans.
type cachingSource struct {
	src   shard.Source
	store *shardStore // nil: no persistence
	spans map[span]content
	logf  func(format string, args ...any)

	mu       sync.Mutex
	st       sourceStats
	progress func(sourceStats)
}

// sourceStats counts what a cachingSource did.
type sourceStats struct {
	NetBytes, CacheBytes int64
	Hits, Misses         int // cache lookups of hashed spans
	UpfrontBytes         int64
	UpfrontShards        int
	UpfrontHits          int
	Start                time.Time
	Store                storeStats
}

// storeOptions say how a cachingSource persists shards.
type storeOptions struct {
	store    blobStore // nil: no persistence
	budget   int64     // bytes; 0: a share of the quota
	estimate estimateFunc
}

func newCachingSource(src shard.Source, o storeOptions, m *manifest.Manifest, logf func(string, ...any)) *cachingSource {
	c := &cachingSource{src: src, spans: map[span]content{}, logf: logf}
	for _, s := range m.Shards {
		if len(s.Pieces) != 1 {
			continue // spread over several files: nothing one read could check
		}
		p := s.Pieces[0]
		c.spans[span{p.File, p.Offset, p.Length}] = content{s.SHA256, s.Kind != manifest.KindExpert}
	}
	t := m.Tokenizer
	c.spans[span{t.File, 0, t.Size}] = content{t.SHA256, true}
	if t.Config != "" {
		c.spans[span{t.Config, 0, t.ConfigSize}] = content{t.ConfigSHA256, true}
	}
	if o.store != nil {
		keep := map[string]bool{}
		for _, ct := range c.spans {
			if ct.upfront {
				keep[ct.sha256] = true
			}
		}
		c.store = newShardStore(o.store, o.budget, o.estimate, keep, logf)
	}
	c.st.Start = time.Now()
	return c
}

func (c *cachingSource) Read(ctx context.Context, file string, off, n int64) ([]byte, error) {
	// Whole-file reads (n < 0) come from the manifest, which is never cached.
	ct, known := c.spans[span{file, off, n}]
	if known && c.store != nil {
		b, ok, err := c.store.get(ctx, ct.sha256, !ct.upfront)
		switch {
		case err != nil:
			c.logf("storage: reading %s: %v", file, err)
		case ok && hashOf(b) == ct.sha256:
			c.count(ct, int64(len(b)), true, true)
			return b, nil
		case ok:
			c.store.forget(ct.sha256)
			c.logf("storage: %s is damaged; fetching it again", file)
		}
	}
	b, err := c.src.Read(ctx, file, off, n)
	if err != nil {
		return nil, err
	}
	c.count(ct, int64(len(b)), known, false)
	if known && c.store != nil && hashOf(b) == ct.sha256 {
		// A full quota or a private window must not stop the model
		// from loading: persistence is an optimisation.
		if _, err := c.store.put(ctx, ct.sha256, b, !ct.upfront); err != nil {
			c.logf("storage: keeping %s: %v", file, err)
		}
	}
	return b, nil
}

func (c *cachingSource) count(ct content, n int64, known, hit bool) {
	c.mu.Lock()
	if hit {
		c.st.CacheBytes += n
		c.st.Hits++
	} else {
		c.st.NetBytes += n
		if known && c.store != nil {
			c.st.Misses++
		}
	}
	if ct.upfront && known {
		c.st.UpfrontBytes += n
		c.st.UpfrontShards++
		if hit {
			c.st.UpfrontHits++
		}
	}
	st, report := c.st, c.progress
	c.mu.Unlock()
	if report != nil && ct.upfront && known {
		report(st)
	}
}

func (c *cachingSource) stats() sourceStats {
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	if c.store != nil {
		st.Store = c.store.stats()
	}
	return st
}

func (c *cachingSource) onProgress(f func(sourceStats)) {
	c.mu.Lock()
	c.progress = f
	c.mu.Unlock()
}

func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// upfront returns the bytes and the number of spans loaded before the first
// token: core and layer shards and the tokenizer files.
func upfront(m *manifest.Manifest) (bytes int64, n int) {
	for _, s := range m.Shards {
		if s.Kind != manifest.KindExpert {
			bytes += s.Size
			n++
		}
	}
	bytes += m.Tokenizer.Size
	n++
	if m.Tokenizer.Config != "" {
		bytes += m.Tokenizer.ConfigSize
		n++
	}
	return bytes, n
}
