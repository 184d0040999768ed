package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/moderuntime/mode/runtime/manifest"
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
	// ranged marks a span no hash covers (a shard of an hf: repository):
	// sha256 is then a key made from its URL, which names the commit, and
	// its offset and length, and the stored entry carries the bytes'
	// own sha256 after them, so a damaged entry is still refetched.
	ranged bool
	// nostore marks a span counted but not kept: an hf: shard kept
	// converted instead (convertedStore).
	nostore bool
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
	// reporting serialises progress calls: the ranges of one shard are
	// read together (shard.Fetcher), and the session's reply callback is
	// not for concurrent use.
	reporting sync.Mutex
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
	store blobStore // nil: no persistence
	// shards, if set, is the store over store made already (it keeps the
	// hf: index too); nil: the source makes its own.
	shards *shardStore
	budget int64 // bytes; 0: a share of the quota
	// ranges keeps spans no hash covers (an hf: repository's), keyed by
	// URL and range: only when the URLs name a commit.
	ranges bool
	// converted keeps an hf: repository's shards converted rather than
	// as fetched: their spans are counted but not stored.
	converted bool
	// keep are more keys never evicted: a convertedStore's up-front ones.
	keep     []string
	estimate estimateFunc
}

func newCachingSource(src shard.Source, o storeOptions, m *manifest.Manifest, logf func(string, ...any)) *cachingSource {
	c := &cachingSource{src: src, spans: map[span]content{}, logf: logf}
	for _, s := range m.Shards {
		if s.Unverified {
			if !o.ranges && !o.converted {
				continue
			}
			for _, r := range runs(s.Pieces) {
				c.spans[span{r.File, r.Offset, r.Length}] = content{sha256: rangeKey(r), upfront: s.Kind != manifest.KindExpert, ranged: true, nostore: o.converted}
			}
			continue
		}
		if len(s.Pieces) != 1 {
			continue // spread over several files: nothing one read could check
		}
		p := s.Pieces[0]
		c.spans[span{p.File, p.Offset, p.Length}] = content{sha256: s.SHA256, upfront: s.Kind != manifest.KindExpert}
	}
	t := m.Tokenizer
	c.spans[span{t.File, 0, t.Size}] = content{sha256: t.SHA256, upfront: true}
	if t.Config != "" {
		c.spans[span{t.Config, 0, t.ConfigSize}] = content{sha256: t.ConfigSHA256, upfront: true}
	}
	if o.store != nil {
		keep := map[string]bool{}
		for _, k := range o.keep {
			keep[k] = true
		}
		for _, ct := range c.spans {
			if ct.upfront {
				keep[ct.sha256] = true
			}
		}
		if o.shards != nil {
			for k := range keep {
				o.shards.keep[k] = true
			}
			c.store = o.shards
		} else {
			c.store = newShardStore(o.store, o.budget, o.estimate, keep, logf)
		}
	}
	c.st.Start = time.Now()
	return c
}

func (c *cachingSource) Read(ctx context.Context, file string, off, n int64) ([]byte, error) {
	// Whole-file reads (n < 0) come from the manifest, which is never cached.
	ct, known := c.spans[span{file, off, n}]
	store := c.store
	if ct.nostore {
		store = nil
	}
	if known && store != nil {
		b, ok, err := c.store.get(ctx, ct.sha256, !ct.upfront)
		if ok && ct.ranged {
			b, ok = unseal(b, n)
			if !ok {
				c.store.forget(ct.sha256)
				c.logf("storage: %s bytes %d+%d are damaged; fetching them again", file, off, n)
			}
		}
		switch {
		case err != nil:
			c.logf("storage: reading %s: %v", file, err)
		case ok && ct.ranged:
			c.count(ct, int64(len(b)), true, true)
			return b, nil
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
	if known && store != nil && ct.ranged {
		if _, err := c.store.put(ctx, ct.sha256, seal(b), !ct.upfront); err != nil {
			c.logf("storage: keeping %s bytes %d+%d: %v", file, off, n, err)
		}
	} else if known && store != nil && hashOf(b) == ct.sha256 {
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
	report := c.progress
	c.mu.Unlock()
	if report != nil && ct.upfront && known {
		c.reporting.Lock()
		defer c.reporting.Unlock()
		c.mu.Lock()
		st := c.st // the latest, so reports never go backwards
		c.mu.Unlock()
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

// rangeKey names a byte range no hash covers by its URL (which names the
// commit), offset and length.
func rangeKey(r manifest.Piece) string {
	return hashOf(fmt.Appendf(nil, "range\x00%s\x00%d\x00%d", r.File, r.Offset, r.Length))
}

// shardStored reports whether the persistent store holds shard s as
// fetched: by its hash, or for a shard no hash covers, every range of it.
func (c *cachingSource) shardStored(s *manifest.Shard) bool {
	if !s.Unverified {
		return c.stored(s.SHA256)
	}
	rs := runs(s.Pieces)
	for _, r := range rs {
		if !c.stored(rangeKey(r)) {
			return false
		}
	}
	return len(rs) > 0
}

// stored reports whether the persistent store holds the shard of hash sum.
func (c *cachingSource) stored(sum string) bool {
	return c.store != nil && c.store.holds(sum)
}

func (c *cachingSource) onProgress(f func(sourceStats)) {
	c.mu.Lock()
	c.progress = f
	c.mu.Unlock()
}

// ReadsURLs says the source reads pieces at absolute URLs itself (a
// Fetcher then sends them here, through the cache, rather than to a
// source of its own), which it does when the source it wraps does.
func (c *cachingSource) ReadsURLs() bool {
	switch s := c.src.(type) {
	case *shard.HTTP:
		return true
	case shard.URLReader:
		return s.ReadsURLs()
	}
	return false
}

// runs merges pieces that continue one another in a file, as a Fetcher
// does, so that each span is what one read asks for.
func runs(ps []manifest.Piece) []manifest.Piece {
	var out []manifest.Piece
	for _, p := range ps {
		if p.Length == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].File == p.File && out[n-1].Offset+out[n-1].Length == p.Offset {
			out[n-1].Length += p.Length
			continue
		}
		out = append(out, p)
	}
	return out
}

// seal appends the bytes' sha256, for spans no manifest hash covers.
func seal(b []byte) []byte {
	s := sha256.Sum256(b)
	return append(append(make([]byte, 0, len(b)+len(s)), b...), s[:]...)
}

// unseal returns the n bytes a sealed entry holds, if they still hash to
// the sum after them.
func unseal(e []byte, n int64) ([]byte, bool) {
	if int64(len(e)) != n+sha256.Size {
		return nil, false
	}
	b := e[:n]
	s := sha256.Sum256(b)
	return b, bytes.Equal(s[:], e[n:])
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

// expertBytes is the size of all routed experts' shards.
func expertBytes(m *manifest.Manifest) int64 {
	var n int64
	for _, s := range m.Shards {
		if s.Kind == manifest.KindExpert {
			n += s.Size
		}
	}
	return n
}
