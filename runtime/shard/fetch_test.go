package shard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moderuntime/mode/runtime/manifest"
)

func piece(file string, off, n int64) manifest.Piece {
	return manifest.Piece{File: file, Offset: off, Length: n}
}

// shardOf is a shard whose bytes are data, found at pieces.
func shardOf(id string, data []byte, pieces ...manifest.Piece) *manifest.Shard {
	sum := sha256.Sum256(data)
	return &manifest.Shard{ID: id, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Pieces: pieces}
}

func TestFetchHTTP(t *testing.T) {
	a, b := testData(6000, 10), testData(3000, 11)
	whole := shardOf("core", a, piece("a.bin", 0, 6000))
	// Three pieces: two that continue each other in a.bin (one request)
	// and one in b.bin.
	multi := shardOf("layer.3", bytes.Join([][]byte{a[100:1100], a[1100:1600], b[50:2050]}, nil),
		piece("a.bin", 100, 1000), piece("a.bin", 1100, 500), piece("b.bin", 50, 2000))
	tests := []struct {
		name     string
		setup    func(s *testServer)
		shard    *manifest.Shard
		wantErr  string
		wantReqs int
	}{
		{name: "one piece", shard: whole, wantReqs: 1},
		{name: "multi-piece", shard: multi, wantReqs: 2},
		{name: "empty", shard: shardOf("empty", nil), wantReqs: 0},
		{name: "corrupted once", shard: multi, wantReqs: 4,
			setup: func(s *testServer) { s.corrupt["b.bin"] = 1 }},
		{name: "corrupted always", shard: whole, wantReqs: 2,
			wantErr: fmt.Sprintf("shard core: sha256 mismatch after a refetch: manifest says %s, the bytes hash to ", whole.SHA256),
			setup:   func(s *testServer) { s.corrupt["a.bin"] = -1 }},
		{name: "cut and resumed", shard: whole, wantReqs: 2,
			setup: func(s *testServer) { s.cut["a.bin"] = 2500 }},
		{name: "missing file", shard: multi, wantReqs: 2,
			wantErr: "shard layer.3: GET " + "%URL%/b.bin: file missing at that URL (404 Not Found)",
			setup:   func(s *testServer) { delete(s.files, "b.bin") }},
		{name: "size disagrees with pieces", wantReqs: 0,
			shard:   &manifest.Shard{ID: "x", SHA256: whole.SHA256, Size: 5, Pieces: []manifest.Piece{piece("a.bin", 0, 6)}},
			wantErr: "shard x: pieces hold 6 bytes, the size is 5"},
		{name: "bad hash", wantReqs: 0,
			shard:   &manifest.Shard{ID: "x", SHA256: "abc", Size: 0},
			wantErr: `shard x: sha256 "abc" is not 64 hex digits`},
		{name: "escaping path", wantReqs: 0,
			shard:   shardOf("x", []byte{0}, piece("/etc/passwd", 0, 1)),
			wantErr: `shard x: GET "/etc/passwd": want a file name relative to`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, map[string][]byte{"a.bin": a, "b.bin": b})
			if tt.setup != nil {
				s.do(tt.setup)
			}
			h := testHTTP(t, s, HTTPOptions{})
			got, err := Fetch(t.Context(), h, tt.shard)
			if want := strings.ReplaceAll(tt.wantErr, "%URL%", s.URL); want != "" {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want one containing %q", err, want)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != tt.shard.SHA256 || int64(len(got)) != tt.shard.Size {
				t.Errorf("got %d bytes hashing to %x, want %d hashing to %s", len(got), sum, tt.shard.Size, tt.shard.SHA256)
			}
			if n := len(s.requests()); n != tt.wantReqs {
				t.Errorf("%d requests, want %d", n, tt.wantReqs)
			}
		})
	}
}

// A manifest made by `modelpack index` may point at files on another host:
// a Fetcher over a Dir reaches them with its own HTTP source.
func TestFetcherAbsoluteURL(t *testing.T) {
	local, remote := testData(300, 12), testData(5000, 13)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "local.bin"), local, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, map[string][]byte{"model.safetensors": remote})
	sh := shardOf("layer.0", append(bytes.Clone(local[:100]), remote[1000:3000]...),
		piece("local.bin", 0, 100), piece(s.url("model.safetensors"), 1000, 2000))

	if _, err := NewDir(dir).Read(t.Context(), s.url("model.safetensors"), 0, 1); err == nil || !strings.Contains(err.Error(), "needs an HTTP source") {
		t.Errorf("Dir read of a URL: error %v, want one saying it needs an HTTP source", err)
	}
	f := &Fetcher{Src: NewDir(dir), HTTP: HTTPOptions{Client: s.Client(), Logf: t.Logf}}
	for range 2 {
		got, err := f.Fetch(t.Context(), sh)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(got)) != sh.Size {
			t.Fatalf("got %d bytes, want %d", len(got), sh.Size)
		}
	}
	if f.remote == nil || f.remote.Stats().Requests != 2 {
		t.Errorf("the URL pieces did not go through one lazily made HTTP source")
	}
	// An HTTP Src reads URL pieces itself, sharing its limit and stats.
	h := testHTTP(t, s, HTTPOptions{})
	if _, err := Fetch(t.Context(), h, shardOf("r", remote[:10], piece(s.url("model.safetensors"), 0, 10))); err != nil {
		t.Fatal(err)
	}
	if n := h.Stats().Requests; n != 1 {
		t.Errorf("HTTP Src made %d requests for a URL piece, want 1", n)
	}
}

