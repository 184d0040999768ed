package shard

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHTTPRead(t *testing.T) {
	data := testData(10000, 1)
	tests := []struct {
		name      string
		setup     func(s *testServer)
		retries   int
		off, n    int64
		wantErr   string    // substring of the error; "" for success
		wantRange string    // Range header of the first request
		wantReqs  int       // requests the server saw
		wantStats HTTPStats // checked fields: Retries, RangeIgnored
	}{
		{name: "range", off: 100, n: 500, wantRange: "bytes=100-599", wantReqs: 1},
		{name: "whole file", off: 0, n: -1, wantRange: "", wantReqs: 1},
		{name: "tail", off: 9000, n: -1, wantRange: "bytes=9000-", wantReqs: 1},
		{name: "500 once", off: 10, n: 20, wantRange: "bytes=10-29", wantReqs: 2, wantStats: HTTPStats{Retries: 1},
			setup: func(s *testServer) { s.fail["a.bin"] = []int{500} }},
		{name: "503 and 429 with Retry-After 0", off: 0, n: 20, wantRange: "bytes=0-19", wantReqs: 3, wantStats: HTTPStats{Retries: 2},
			setup: func(s *testServer) { s.fail["a.bin"] = []int{503, 429}; s.retryAfter = "0" }},
		{name: "408 retried", off: 0, n: 20, wantRange: "bytes=0-19", wantReqs: 2, wantStats: HTTPStats{Retries: 1},
			setup: func(s *testServer) { s.fail["a.bin"] = []int{408} }},
		{name: "always 500 gives up", off: 0, n: 20, retries: 2, wantRange: "bytes=0-19", wantReqs: 3, wantStats: HTTPStats{Retries: 2},
			wantErr: "500 Internal Server Error: Internal Server Error (gave up after 3 attempts)",
			setup:   func(s *testServer) { s.alwaysFail["a.bin"] = 500 }},
		{name: "no retries", off: 0, n: 20, retries: -1, wantRange: "bytes=0-19", wantReqs: 1,
			wantErr: "gave up after 1 attempts",
			setup:   func(s *testServer) { s.fail["a.bin"] = []int{500} }},
		{name: "404 not retried", off: 0, n: 20, wantRange: "bytes=0-19", wantReqs: 1,
			wantErr: "/a.bin: file missing at that URL (404 Not Found)",
			setup:   func(s *testServer) { delete(s.files, "a.bin") }},
		{name: "403 not retried", off: 0, n: 20, wantRange: "bytes=0-19", wantReqs: 1,
			wantErr: "403 Forbidden: Forbidden",
			setup:   func(s *testServer) { s.fail["a.bin"] = []int{403} }},
		{name: "range ignored", off: 4000, n: 3000, wantRange: "bytes=4000-6999", wantReqs: 1, wantStats: HTTPStats{RangeIgnored: 1},
			setup: func(s *testServer) { s.ignoreRange = true }},
		{name: "range ignored, to the end", off: 9990, n: -1, wantRange: "bytes=9990-", wantReqs: 1, wantStats: HTTPStats{RangeIgnored: 1},
			setup: func(s *testServer) { s.ignoreRange = true }},
		{name: "range ignored, cut and resumed", off: 4000, n: 3000, wantRange: "bytes=4000-6999", wantReqs: 2, wantStats: HTTPStats{RangeIgnored: 2},
			setup: func(s *testServer) { s.ignoreRange = true; s.cut["a.bin"] = 5000 }},
		{name: "range ignored, cut while skipping", off: 4000, n: 3000, wantRange: "bytes=4000-6999", wantReqs: 2, wantStats: HTTPStats{RangeIgnored: 2, Retries: 1},
			setup: func(s *testServer) { s.ignoreRange = true; s.cut["a.bin"] = 3000 }},
		{name: "range ignored, file too short", off: 9990, n: 20, wantRange: "bytes=9990-10009", wantReqs: 1, wantStats: HTTPStats{RangeIgnored: 1},
			wantErr: "the file has 10000 bytes, fewer than the 10010 wanted",
			setup:   func(s *testServer) { s.ignoreRange = true }},
		{name: "past the end", off: 9990, n: 20, wantRange: "bytes=9990-10009", wantReqs: 1,
			wantErr: "the file has 10000 bytes, fewer than the 10010 wanted"},
		{name: "offset past the end", off: 20000, n: 10, wantRange: "bytes=20000-20009", wantReqs: 1,
			wantErr: "416 Requested Range Not Satisfiable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, map[string][]byte{"a.bin": data})
			if tt.setup != nil {
				s.do(tt.setup)
			}
			h := testHTTP(t, s, HTTPOptions{Retries: tt.retries})
			got, err := h.Read(t.Context(), "a.bin", tt.off, tt.n)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else {
				end := int64(len(data))
				if tt.n >= 0 {
					end = tt.off + tt.n
				}
				if !bytes.Equal(got, data[tt.off:end]) {
					t.Errorf("got %d bytes, not bytes [%d, %d) of the file", len(got), tt.off, end)
				}
			}
			reqs := s.requests()
			if len(reqs) != tt.wantReqs {
				t.Errorf("%d requests, want %d", len(reqs), tt.wantReqs)
			}
			if len(reqs) > 0 && reqs[0].rng != tt.wantRange {
				t.Errorf("Range %q, want %q", reqs[0].rng, tt.wantRange)
			}
			st := h.Stats()
			if st.Requests != int64(tt.wantReqs) || st.Retries != tt.wantStats.Retries || st.RangeIgnored != tt.wantStats.RangeIgnored {
				t.Errorf("stats %+v, want %d requests, %d retries, %d ignored ranges", st, tt.wantReqs, tt.wantStats.Retries, tt.wantStats.RangeIgnored)
			}
		})
	}
}

