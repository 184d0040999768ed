package shard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/moderuntime/mode/runtime/manifest"
)

// Fetch reads all pieces of shard s from src and checks the total size and
// the sha256. On a mismatch it fetches once more, since a proxy or a flaky
// link may have corrupted the bytes, then fails naming the shard and both
// hashes. Pieces at absolute http(s) URLs are read by src when it is an
// *HTTP and otherwise by an HTTP source with default options made for this
// call; use a Fetcher to choose those options or share that source.
func Fetch(ctx context.Context, src Source, s *manifest.Shard) ([]byte, error) {
	f := Fetcher{Src: src}
	return f.Fetch(ctx, s)
}

// Fetcher fetches shards like Fetch. Pieces whose File is an absolute
// http(s) URL go to Src when it is an *HTTP, so they share its connection
// limit and stats, and otherwise to an HTTP source made on first use with
// the options HTTP and reused after. Other pieces go to Src.
//
// A Fetcher is safe for concurrent use; it must not be copied after first
// use.
type Fetcher struct {
	Src  Source
	HTTP HTTPOptions

	once   sync.Once
	remote *HTTP // for URL pieces when Src is not an *HTTP
	err    error // from making remote
}

// Fetch returns the verified bytes of shard s.
func (f *Fetcher) Fetch(ctx context.Context, s *manifest.Shard) ([]byte, error) {
	if s == nil {
		return nil, errors.New("fetch: nil shard")
	}
	want, err := checkShard(s)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		b, err := f.read(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", s.ID, err)
		}
		if s.Unverified {
			// Each piece's length was checked as it arrived; there is no
			// hash to check it against.
			return b, nil
		}
		got := sum256(b)
		if bytes.Equal(got[:], want) {
			return b, nil
		}
		if attempt == 2 {
			return nil, fmt.Errorf("shard %s: sha256 mismatch after a refetch: manifest says %x, the bytes hash to %x", s.ID, want, got)
		}
		if f.HTTP.Logf != nil {
			f.HTTP.Logf("shard %s: sha256 %x, want %x; fetching again", s.ID, got, want)
		}
	}
}

// checkShard validates what Fetch relies on and returns the decoded hash.
// A parsed manifest has passed these checks already; a hand-made Shard may
// not have.
func checkShard(s *manifest.Shard) ([]byte, error) {
	want, err := hex.DecodeString(s.SHA256)
	if !s.Unverified && (err != nil || len(want) != sha256.Size) {
		return nil, fmt.Errorf("shard %s: sha256 %q is not 64 hex digits", s.ID, s.SHA256)
	}
	var total int64
	for i, p := range s.Pieces {
		if p.Offset < 0 || p.Length < 0 {
			return nil, fmt.Errorf("shard %s: piece %d (%s) has offset %d, length %d", s.ID, i, p.File, p.Offset, p.Length)
		}
		total += p.Length
	}
	if total != s.Size {
		return nil, fmt.Errorf("shard %s: pieces hold %d bytes, the size is %d", s.ID, total, s.Size)
	}
	return want, nil
}

// maxReserve is the most read reserves before a piece has arrived.
const maxReserve = 64 << 20

// maxRunsInFlight bounds the ranges of one shard read at once. An hf:
// expert whose tensors are slices of fused checkpoint tensors (Granite,
// gpt-oss) is 2 to 4 ranges that other experts' bytes separate: read
// together they cost one round trip, not one each. An HTTP source's own
// connection limit still applies.
const maxRunsInFlight = 4

// read concatenates the pieces of s.
func (f *Fetcher) read(ctx context.Context, s *manifest.Shard) ([]byte, error) {
	runs := mergePieces(s.Pieces)
	if len(runs) == 1 {
		// The common case, one file per shard: no copy.
		b, err := f.readPiece(ctx, runs[0])
		return b, tensorsErr(s, runs[0], err)
	}
	if int64(int(s.Size)) != s.Size {
		return nil, fmt.Errorf("%d bytes do not fit in memory on this platform", s.Size)
	}
	if s.Size <= maxReserve && len(runs) > 1 {
		return f.readRuns(ctx, s, runs)
	}
	// The size is the manifest's word: reserve at most a pack shard's
	// worth up front and let the rest grow with the bytes that arrive.
	out := make([]byte, 0, min(s.Size, maxReserve))
	for _, p := range runs {
		b, err := f.readPiece(ctx, p)
		if err != nil {
			return nil, tensorsErr(s, p, err)
		}
		out = append(out, b...)
	}
	return out, nil
}

