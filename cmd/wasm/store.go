package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// blobStore keeps byte strings under string keys across visits. In the
// browser it is Cache Storage or the Origin Private File System; tests use
// a map. Keys are URL paths (see cacheKey) because Cache Storage keys are
// requests; the OPFS backend maps them to files.
type blobStore interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Put(ctx context.Context, key string, b []byte) error
}

// deleter is a blobStore that can also drop an entry. A store without it
// never evicts: when it is full, new shards are simply not kept.
type deleter interface {
	Delete(ctx context.Context, key string) error
}

// estimateFunc reports the origin's storage usage and quota in bytes, as
// navigator.storage.estimate() does.
type estimateFunc func(ctx context.Context) (usage, quota int64, err error)

// quotaShare is the part of the origin's quota shards may fill when the
// page sets no storageBudgetMB: the rest stays for the page's own data and
// for the browser's rounding of usage.
const quotaShare = 0.8

// cacheKey names content in the store; it is a URL path because Cache
// Storage keys are requests.
func cacheKey(sum string) string { return "/__mode_cache__/sha256/" + sum }

// indexKey names the store's LRU index.
const indexKey = "/__mode_cache__/index.json"

// storeIndex records what the store holds and when each entry was last
// used. It lives in the store itself, so least-recently-used order
// survives visits. It is advisory: entries it does not know (written by an
// older version, or by another tab that saved its index last) are still
// read, but never counted or evicted until a hit adds them.
type storeIndex struct {
	Seq     int64                  `json:"seq"` // the last use stamp handed out
	Entries map[string]*indexEntry `json:"entries"`
}

type indexEntry struct {
	Size   int64 `json:"size"`
	Used   int64 `json:"used"`   // use stamp: larger is more recent
	Expert bool  `json:"expert"` // only expert shards are ever evicted
}

// shardStore keeps verified shards in a blobStore by content hash within a
// storage budget, evicting the least recently used expert shards to make
// room. Core and layer shards and tokenizer files are never evicted: every
// visit needs them before the first token, while experts are fetched only
// when routed to.
//
// Only experts last used in an earlier visit (an earlier shardStore) are
// evicted, never one this visit has read or stored: a visit reads its
// experts in much the same order every time, and plain LRU over that cycle
// would evict, on every visit, exactly the entries the visit is about to
// read, so a store smaller than one visit's experts would hold nothing
// useful. This way it keeps the first experts that fit and the next visit
// downloads only the rest; experts of other prompts age out across visits.
//
// When a shard cannot fit even after eviction it is not
// stored and the run goes on from the network: persistence is an
// optimisation, so a full disk never fails a load (there is no
// quota_exceeded error); storageSkipped in the stats says it happened.
type shardStore struct {
	b        blobStore
	budget   int64           // bytes the store's entries may take; 0: quotaShare of the quota
	estimate estimateFunc    // nil: the quota is unknown, only budget limits
	keep     map[string]bool // hashes never evicted: the loaded model's up-front spans
	logf     func(format string, args ...any)

	mu        sync.Mutex // guards the fields below; held across writes so evictions do not race
	idx       *storeIndex
	start     int64 // idx.Seq when this visit read the index: later stamps are this visit's
	saved     time.Time
	evictions int
	skipped   int
}

// saveEvery bounds how often a hit alone rewrites the index. Stores and
// evictions always save it; a hit whose save is skipped at the end of a
// visit only makes that shard look a little older.
const saveEvery = time.Second

func newShardStore(b blobStore, budget int64, estimate estimateFunc, keep map[string]bool, logf func(string, ...any)) *shardStore {
	return &shardStore{b: b, budget: budget, estimate: estimate, keep: keep, logf: logf}
}

