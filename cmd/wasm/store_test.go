package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// delStore is a blobStore in memory that can delete, so it can evict.
type delStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *delStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[key]
	return b, ok, nil
}

func (s *delStore) Put(_ context.Context, key string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = b
	return nil
}

func (s *delStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *delStore) has(sum string) bool {
	_, ok, _ := s.Get(context.Background(), cacheKey(sum))
	return ok
}

func TestShardStoreEvictsColdExperts(t *testing.T) {
	ctx := context.Background()
	b := &delStore{m: map[string][]byte{}}
	keep := map[string]bool{"core": true, "layer": true}
	visit := func() *shardStore { return newShardStore(b, 100, nil, keep, t.Logf) }
	put := func(s *shardStore, sum string, n int, expert, want bool) {
		t.Helper()
		got, err := s.put(ctx, sum, make([]byte, n), expert)
		if err != nil || got != want {
			t.Fatalf("put %s: stored %v, %v; want %v", sum, got, err, want)
		}
	}
	stored := func(want string) {
		t.Helper()
		var got []string
		for _, sum := range []string{"core", "layer", "e1", "e2", "e3", "e4", "e5", "e6", "e7"} {
			if b.has(sum) {
				got = append(got, sum)
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("stored %q, want %q", got, want)
		}
	}
	// A budget of 100 bytes: core (40) is never evicted; experts of 20
	// bytes each. Within one visit nothing this visit used is evicted.
	s := visit()
	put(s, "core", 40, false, true)
	put(s, "e1", 20, true, true)
	put(s, "e2", 20, true, true)
	put(s, "e3", 20, true, true)
	put(s, "e4", 20, true, false)
	put(s, "layer", 20, false, false)
	if st := s.stats(); st.Evictions != 0 || st.Skipped != 2 || st.Bytes != 100 {
		t.Errorf("first visit stats %+v: want no evictions, 2 skipped, 100 bytes", st)
	}
	stored("core e1 e2 e3")

	// The next visit reads the index: it uses e1, so e2 and then e3, last
	// used in the earlier visit, make room; then nothing can.
	s = visit()
	if _, ok, _ := s.get(ctx, "e1", true); !ok {
		t.Fatal("e1 is not stored")
	}
	put(s, "e4", 20, true, true)
	put(s, "e5", 20, true, true)
	put(s, "e6", 20, true, false)
	put(s, "e7", 70, true, false) // could never fit: nothing is evicted for it
	if st := s.stats(); st.Evictions != 2 || st.Skipped != 2 || st.Bytes != 100 {
		t.Errorf("second visit stats %+v: want 2 evictions, 2 skipped, 100 bytes", st)
	}
	stored("core e1 e4 e5")
}

func TestShardStoreQuota(t *testing.T) {
	ctx := context.Background()
	b := &delStore{m: map[string][]byte{}}
	estimate := func(context.Context) (int64, int64, error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		var usage int64
		for k, v := range b.m {
			if strings.Contains(k, "sha256") {
				usage += int64(len(v))
			}
		}
		return usage, 100, nil // 80 bytes for shards
	}
	for visit, want := range []storeStats{{Skipped: 1, Bytes: 60}, {Evictions: 2, Skipped: 1, Bytes: 60}} {
		s := newShardStore(b, 0, estimate, nil, t.Logf)
		for i := range 3 {
			s.put(ctx, fmt.Sprint("v", visit, "e", i), make([]byte, 30), true)
		}
		if st := s.stats(); st != want {
			t.Errorf("visit %d: stats %+v, want %+v under 80%% of a 100-byte quota", visit, st, want)
		}
	}
}

func TestShardStoreWithoutDelete(t *testing.T) {
	ctx := context.Background()
	s := newShardStore(&mapStore{m: map[string][]byte{}}, 50, nil, nil, t.Logf)
	for i, want := range []bool{true, true, false} {
		if ok, _ := s.put(ctx, fmt.Sprint("e", i), make([]byte, 20), true); ok != want {
			t.Errorf("put e%d: %v, want %v", i, ok, want)
		}
	}
	if st := s.stats(); st.Evictions != 0 || st.Skipped != 1 {
		t.Errorf("stats %+v: a store that cannot delete skips rather than evicts", st)
	}
}
