package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSecurityHeaders: every answer says nosniff; only assets allow any
// origin, never the test-control endpoint; the pages carry a CSP that
// still lets them run their inline module and the wasm.
func TestSecurityHeaders(t *testing.T) {
	srv, _, _ := fixture(t, config{faults: true})
	for _, tt := range []struct {
		method, path string
		cors         bool
	}{
		{"GET", "/", true},
		{"GET", "/packs/tiny/shards/abc123", true},
		{"GET", "/packs/tiny/manifest.json", true},
		{"GET", "/mode.wasm", true},
		{"GET", "/packs/tiny/shards/nope", true},
		{"GET", "/__faults", false},
		{"POST", "/__faults", false},
		{"OPTIONS", "/__faults", false},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s: X-Content-Type-Options %q", tt.method, tt.path, got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); (got == "*") != tt.cors {
			t.Errorf("%s %s: Access-Control-Allow-Origin %q, want it only on assets", tt.method, tt.path, got)
		}
	}

	// The pages' policy, with the hash of the inline script.
	dir := t.TempDir()
	script := "\nimport * as mode from \"./mode.js\";\nwindow.mode = mode;\n"
	page := `<!doctype html><script src="x.js"></script><script type="module">` + script + `</script>`
	for _, p := range []string{"index.html", "ui/index.html"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "mode.js"), []byte("export {}"), 0o644)
	s, err := newServer(config{web: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pages := httptest.NewServer(s)
	defer pages.Close()
	sum := sha256.Sum256([]byte(script))
	hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	for _, p := range []string{"/", "/ui/", "/index.html"} {
		resp, _ := get(t, pages.URL+p, nil)
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "'wasm-unsafe-eval'", hash, "worker-src 'self'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "'unsafe-inline'") && strings.Contains(strings.SplitN(csp, "style-src", 2)[0], "'unsafe-inline'") {
			t.Errorf("%s: scripts may run inline: %q", p, csp)
		}
	}
	if resp, _ := get(t, pages.URL+"/mode.js", nil); resp.Header.Get("Content-Security-Policy") != "" {
		t.Errorf("a script got the pages' CSP")
	}
}

// TestRanges: what http.ServeContent would answer wrongly or at length is
// refused with 416 and the file's size.
func TestRanges(t *testing.T) {
	srv, _, shard := fixture(t, config{})
	u := srv.URL + "/packs/tiny/shards/abc123"
	many := "bytes=" + strings.Repeat("0-0,", maxRanges) + "1-1"
	for _, tt := range []struct {
		rng    string
		status int
	}{
		{"bytes=-0", 416},
		{"bytes=0-0,0-0,0-0", 416},
		{"bytes=0-10,5-20", 416},
		{many, 416},
		{"bytes=5-3", 416},
		{"bytes=-10", 206},
		{"bytes=0-0,2-3", 206},
		{"bytes=0-9,-0", 206}, // the unsatisfiable part is dropped
		{"bytes=-0,0-0", 206}, // and the rest is one range, not a multipart answer
	} {
		resp, body := get(t, u, map[string]string{"Range": tt.rng})
		if resp == nil || resp.StatusCode != tt.status {
			t.Errorf("%.40s: %v, want %d", tt.rng, resp, tt.status)
			continue
		}
		if tt.status == 416 {
			if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes */%d", len(shard)); got != want {
				t.Errorf("%s: Content-Range %q, want %q", tt.rng, got, want)
			}
		}
		if tt.rng == "bytes=-10" && !bytes.Equal(body, shard[len(shard)-10:]) {
			t.Errorf("suffix range gave %q", body)
		}
		if tt.rng == "bytes=-0,0-0" && (resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-0/%d", len(shard)) || len(body) != 1) {
			t.Errorf("%s: Content-Range %q, %d bytes", tt.rng, resp.Header.Get("Content-Range"), len(body))
		}
	}
}

// TestLongNames: an over-long name is a clean 414 (or 404 for one the
// file system cannot hold), not a 403 from the open failing.
func TestLongNames(t *testing.T) {
	srv, _, _ := fixture(t, config{})
	for _, tt := range []struct {
		path   string
		status int
	}{
		{"/packs/tiny/" + strings.Repeat("a", 8000), 414},
		{"/" + strings.Repeat("b", 8000), 414},
		{"/packs/tiny/" + strings.Repeat("a", 300), 404},
		{"/" + strings.Repeat("b", 300), 404},
	} {
		resp, _ := get(t, srv.URL+tt.path, nil)
		if resp == nil || resp.StatusCode != tt.status {
			t.Errorf("%d-byte path: %v, want %d", len(tt.path), resp, tt.status)
		}
	}
}