func TestHTTPResume(t *testing.T) {
	data := testData(20000, 2)
	tests := []struct {
		name        string
		off, n, cut int64
		weak        bool   // the server's ETag is weak: no If-Range
		wantRange   string // of the resuming request
	}{
		{name: "range", off: 100, n: 15000, cut: 1000, wantRange: "bytes=1100-15099"},
		{name: "to the end", off: 500, n: -1, cut: 7000, wantRange: "bytes=7500-"},
		{name: "whole file", off: 0, n: -1, cut: 12345, wantRange: "bytes=12345-"},
		{name: "weak ETag", off: 0, n: 9000, cut: 10, weak: true, wantRange: "bytes=10-8999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, map[string][]byte{"a.bin": data})
			s.do(func(s *testServer) { s.cut["a.bin"] = tt.cut; s.weakETag = tt.weak })
			h := testHTTP(t, s, HTTPOptions{})
			got, err := h.Read(t.Context(), "a.bin", tt.off, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			end := int64(len(data))
			if tt.n >= 0 {
				end = tt.off + tt.n
			}
			if !bytes.Equal(got, data[tt.off:end]) {
				t.Fatalf("got %d bytes, not bytes [%d, %d) of the file", len(got), tt.off, end)
			}
			reqs := s.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2: %+v", len(reqs), reqs)
			}
			if reqs[1].rng != tt.wantRange {
				t.Errorf("resumed with Range %q, want %q", reqs[1].rng, tt.wantRange)
			}
			wantIfRange := etagOf(data)
			if tt.weak {
				wantIfRange = ""
			}
			if reqs[1].ifRange != wantIfRange {
				t.Errorf("resumed with If-Range %q, want %q", reqs[1].ifRange, wantIfRange)
			}
			if st := h.Stats(); st.Resumes != 1 || st.Retries != 0 || st.Bytes != end-tt.off {
				t.Errorf("stats %+v, want 1 resume, no retry, %d bytes", st, end-tt.off)
			}
		})
	}
}

