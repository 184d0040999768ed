package shard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer serves in-memory files with http.ServeContent, which answers
// Range, If-Range and If-None-Match as a real file server does, and injects
// the faults a test switches on. It records every request.
type testServer struct {
	*httptest.Server

	mu          sync.Mutex
	files       map[string][]byte
	fail        map[string][]int  // statuses to answer first, used up in order
	alwaysFail  map[string]int    // status answered to every request
	retryAfter  string            // Retry-After sent with failing statuses
	cut         map[string]int64  // cut the next body of a file after n bytes
	changeOnCut map[string][]byte // new content of a file once it was cut
	corrupt     map[string]int    // bodies to serve with a flipped byte; < 0 all
	ignoreRange bool              // answer 200 with the whole file
	weakETag    bool              // send W/ ETags, which If-Range cannot use
	delay       time.Duration     // before answering, to make requests overlap
	reqs        []request
	inFlight    int
	maxInFlight int
}

// request is what the server saw of one request.
type request struct {
	file, rng, ifRange, ifNoneMatch string
}

func newTestServer(t *testing.T, files map[string][]byte) *testServer {
	t.Helper()
	s := &testServer{
		files:       files,
		fail:        map[string][]int{},
		alwaysFail:  map[string]int{},
		cut:         map[string]int64{},
		changeOnCut: map[string][]byte{},
		corrupt:     map[string]int{},
	}
	s.Server = httptest.NewServer(s)
	t.Cleanup(s.Close)
	return s
}

// do changes the server's settings under its lock.
func (s *testServer) do(f func(s *testServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *testServer) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

func (s *testServer) url(file string) string { return s.URL + "/" + file }

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

func (s *testServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	s.mu.Lock()
	s.reqs = append(s.reqs, request{
		file:        name,
		rng:         r.Header.Get("Range"),
		ifRange:     r.Header.Get("If-Range"),
		ifNoneMatch: r.Header.Get("If-None-Match"),
	})
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	status := s.alwaysFail[name]
	if codes := s.fail[name]; len(codes) > 0 && status == 0 {
		status, s.fail[name] = codes[0], codes[1:]
	}
	data, ok := s.files[name]
	cut, cutting := s.cut[name]
	delete(s.cut, name)
	corrupt := s.corrupt[name] != 0
	if s.corrupt[name] > 0 {
		s.corrupt[name]--
	}
	retryAfter, ignoreRange, weak, delay := s.retryAfter, s.ignoreRange, s.weakETag, s.delay
	s.mu.Unlock()
	defer s.do(func(s *testServer) { s.inFlight-- })

	time.Sleep(delay)
	if status != 0 {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	etag := etagOf(data)
	if corrupt {
		data = bytes.Clone(data)
		data[len(data)/2] ^= 0xff
	}
	if weak {
		etag = "W/" + etag
	}
	w.Header().Set("ETag", etag)
	if ignoreRange {
		r.Header.Del("Range")
	}
	if cutting {
		w = &cutWriter{ResponseWriter: w, left: cut, done: func() {
			s.do(func(s *testServer) {
				if b, ok := s.changeOnCut[name]; ok {
					s.files[name] = b
				}
			})
		}}
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}

// cutWriter sends the first left bytes of a body, then drops the
// connection, as a network failure mid-transfer would.
type cutWriter struct {
	http.ResponseWriter
	left int64
	done func()
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) < c.left {
		c.left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	c.ResponseWriter.Write(p[:c.left])
	c.ResponseWriter.(http.Flusher).Flush()
	c.done()
	panic(http.ErrAbortHandler) // the server closes the connection quietly
}

// testData is n bytes that differ at every offset a test is likely to
// check, so a misplaced range is caught.
func testData(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31+i>>8) ^ seed
	}
	return b
}

// testHTTP is an HTTP source for s with fast retries.
func testHTTP(t *testing.T, s *testServer, o HTTPOptions) *HTTP {
	t.Helper()
	if o.Client == nil {
		o.Client = s.Client()
	}
	if o.Backoff == 0 {
		o.Backoff = time.Millisecond
	}
	o.Logf = t.Logf
	h, err := NewHTTP(s.URL+"/manifest.json", o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