// get returns the bytes stored for sum, if any. The caller checks them
// against the hash.
func (s *shardStore) get(ctx context.Context, sum string, expert bool) ([]byte, bool, error) {
	b, ok, err := s.b.Get(ctx, cacheKey(sum))
	if err != nil || !ok {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.index(ctx)
	e := idx.Entries[sum]
	if e == nil {
		e = &indexEntry{Size: int64(len(b)), Expert: expert}
		idx.Entries[sum] = e
	}
	idx.Seq++
	e.Used = idx.Seq
	if time.Since(s.saved) >= saveEvery {
		s.save(ctx)
	}
	return b, true, nil
}

// forget drops a damaged entry from the index; the caller refetches and
// stores the shard again.
func (s *shardStore) forget(sum string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idx != nil {
		delete(s.idx.Entries, sum)
	}
}

// drop deletes the entry for sum, when the store can delete, and forgets
// it.
func (s *shardStore) drop(ctx context.Context, sum string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.b.(deleter); ok {
		if err := d.Delete(ctx, cacheKey(sum)); err != nil {
			s.logf("storage: deleting %s: %v", sum, err)
		}
	}
	idx := s.index(ctx)
	if idx.Entries[sum] != nil {
		delete(idx.Entries, sum)
		s.save(ctx)
	}
}

// put stores b (whose hash is sum) if it fits in the budget, evicting cold
// expert shards to make room. It reports whether b was stored.
func (s *shardStore) put(ctx context.Context, sum string, b []byte, expert bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.index(ctx)
	size := int64(len(b))
	over, err := s.excess(ctx, idx, sum, size)
	if err != nil {
		s.logf("storage: estimating the quota: %v; storing without a quota check", err)
	}
	if _, canDelete := s.b.(deleter); over > 0 && (!canDelete || over > s.evictable(idx, sum)) {
		// Evicting would not make room: keep what is there.
		s.skipped++
		return false, nil
	}
	evicted := false
	for over > 0 {
		victim := s.coldest(idx, sum)
		if victim == "" {
			break
		}
		d, ok := s.b.(deleter)
		if !ok {
			break
		}
		if err := d.Delete(ctx, cacheKey(victim)); err != nil {
			s.logf("storage: evicting %s: %v", victim, err)
			break
		}
		over -= idx.Entries[victim].Size
		delete(idx.Entries, victim)
		s.evictions++
		evicted = true
	}
	if over > 0 {
		s.skipped++
		if evicted {
			s.save(ctx)
		}
		return false, nil
	}
	if err := s.b.Put(ctx, cacheKey(sum), b); err != nil {
		// A quota the estimate did not show, or a private window.
		s.skipped++
		if evicted {
			s.save(ctx)
		}
		return false, fmt.Errorf("storing %d bytes: %w", size, err)
	}
	idx.Seq++
	idx.Entries[sum] = &indexEntry{Size: size, Used: idx.Seq, Expert: expert}
	s.save(ctx)
	return true, nil
}

// excess returns how many bytes must be freed before size more bytes for
// sum fit, under the page's budget or, without one, under quotaShare of
// the origin's quota.
func (s *shardStore) excess(ctx context.Context, idx *storeIndex, sum string, size int64) (int64, error) {
	if s.budget > 0 {
		used := s.bytesLocked() - entrySize(idx, sum)
		return used + size - s.budget, nil
	}
	if s.estimate == nil {
		return 0, nil
	}
	usage, quota, err := s.estimate(ctx)
	if err != nil || quota <= 0 {
		return 0, err
	}
	return usage + size - int64(quotaShare*float64(quota)), nil
}

func entrySize(idx *storeIndex, sum string) int64 {
	if e := idx.Entries[sum]; e != nil {
		return e.Size
	}
	return 0
}

// evictable returns the bytes eviction could free for sum.
func (s *shardStore) evictable(idx *storeIndex, sum string) int64 {
	var n int64
	for k, e := range idx.Entries {
		if s.canEvict(k, e) && k != sum {
			n += e.Size
		}
	}
	return n
}

// canEvict says whether the entry for sum may make room: an expert shard
// of no loaded up-front span, not used in this visit.
func (s *shardStore) canEvict(sum string, e *indexEntry) bool {
	return e.Expert && !s.keep[sum] && e.Used <= s.start
}

// coldest returns the least recently used evictable entry other than
// except, or "" when there is none.
func (s *shardStore) coldest(idx *storeIndex, except string) string {
	best := ""
	for sum, e := range idx.Entries {
		if !s.canEvict(sum, e) || sum == except {
			continue
		}
		if best == "" || e.Used < idx.Entries[best].Used || e.Used == idx.Entries[best].Used && sum < best {
			best = sum
		}
	}
	return best
}

// index returns the index, reading it from the store on first use. A
// missing or unreadable index starts empty: it only orders evictions.
func (s *shardStore) index(ctx context.Context) *storeIndex {
	if s.idx != nil {
		return s.idx
	}
	s.idx = &storeIndex{Entries: map[string]*indexEntry{}}
	b, ok, err := s.b.Get(ctx, indexKey)
	switch {
	case err != nil:
		s.logf("storage: reading the index: %v; starting a new one", err)
	case ok:
		var idx storeIndex
		if err := json.Unmarshal(b, &idx); err != nil || idx.Entries == nil {
			s.logf("storage: the index is damaged (%v); starting a new one", err)
			break
		}
		s.idx = &idx
	}
	s.start = s.idx.Seq
	return s.idx
}

func (s *shardStore) save(ctx context.Context) {
	b, err := json.Marshal(s.idx)
	if err == nil {
		err = s.b.Put(ctx, indexKey, b)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.logf("storage: saving the index: %v", err)
	}
	s.saved = time.Now()
}

// holds reports whether the index knows sum: stored by this visit or an
// earlier one (the index is advisory, so a shard another tab stored may
// be missing from it).
func (s *shardStore) holds(sum string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idx != nil && s.idx.Entries[sum] != nil
}

// storeStats are the store's counters for the page.
type storeStats struct {
	Evictions, Skipped int
	Bytes              int64 // held by the entries the index knows
}

func (s *shardStore) stats() storeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return storeStats{Evictions: s.evictions, Skipped: s.skipped, Bytes: s.bytesLocked()}
}

func (s *shardStore) bytesLocked() int64 {
	if s.idx == nil {
		return 0
	}
	var n int64
	for _, e := range s.idx.Entries {
		n += e.Size
	}
	return n
}