// A file replaced between the cut and the resume must not be glued to the
// old bytes: If-Range makes the server send the new file whole.
func TestHTTPResumeChangedFile(t *testing.T) {
	old, changed := testData(5000, 3), testData(5000, 4)
	s := newTestServer(t, map[string][]byte{"a.bin": old})
	s.do(func(s *testServer) { s.cut["a.bin"] = 1500; s.changeOnCut["a.bin"] = changed })
	h := testHTTP(t, s, HTTPOptions{})
	got, err := h.Read(t.Context(), "a.bin", 1000, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, changed[1000:4000]) {
		t.Errorf("got a mix of versions, want bytes [1000, 4000) of the new file")
	}
	reqs := s.requests()
	if len(reqs) != 2 || reqs[1].rng != "bytes=2500-3999" || reqs[1].ifRange != etagOf(old) {
		t.Errorf("requests %+v, want a resume at 2500 with If-Range %s", reqs, etagOf(old))
	}
}

func TestHTTPNotModified(t *testing.T) {
	data := testData(3000, 5)
	s := newTestServer(t, map[string][]byte{"tokenizer.json": data})
	h := testHTTP(t, s, HTTPOptions{})
	for i := range 3 {
		got, err := h.Read(t.Context(), "tokenizer.json", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("read %d: wrong bytes", i)
		}
		got[0] ^= 0xff // the caller owns what it got; the cache must not change
	}
	reqs := s.requests()
	if len(reqs) != 3 || reqs[0].ifNoneMatch != "" || reqs[1].ifNoneMatch != etagOf(data) || reqs[2].ifNoneMatch != etagOf(data) {
		t.Errorf("requests %+v, want If-None-Match %s after the first", reqs, etagOf(data))
	}
	if st := h.Stats(); st.NotModified != 2 || st.Bytes != int64(len(data)) {
		t.Errorf("stats %+v, want 2 not modified and %d bytes", st, len(data))
	}
	// A ranged read is never served from the cache.
	if _, err := h.Read(t.Context(), "tokenizer.json", 0, 10); err != nil {
		t.Fatal(err)
	}
	if r := s.requests()[3]; r.ifNoneMatch != "" || r.rng != "bytes=0-9" {
		t.Errorf("ranged read sent %+v", r)
	}
}

// Retry-After is honoured, up to the source's cap.
func TestHTTPRetryAfter(t *testing.T) {
	s := newTestServer(t, map[string][]byte{"a.bin": testData(100, 6)})
	s.do(func(s *testServer) { s.fail["a.bin"] = []int{503}; s.retryAfter = "3600" })
	h := testHTTP(t, s, HTTPOptions{})
	h.maxWait = 30 * time.Millisecond
	start := time.Now()
	if _, err := h.Read(t.Context(), "a.bin", 0, 100); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < h.maxWait {
		t.Errorf("retried after %v, before the capped Retry-After of %v", d, h.maxWait)
	}
}

