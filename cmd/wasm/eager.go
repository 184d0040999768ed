package main

import (
	"context"
	"sync"

	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/shard"
)

// eagerFetches is how many shards an eager load downloads at once: a
// browser opens at most six HTTP/1.1 connections to one host anyway.
const eagerFetches = 6

// memSource serves the spans it holds from memory and reads the rest
// from src.
type memSource struct {
	src shard.Source

	mu sync.Mutex
	m  map[span][]byte
	// handOver makes a read give its span away: the reader keeps the
	// bytes and a later read of it goes to src.
	handOver bool
}

// handOverReads makes every later read give its span away. With expert
// peers the engine replaces each routed expert's matrices by its share of
// them, so a span kept here would hold the whole expert beside its share
// for as long as the model is loaded: more memory than one worker takes.
// An expert evicted and needed again is then read from src.
func (s *memSource) handOverReads() {
	s.mu.Lock()
	s.handOver = true
	s.mu.Unlock()
}

func (s *memSource) Read(ctx context.Context, file string, off, n int64) ([]byte, error) {
	s.mu.Lock()
	b, ok := s.m[span{file, off, n}]
	if ok && s.handOver {
		delete(s.m, span{file, off, n})
	}
	s.mu.Unlock()
	if ok {
		return b, nil
	}
	return s.src.Read(ctx, file, off, n)
}

// downloadAll fetches every shard of m from src, checked against its hash,
// and returns a source that serves them from memory: the "download the
// whole pack first" way of loading. Only single-piece shards (all of a
// pack's, as modelpack writes them) are kept, since a read of exactly
// that piece is what the loader will ask for; any other is read again.
func downloadAll(ctx context.Context, src shard.Source, m *manifest.Manifest, o shard.HTTPOptions) (shard.Source, error) {
	mem := &memSource{src: src, m: map[span][]byte{}}
	f := &shard.Fetcher{Src: src, HTTP: o}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *manifest.Shard)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range eagerFetches {
		wg.Go(func() {
			for s := range work {
				b, err := f.Fetch(ctx, s)
				if err != nil {
					once.Do(func() { first = err; cancel() })
					continue
				}
				if len(s.Pieces) == 1 {
					p := s.Pieces[0]
					mem.mu.Lock()
					mem.m[span{p.File, p.Offset, p.Length}] = b
					mem.mu.Unlock()
				}
			}
		})
	}
	for i := range m.Shards {
		select {
		case work <- &m.Shards[i]:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return mem, ctx.Err()
}

// packBytes is the size of every shard of m.
func packBytes(m *manifest.Manifest) int64 {
	var n int64
	for _, s := range m.Shards {
		n += s.Size
	}
	return n
}
