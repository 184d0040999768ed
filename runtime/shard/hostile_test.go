package shard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moderuntime/mode/internal/cputime"
	"github.com/moderuntime/mode/runtime/manifest"
)

// allocDuring reports the bytes allocated while f ran.
func allocDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHTTPDeclaredSizeIsNotAllocated: a manifest claiming a 2^40-byte
// shard, served by a server whose headers agree and which then sends a
// few bytes, costs what arrives, not what was declared (it was a fatal
// out-of-memory).
func TestHTTPDeclaredSizeIsNotAllocated(t *testing.T) {
	const declared = int64(1) << 40
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != fmt.Sprintf("bytes=0-%d", declared-1) {
			http.NotFound(w, r) // the resume: give up
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", declared-1, declared))
		w.Header().Set("Content-Length", strconv.FormatInt(declared, 10))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(make([]byte, 1000))
	}))
	defer srv.Close()
	h, err := NewHTTP(srv.URL+"/", HTTPOptions{Client: srv.Client(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	var rerr error
	alloc := allocDuring(func() { _, rerr = h.Read(t.Context(), "core", 0, declared) })
	if rerr == nil || !strings.Contains(rerr.Error(), "file missing") {
		t.Fatalf("error %v, want the resume's 404", rerr)
	}
	if alloc > 8<<20 {
		t.Errorf("allocated %d bytes for 1000 that arrived", alloc)
	}
}

// TestReadManifestBounded: a manifest body is read to at most
// manifest.MaxSize+1 bytes, whether the server announces more or sends
// an endless body; the bound was checked only after the whole read.
func TestReadManifestBounded(t *testing.T) {
	endless := func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte(" "), 1<<20)
		for range 4 * manifest.MaxSize >> 20 { // endless, as far as the client should see
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	announced := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(1<<40, 10))
		w.WriteHeader(http.StatusOK)
	}
	for _, tt := range []struct {
		name     string
		handler  http.HandlerFunc
		maxAlloc uint64
	}{
		{"endless body", endless, 4 * manifest.MaxSize},
		{"announced 1 TiB", announced, 1 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			var err error
			start := cputime.Now()
			alloc := allocDuring(func() {
				_, _, err = ReadManifest(t.Context(), srv.URL+"/pack/manifest.json", HTTPOptions{Client: srv.Client(), Retries: -1})
			})
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than the %d bytes accepted", manifest.MaxSize)) &&
				!strings.Contains(err.Error(), fmt.Sprintf("more than the %d accepted", manifest.MaxSize)) {
				t.Fatalf("error %v, want one saying the manifest is too large", err)
			}
			if alloc > tt.maxAlloc {
				t.Errorf("allocated %d bytes, want at most %d", alloc, tt.maxAlloc)
			}
			// CPU time, not wall time: a loaded machine must not fail it.
			if d := cputime.Now() - start; d > cputime.Budget(10*time.Second) {
				t.Errorf("took %v of CPU time", d)
			}
		})
	}
}

// TestReadManifestLocalBounded: a local manifest is checked by its size
// before it is read, so a 5 GiB sparse file or a device costs nothing.
func TestReadManifestLocalBounded(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5 << 30); err != nil {
		t.Skipf("cannot make a sparse file here: %v", err)
	}
	f.Close()
	var rerr error
	alloc := allocDuring(func() { _, _, rerr = ReadManifest(t.Context(), dir, HTTPOptions{}) })
	if rerr == nil || !strings.Contains(rerr.Error(), "5368709120 bytes, more than the 67108864 accepted") {
		t.Fatalf("error %v, want the size refused", rerr)
	}
	if alloc > 1<<20 {
		t.Errorf("allocated %d bytes", alloc)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		_, _, err := ReadManifest(t.Context(), "/dev/zero", HTTPOptions{})
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("/dev/zero: error %v, want it refused", err)
		}
	}
}

// TestReadManifestPin: a location may pin the manifest's sha256; the bytes
// must match it.
func TestReadManifestPin(t *testing.T) {
	body := []byte(`{"format":"mode-pack"}`)
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])
	bad := strings.Repeat("0", 64)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, map[string][]byte{"pack/manifest.json": body})
	for _, tt := range []struct {
		loc, want string
	}{
		{srv.url("pack/manifest.json#sha256=" + good), ""},
		{srv.url("pack/#sha256=" + strings.ToUpper(good)), ""},
		{srv.url("pack/manifest.json"), ""},
		{dir + "#sha256=" + good, ""},
		{filepath.Join(dir, "manifest.json") + "#sha256=" + good, ""},
		{srv.url("pack/manifest.json#sha256=" + bad), "but the location pins " + bad},
		{dir + "#sha256=" + bad, "but the location pins"},
		{srv.url("pack/#sha256=abc"), `the pinned sha256 "abc" is not 64 hex digits`},
		{"#sha256=" + good, "a pin without a location"},
	} {
		src, b, err := ReadManifest(t.Context(), tt.loc, HTTPOptions{Client: srv.Client(), Retries: -1})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.loc, err)
		case tt.want == "" && (!bytes.Equal(b, body) || src == nil):
			t.Errorf("%s: read %q", tt.loc, b)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want %q", tt.loc, err, tt.want)
		}
	}
}