// TestSlowClients: a client that never finishes its headers, or never
// reads its body, is dropped; a throttled download longer than any one
// write deadline completes.
func TestSlowClients(t *testing.T) {
	dir := t.TempDir()
	pack := filepath.Join(dir, "p", "shards")
	os.MkdirAll(pack, 0o755)
	big, err := os.Create(filepath.Join(pack, "big"))
	if err != nil {
		t.Fatal(err)
	}
	big.Truncate(256 << 20) // sparse
	big.Close()
	os.WriteFile(filepath.Join(pack, "small"), bytes.Repeat([]byte("x"), 96<<10), 0o644)
	log := &syncBuf{}
	s, err := newServer(config{models: dir, log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.chunkTimeout = 300 * time.Millisecond
	ts := httptest.NewUnstartedServer(s)
	ts.Config = newHTTPServer(s, timeouts{header: 300 * time.Millisecond, read: time.Second, idle: time.Second})
	ts.Start()
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")

	t.Run("unfinished headers", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /packs/p/shards/small HTTP/1.1\r\nHost: x\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		io.Copy(io.Discard, c) // returns when the server closes
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("connection kept %v", d)
		}
	})
	t.Run("body never read", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /packs/p/shards/big HTTP/1.1\r\nHost: x\r\n\r\n")
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(log.String(), `"path":"/packs/p/shards/big"`) {
			if time.Now().After(deadline) {
				t.Fatal("the handler still writes to a client that reads nothing")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("throttled download outlasts a write deadline", func(t *testing.T) {
		s.limiter = newLimiter(96 << 10) // the 96 KiB file takes about a second
		defer func() { s.limiter = nil }()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /packs/p/shards/small HTTP/1.1\r\nHost: x\r\n\r\n")
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || len(b) != 96<<10 {
			t.Fatalf("read %d bytes: %v", len(b), err)
		}
		if d := time.Since(start); d < 2*s.chunkTimeout {
			t.Logf("download took only %v; the throttle did not slow it as meant", d)
		}
	})
}

// FuzzParseRange: any header gives either an error (a 416) or ranges that
// lie inside the file, do not overlap and number at most maxRanges; a
// single accepted range is what http.ServeContent then serves.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-0", "bytes=-5", "bytes=5-", "bytes=0-0,0-0", "bytes=1-2, 4-5", "bytes=9-3",
		"bytes=" + strings.Repeat("0-0,", 20), "items=0-1", "bytes=99999999999999999999-", "bytes= 3 - 4 "} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 || size > 1<<20 {
			return
		}
		rs, err := parseRange(h, size)
		if err != nil {
			return
		}
		if len(rs) == 0 || len(rs) > maxRanges {
			t.Fatalf("%q: %d ranges", h, len(rs))
		}
		for i, r := range rs {
			if r.start < 0 || r.start > r.end || r.end >= size {
				t.Fatalf("%q: range %+v outside a %d-byte file", h, r, size)
			}
			for _, q := range rs[i+1:] {
				if r.start <= q.end && q.start <= r.end {
					t.Fatalf("%q: ranges %+v and %+v overlap", h, r, q)
				}
			}
		}
		if len(rs) != 1 {
			return
		}
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i)
		}
		w := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/f", nil)
		req.Header.Set("Range", formatRanges(rs)) // as serveFile passes it on
		http.ServeContent(w, req, "f", time.Time{}, bytes.NewReader(data))
		want := data[rs[0].start : rs[0].end+1]
		if w.Code == http.StatusPartialContent && !bytes.Equal(w.Body.Bytes(), want) {
			t.Fatalf("%q: ServeContent sent %d bytes, the range says [%d, %d]", h, w.Body.Len(), rs[0].start, rs[0].end)
		}
	})
}

// TestRealPagesFitTheCSP: the repository's pages run under the policy:
// each inline script is hashed, and no inline event-handler attribute
// (which the policy would block) is used.
func TestRealPagesFitTheCSP(t *testing.T) {
	root, err := os.OpenRoot(filepath.Join("..", "..", "web"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	handler := regexp.MustCompile(`(?i)<[^>]+\son[a-z]+\s*=`)
	for _, name := range []string{"index.html", "ui/index.html"} {
		b, err := fs.ReadFile(root.FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		csp, err := pageCSP(root, name)
		if err != nil {
			t.Fatal(err)
		}
		scripts := inlineScript.FindAllSubmatch(b, -1)
		if len(scripts) == 0 || strings.Count(csp, "'sha256-") != len(scripts) {
			t.Errorf("%s: %d inline scripts, CSP %q", name, len(scripts), csp)
		}
		for _, m := range scripts {
			sum := sha256.Sum256(m[2])
			if !strings.Contains(csp, base64.StdEncoding.EncodeToString(sum[:])) {
				t.Errorf("%s: an inline script is not in the CSP", name)
			}
		}
		if m := handler.Find(b); m != nil {
			t.Errorf("%s: inline event handler %q would be blocked", name, m)
		}
	}
}