// readRuns reads the runs of a shard of at most maxReserve bytes up to
// maxRunsInFlight at a time and concatenates them. Larger shards (an
// index's core, a whole embedding table) are read one run after another,
// so that their bytes are not held twice, and so is a shard of one run,
// which has nothing to overlap.
func (f *Fetcher) readRuns(ctx context.Context, s *manifest.Shard, runs []manifest.Piece) ([]byte, error) {
	// A failed range does not cancel the others: they are at most
	// maxReserve bytes, the requests made stay those a sequential read
	// makes, and the error reported is the first in shard order.
	bufs := make([][]byte, len(runs))
	errs := make([]error, len(runs))
	sem := make(chan struct{}, maxRunsInFlight)
	var wg sync.WaitGroup
	for i, p := range runs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			bufs[i], errs[i] = f.readPiece(ctx, p)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, tensorsErr(s, runs[i], err)
		}
	}
	out := make([]byte, 0, s.Size)
	for _, b := range bufs {
		out = append(out, b...)
	}
	return out, nil
}

func (f *Fetcher) readPiece(ctx context.Context, p manifest.Piece) ([]byte, error) {
	src, err := f.source(p.File)
	if err != nil {
		return nil, err
	}
	b, err := src.Read(ctx, p.File, p.Offset, p.Length)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != p.Length {
		return nil, fmt.Errorf("%s: read %d bytes at offset %d, want %d", p.File, len(b), p.Offset, p.Length)
	}
	return b, nil
}

// tensorsErr names, in a failed read of run, the tensors whose bytes it
// held, when s lays out one tensor per piece (as a manifest indexing
// safetensors files does): a range of a big file is better told by its
// tensors than by its offsets.
func tensorsErr(s *manifest.Shard, run manifest.Piece, err error) error {
	if err == nil || len(s.Pieces) != len(s.Tensors) {
		return err
	}
	var names []string
	for i, p := range s.Pieces {
		if p.File == run.File && p.Offset >= run.Offset && p.Offset+p.Length <= run.Offset+run.Length && p.Length > 0 {
			names = append(names, s.Tensors[i].Name)
		}
	}
	switch {
	case len(names) == 0:
		return err
	case len(names) > 4:
		names = append(names[:3], fmt.Sprintf("%d more", len(names)-3))
	}
	return fmt.Errorf("tensor %s (bytes %d-%d of %s): %w", strings.Join(names, ", "), run.Offset, run.Offset+run.Length-1, path.Base(run.File), err)
}

// URLReader is a Source that also reads absolute http(s) URLs itself, as
// the wasip1 host source does (the host fetches them).
type URLReader interface {
	ReadsURLs() bool
}

// source picks the Source for a piece's file.
func (f *Fetcher) source(file string) (Source, error) {
	if !isURL(file) {
		if f.Src == nil {
			return nil, fmt.Errorf("%s: the Fetcher has no Source", file)
		}
		return f.Src, nil
	}
	if h, ok := f.Src.(*HTTP); ok {
		return h, nil
	}
	if u, ok := f.Src.(URLReader); ok && u.ReadsURLs() {
		return f.Src, nil
	}
	f.once.Do(func() { f.remote, f.err = newHTTP(nil, f.HTTP) })
	if f.err != nil {
		return nil, f.err
	}
	return f.remote, nil
}

// mergePieces joins pieces that continue one another in the same file, as
// those of a manifest indexing a safetensors file do, so that one request
// fetches them all. Empty pieces are dropped.
func mergePieces(ps []manifest.Piece) []manifest.Piece {
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