// FuzzHTTPResponse feeds the client answers a hostile server might give
// (any status, Content-Range, Content-Length and body) through an
// in-process transport. Whatever comes back must be exactly the bytes
// asked for, taken from the body, and no read may hold more than the body
// plus its bound.
func FuzzHTTPResponse(f *testing.F) {
	f.Add(206, "bytes 0-9/10", int64(10), []byte("0123456789"), int64(0), int64(10), false)
	f.Add(200, "", int64(-1), []byte("0123456789"), int64(3), int64(4), false)
	f.Add(206, "bytes 0-1099511627775/1099511627776", int64(1)<<40, []byte("x"), int64(0), int64(1)<<40, false)
	f.Add(200, "", int64(1)<<40, []byte("{}"), int64(0), int64(-1), true)
	f.Add(206, "bytes 5-9/*", int64(5), []byte("56789"), int64(5), int64(-1), false)
	f.Add(416, "bytes */3", int64(0), []byte(""), int64(4), int64(1), false)
	f.Fuzz(func(t *testing.T, status int, contentRange string, contentLength int64, body []byte, off, n int64, whole bool) {
		if status < 100 || status > 999 {
			return
		}
		calls := 0
		rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls++
			if calls > 3 {
				return nil, io.ErrUnexpectedEOF // let a resume loop end
			}
			h := http.Header{}
			if contentRange != "" {
				h.Set("Content-Range", contentRange)
			}
			return &http.Response{StatusCode: status, Status: strconv.Itoa(status), Header: h,
				ContentLength: contentLength, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
		})
		h, err := NewHTTP("http://fuzz.invalid/", HTTPOptions{Client: &http.Client{Transport: rt}, Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		const limit = 64
		var b []byte
		if whole {
			b, err = ReadFile(t.Context(), h, "f", limit)
		} else {
			b, err = h.Read(t.Context(), "f", off, n)
		}
		if err != nil {
			return
		}
		switch {
		case whole && len(b) > limit:
			t.Fatalf("ReadFile returned %d bytes, over its limit %d", len(b), limit)
		case !whole && n >= 0 && int64(len(b)) != n:
			t.Fatalf("asked for %d bytes, got %d", n, len(b))
		case len(b) > 3*len(body):
			t.Fatalf("got %d bytes from %d-byte bodies", len(b), len(body))
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestFetchDeclaredSizeIsNotReserved: a shard of several pieces whose
// manifest claims gigabytes costs what arrives.
func TestFetchDeclaredSizeIsNotReserved(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	defer srv.Close()
	h, err := NewHTTP(srv.URL+"/", HTTPOptions{Client: srv.Client(), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	const piece = int64(manifest.MaxShardSize / 2)
	s := &manifest.Shard{ID: "core", SHA256: strings.Repeat("0", 64), Size: 2 * piece,
		Pieces: []manifest.Piece{{File: "a", Length: piece}, {File: "b", Length: piece}}}
	var ferr error
	alloc := allocDuring(func() { _, ferr = Fetch(t.Context(), h, s) })
	if ferr == nil || !strings.Contains(ferr.Error(), "file missing") {
		t.Fatalf("error %v, want the 404", ferr)
	}
	if alloc > 2*maxReserve {
		t.Errorf("allocated %d bytes before any arrived", alloc)
	}
}

// TestHTTPTrickleEnds: a server that answers every request with a few
// bytes and a cut connection cannot keep a read resuming forever.
func TestHTTPTrickleEnds(t *testing.T) {
	const size = 1 << 20
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		var first int64
		fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &first)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, size-1, size))
		w.Header().Set("Content-Length", strconv.FormatInt(size-first, 10))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(make([]byte, 10))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cut the connection
	}))
	defer srv.Close()
	h, err := NewHTTP(srv.URL+"/", HTTPOptions{Client: srv.Client(), Retries: 2, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Read(t.Context(), "f", 0, size)
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("error %v, want the read to give up", err)
	}
	if want := int64(maxFreeResumes + 3); requests.Load() != want {
		t.Errorf("%d requests, want %d", requests.Load(), want)
	}
}