func TestMergePieces(t *testing.T) {
	tests := []struct {
		name string
		in   []manifest.Piece
		want []manifest.Piece
	}{
		{name: "none", in: nil, want: nil},
		{name: "contiguous", in: []manifest.Piece{piece("a", 0, 10), piece("a", 10, 5), piece("a", 15, 1)}, want: []manifest.Piece{piece("a", 0, 16)}},
		{name: "gap", in: []manifest.Piece{piece("a", 0, 10), piece("a", 11, 5)}, want: []manifest.Piece{piece("a", 0, 10), piece("a", 11, 5)}},
		{name: "other file", in: []manifest.Piece{piece("a", 0, 10), piece("b", 10, 5)}, want: []manifest.Piece{piece("a", 0, 10), piece("b", 10, 5)}},
		{name: "backwards", in: []manifest.Piece{piece("a", 10, 5), piece("a", 0, 10)}, want: []manifest.Piece{piece("a", 10, 5), piece("a", 0, 10)}},
		{name: "empty dropped", in: []manifest.Piece{piece("a", 0, 10), piece("b", 0, 0), piece("a", 10, 5)}, want: []manifest.Piece{piece("a", 0, 15)}},
	}
	for _, tt := range tests {
		if got := mergePieces(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestFetchNamesTensors: a failed read of a shard laid out one tensor per
// piece names the tensors of the range and the file.
func TestFetchNamesTensors(t *testing.T) {
	s := &manifest.Shard{ID: "layer.0.expert.1", Unverified: true, Size: 30,
		Tensors: []manifest.Tensor{{Name: "a", Length: 10}, {Name: "b", Offset: 10, Length: 20}},
		Pieces:  []manifest.Piece{piece("dir/m.safetensors", 100, 10), piece("dir/m.safetensors", 110, 20)}}
	_, err := Fetch(context.Background(), NewDir(t.TempDir()), s)
	if err == nil {
		t.Fatal("no error for a missing file")
	}
	for _, w := range []string{"layer.0.expert.1", "tensor a, b", "bytes 100-129 of m.safetensors"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// barrierSource answers a Read only once want Reads are in flight
// together, or fails after a while: reads made one after another fail.
type barrierSource struct {
	mu      sync.Mutex
	waiting int
	now     int // reads in flight
	most    int
	want    int
	all     chan struct{}
	data    []byte
	fail    map[int64]error // by offset
}

func (b *barrierSource) Read(ctx context.Context, file string, off, n int64) ([]byte, error) {
	if err := b.fail[off]; err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.waiting++
	b.now++
	b.most = max(b.most, b.now)
	if b.waiting == b.want {
		close(b.all)
	}
	b.mu.Unlock()
	defer func() { b.mu.Lock(); b.now--; b.mu.Unlock() }()
	select {
	case <-b.all:
		return b.data[off : off+n], nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(5 * time.Second):
		return nil, errors.New("the other ranges were not read at the same time")
	}
}

// TestFetchRunsTogether: the ranges of a shard that do not continue one
// another (an hf: expert's slices of fused tensors) are read at the same
// time, up to maxRunsInFlight, and concatenated in order; a failed range
// is reported by its tensors.
func TestFetchRunsTogether(t *testing.T) {
	data := testData(400, 3)
	for _, tt := range []struct {
		name   string
		pieces []manifest.Piece
		want   int // reads in flight together
		fail   int64
		err    string
	}{
		{"two", []manifest.Piece{piece("m", 0, 100), piece("m", 200, 50)}, 2, -1, ""},
		{"four", []manifest.Piece{piece("m", 300, 10), piece("m", 0, 100), piece("m", 200, 50), piece("m", 120, 30)}, 4, -1, ""},
		{"five, four at a time", []manifest.Piece{piece("m", 0, 10), piece("m", 20, 10), piece("m", 40, 10), piece("m", 60, 10), piece("m", 80, 10)}, 4, -1, ""},
		{"one fails", []manifest.Piece{piece("m", 0, 100), piece("m", 200, 50)}, 1, 200, "tensor b (bytes 200-249 of m): gone"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var want []byte
			s := &manifest.Shard{ID: "layer.0.expert.1", Unverified: true, Pieces: tt.pieces}
			for i, p := range tt.pieces {
				s.Tensors = append(s.Tensors, manifest.Tensor{Name: string(rune('a' + i)), Offset: s.Size, Length: p.Length})
				s.Size += p.Length
				want = append(want, data[p.Offset:p.Offset+p.Length]...)
			}
			src := &barrierSource{want: tt.want, all: make(chan struct{}), data: data, fail: map[int64]error{tt.fail: errors.New("gone")}}
			got, err := Fetch(context.Background(), src, s)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Error("bytes differ from the pieces' in order")
			}
			if src.most != tt.want {
				t.Errorf("%d reads in flight at most, want %d", src.most, tt.want)
			}
		})
	}
}