func TestHTTPCancelDuringBackoff(t *testing.T) {
	s := newTestServer(t, map[string][]byte{"a.bin": testData(100, 7)})
	s.do(func(s *testServer) { s.alwaysFail["a.bin"] = 503; s.retryAfter = "20" })
	h := testHTTP(t, s, HTTPOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.Read(ctx, "a.bin", 0, 100)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the context's", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("returned after %v, not promptly", d)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// A server that does not do what was asked is an error, and its extra
// bytes are not kept.
func TestHTTPBadAnswers(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		off, n  int64
		wantErr string
	}{
		{name: "206 body longer than asked", n: 10, wantErr: "more than the 10 bytes asked for",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 0-9/100")
				w.WriteHeader(http.StatusPartialContent)
				w.Write(make([]byte, 100)) // no Content-Length: chunked
			}},
		{name: "206 of another range", n: 10, wantErr: `asked for bytes=0-9, got Content-Range "bytes 10-19/100"`,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 10-19/100")
				w.WriteHeader(http.StatusPartialContent)
				w.Write(make([]byte, 10))
			}},
		{name: "206 without Content-Range", n: 10, wantErr: `bad Content-Range ""`,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusPartialContent)
				w.Write(make([]byte, 10))
			}},
		{name: "206 to the end longer than its total", off: 1, n: -1, wantErr: "more than the 5 bytes it announced",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 1-5/6")
				w.WriteHeader(http.StatusPartialContent)
				w.Write(make([]byte, 10))
			}},
		{name: "206 to a whole-file read", off: 0, n: -1, wantErr: "206 Partial Content",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 0-5/6")
				w.WriteHeader(http.StatusPartialContent)
				w.Write(make([]byte, 6))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			h, err := NewHTTP(srv.URL+"/", HTTPOptions{Client: srv.Client(), Backoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.Read(t.Context(), "f", tt.off, tt.n)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestHTTPConcurrencyLimit(t *testing.T) {
	files := map[string][]byte{}
	for i := range 8 {
		files[fmt.Sprintf("f%d.bin", i)] = testData(4096, byte(i))
	}
	s := newTestServer(t, files)
	s.do(func(s *testServer) { s.delay = 5 * time.Millisecond })
	h := testHTTP(t, s, HTTPOptions{MaxConcurrent: 2})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range 8 {
		wg.Go(func() {
			name := fmt.Sprintf("f%d.bin", i)
			// Two pieces apart in one file: two requests per Fetch.
			data := append(bytes.Clone(files[name][:1000]), files[name][2000:]...)
			sh := shardOf("s"+name, data, piece(name, 0, 1000), piece(name, 2000, 2096))
			_, errs[i] = Fetch(t.Context(), h, sh)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	s.do(func(s *testServer) {
		if s.maxInFlight > 2 {
			t.Errorf("%d requests in flight at once, limit 2", s.maxInFlight)
		}
		if len(s.reqs) != 16 {
			t.Errorf("%d requests, want 16", len(s.reqs))
		}
	})
}

func TestNewHTTPResolve(t *testing.T) {
	tests := []struct {
		base, file, want, wantErr string
	}{
		{base: "http://h/packs/m/manifest.json", file: "a.bin", want: "http://h/packs/m/a.bin"},
		{base: "http://h/packs/m/", file: "sub/a.bin", want: "http://h/packs/m/sub/a.bin"},
		{base: "https://h", file: "a.bin", want: "https://h/a.bin"},
		{base: "http://h/m/manifest.json?sig=1#x", file: "a.bin", want: "http://h/m/a.bin"},
		{base: "http://h/m/", file: "a b#1?.bin", want: "http://h/m/a%20b%231%3F.bin"},
		{base: "http://h/m/", file: "../shared/t.json", want: "http://h/shared/t.json"},
		{base: "http://h/m/", file: "https://cdn/x/model.safetensors#frag", want: "https://cdn/x/model.safetensors"},
		{base: "http://h/m/", file: "/etc/passwd", wantErr: "want a file name relative to http://h/m/"},
		{base: "http://h/m/", file: "", wantErr: "want a file name relative"},
		{base: "http://h/m/", file: "http:///nohost", wantErr: "URL has no host"},
		{base: "ftp://h/m/", wantErr: "want an http:// or https:// URL"},
		{base: "/local/dir", wantErr: "want an http:// or https:// URL"},
		{base: "http://[::1", wantErr: "missing ']' in host"},
	}
	for _, tt := range tests {
		t.Run(tt.base+" "+tt.file, func(t *testing.T) {
			h, err := NewHTTP(tt.base, HTTPOptions{})
			var got string
			if err == nil {
				got, err = h.resolve(tt.file)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("resolved to %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{" 7 ", 7 * time.Second},
		{"99999999999999999999", 0}, // overflows uint64: unreadable
		{"9999999999", 24 * time.Hour},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.v, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestDelay(t *testing.T) {
	h := &HTTP{backoff: 100 * time.Millisecond, maxWait: time.Second}
	tests := []struct {
		n        int
		after    time.Duration
		min, max time.Duration
	}{
		{1, 0, 50 * time.Millisecond, 150 * time.Millisecond},
		{2, 0, 100 * time.Millisecond, 300 * time.Millisecond},
		{3, 0, 200 * time.Millisecond, 600 * time.Millisecond},
		{40, 0, 500 * time.Millisecond, time.Second}, // no overflow, capped
		{1, 700 * time.Millisecond, 700 * time.Millisecond, 700 * time.Millisecond},
		{1, time.Hour, time.Second, time.Second},
	}
	for _, tt := range tests {
		for range 50 {
			if d := h.delay(tt.n, tt.after); d < tt.min || d > tt.max {
				t.Errorf("delay(%d, %v) = %v, want within [%v, %v]", tt.n, tt.after, d, tt.min, tt.max)
				break
			}
		}
	}
}

// TestHTTPExpectedETag: with HTTPOptions.ETag, an answer naming another
// version of the file is fetched again, then refused; the same tag (weak
// or strong) or none passes. With HTTPOptions.ETagChanged, the refused
// tag is reported once per read: when the caller then expects it, the
// read is tried again at once and succeeds; when the caller says yes but
// still expects the old tag, the retries follow as without it.
func TestHTTPExpectedETag(t *testing.T) {
	data := testData(1000, 3)
	for _, c := range []struct {
		name, sent, want string
		bad              int // answers with the wrong tag before right ones; -1 all
		err              string
		// relearn, when set, is ETagChanged's answer; the expected tag
		// becomes what it was told when relearn is "adopt"
		relearn string
		reqs    int // requests wanted, when not 1 + bad
	}{
		{"same", `"v1"`, `"v1"`, 0, "", "", 0},
		{"weak and strong", `W/"v1"`, `"v1"`, 0, "", "", 0},
		{"none sent", ``, `"v1"`, 0, "", "", 0},
		{"none expected", `"v2"`, ``, 0, "", "", 0},
		{"changed once", `"v2"`, `"v1"`, 1, "", "", 0},
		{"changed", `"v2"`, `"v1"`, -1, `the answer has ETag "v2", but the file had ETag "v1" when it was indexed`, "", 3},
		{"changed, read again", `"v2"`, `"v1"`, -1, "", "adopt", 2},
		{"changed, read again, still changed", `"v2"`, `"v1"`, -1, `the answer has ETag "v2", but the file had ETag "v1"`, "keep", 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			reqs := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				reqs++
				tag := c.sent
				if c.bad > 0 && reqs > c.bad {
					tag = c.want // the edge caught up
				}
				mu.Unlock()
				if tag != "" {
					w.Header().Set("ETag", tag)
				}
				http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
			}))
			defer srv.Close()
			want, asked := c.want, 0
			o := HTTPOptions{Retries: 2, Backoff: time.Millisecond, ETag: func(string) string { mu.Lock(); defer mu.Unlock(); return want }}
			if c.relearn != "" {
				o.ETagChanged = func(_ context.Context, u, got string) bool {
					mu.Lock()
					defer mu.Unlock()
					asked++
					if u != srv.URL+"/f" || got != c.sent {
						t.Errorf("ETagChanged(%s, %s)", u, got)
					}
					if c.relearn == "adopt" {
						want = got
					}
					return true
				}
			}
			h, err := NewHTTP(srv.URL+"/", o)
			if err != nil {
				t.Fatal(err)
			}
			b, err := h.Read(context.Background(), "f", 100, 200)
			if c.relearn != "" && asked != 1 {
				t.Errorf("ETagChanged called %d times, want once", asked)
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				if reqs != c.reqs {
					t.Errorf("%d requests, want %d", reqs, c.reqs)
				}
				return
			}
			if err != nil || !bytes.Equal(b, data[100:300]) {
				t.Fatalf("%v", err)
			}
			if want := cmp.Or(c.reqs, 1+max(c.bad, 0)); reqs != want {
				t.Errorf("%d requests, want %d", reqs, want)
			}
		})
	}
}
