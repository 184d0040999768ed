package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// fixture lays out web/, a wasm build with a .gz sibling, and one pack, and
// starts a server over them.
func fixture(t *testing.T, c config) (*httptest.Server, *syncBuf, []byte) {
	t.Helper()
	d := t.TempDir()
	write := func(p string, b []byte) {
		os.MkdirAll(filepath.Dir(filepath.Join(d, p)), 0o755)
		if err := os.WriteFile(filepath.Join(d, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shard := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	write("web/index.html", []byte("<h1>mode</h1>"))
	write("bin/mode.wasm", []byte("\x00asm-plain"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("\x00asm-plain"))
	zw.Close()
	write("bin/mode.wasm.gz", gz.Bytes())
	write("models/tiny/manifest.json", []byte(`{"format":"mode-pack"}`))
	write("models/tiny/shards/abc123", shard)
	write("models/notapack/readme.txt", []byte("x"))
	write("secret.txt", []byte("do not serve"))
	os.Symlink(filepath.Join(d, "secret.txt"), filepath.Join(d, "models/tiny/shards/link"))
	log := &syncBuf{}
	c.web, c.wasm, c.models, c.log = filepath.Join(d, "web"), filepath.Join(d, "bin/mode.wasm"), filepath.Join(d, "models"), log
	s, err := newServer(c)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() { srv.Close(); s.Close() })
	return srv, log, shard
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableCompression: true}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestServe(t *testing.T) {
	srv, log, shard := fixture(t, config{})
	u := srv.URL
	tests := []struct {
		name   string
		path   string
		hdr    map[string]string
		status int
		body   []byte
		header map[string]string
	}{
		{"index", "/", nil, 200, []byte("<h1>mode</h1>"), map[string]string{"Cross-Origin-Embedder-Policy": "require-corp", "Cross-Origin-Opener-Policy": "same-origin"}},
		{"shard whole", "/packs/tiny/shards/abc123", nil, 200, shard, map[string]string{
			"Cache-Control": "public, max-age=31536000, immutable", "ETag": `"abc123"`, "Access-Control-Allow-Origin": "*", "Accept-Ranges": "bytes"}},
		{"shard range", "/packs/tiny/shards/abc123", map[string]string{"Range": "bytes=100-199"}, 206, shard[100:200],
			map[string]string{"Content-Range": fmt.Sprintf("bytes 100-199/%d", len(shard))}},
		{"etag revalidation", "/packs/tiny/shards/abc123", map[string]string{"If-None-Match": `"abc123"`}, 304, nil, nil},
		{"manifest not cached", "/packs/tiny/manifest.json", nil, 200, []byte(`{"format":"mode-pack"}`), map[string]string{"Cache-Control": "no-cache"}},
		{"malformed range", "/packs/tiny/shards/abc123", map[string]string{"Range": "bytes=zz-1"}, 416, nil, nil},
		{"range past end", "/packs/tiny/shards/abc123", map[string]string{"Range": "bytes=999999-"}, 416, nil, nil},
		{"traversal", "/packs/tiny/../../secret.txt", nil, 400, nil, nil},
		{"encoded traversal", "/packs/tiny/%2e%2e/%2e%2e/secret.txt", nil, 400, nil, nil},
		{"symlink out of the root", "/packs/tiny/shards/link", nil, 403, nil, nil},
		{"web traversal", "/..%2fsecret.txt", nil, 400, nil, nil},
		{"missing", "/packs/tiny/shards/nope", nil, 404, nil, nil},
		{"wasm plain", "/mode.wasm", nil, 200, []byte("\x00asm-plain"), map[string]string{"Content-Type": "application/wasm"}},
		{"wasm gzip", "/mode.wasm", map[string]string{"Accept-Encoding": "gzip, br"}, 200, nil, map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/wasm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, u+tt.path, tt.hdr)
			if resp == nil {
				t.Fatal("no response")
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%q)", resp.StatusCode, tt.status, body)
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Errorf("body %q..., want %q...", body[:min(20, len(body))], tt.body[:min(20, len(tt.body))])
			}
			for k, v := range tt.header {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if bytes.Contains(body, []byte("do not serve")) {
				t.Fatal("served a file outside the roots")
			}
		})
	}
	// packs listing
	_, b := get(t, u+"/packs/", nil)
	var list []packEntry
	if err := json.Unmarshal(b, &list); err != nil || len(list) != 1 || list[0].Manifest != "/packs/tiny/manifest.json" {
		t.Errorf("packs list %s (%v)", b, err)
	}
	// CORS preflight
	req, _ := http.NewRequest("OPTIONS", u+"/packs/tiny/shards/abc123", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Range") {
		t.Errorf("preflight: %v %v", resp, err)
	}
	// one log line per pack request, with range and bytes
	if !strings.Contains(log.String(), `"path":"/packs/tiny/shards/abc123","range":"bytes=100-199","bytes":100,"status":206`) {
		t.Errorf("log lacks the ranged request:\n%s", log.String())
	}
}

func TestFaults(t *testing.T) {
	srv, log, shard := fixture(t, config{faults: true})
	post := func(f string) {
		resp, err := http.Post(srv.URL+"/__faults", "application/json", strings.NewReader(f))
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("adding fault %s: %v %v", f, resp, err)
		}
	}
	url := srv.URL + "/packs/tiny/shards/abc123"
	post(`{"path":"abc123","status":500,"times":1}`)
	if resp, _ := get(t, url, nil); resp.StatusCode != 500 {
		t.Errorf("first request: %d, want the injected 500", resp.StatusCode)
	}
	if resp, b := get(t, url, nil); resp.StatusCode != 200 || !bytes.Equal(b, shard) {
		t.Errorf("second request: %d", resp.StatusCode)
	}
	post(`{"path":"abc123","cut_after":1000,"times":1}`)
	resp, err := http.Get(url)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
	}
	if err == nil {
		t.Error("a cut connection read without error")
	}
	post(`{"path":"abc123","corrupt":true,"times":1}`)
	if _, b := get(t, url, nil); bytes.Equal(b, shard) || len(b) != len(shard) {
		t.Error("corrupt fault did not change exactly the content")
	}
	// a fault for one range leaves the others alone; etag replaces the ETag
	post(`{"path":"abc123","range":"bytes=10-19","etag":"\"other\"","times":1}`)
	if resp, _ := get(t, url, map[string]string{"Range": "bytes=0-9"}); resp.Header.Get("ETag") == `"other"` {
		t.Error("a fault for bytes=10-19 hit bytes=0-9")
	}
	if resp, b := get(t, url, map[string]string{"Range": "bytes=10-19"}); resp.Header.Get("ETag") != `"other"` || !bytes.Equal(b, shard[10:20]) {
		t.Errorf("etag fault: ETag %q", resp.Header.Get("ETag"))
	}
	post(`{"down_ms":300}`)
	if resp, _ := get(t, url, nil); resp != nil {
		t.Error("server answered while down")
	}
	if !strings.Contains(log.String(), `"status":500`) {
		t.Errorf("log lacks the 500:\n%s", log)
	}
}

func TestThrottle(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{{"50mbit", 6250000}, {"100kbit", 12500}, {"2MB", 2000000}, {"1.5mb", 1500000}} {
		if got, err := parseRate(tt.in); err != nil || got != tt.want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "fast", "-1mbit", "0kb"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) accepted", bad)
		}
	}
	// a throttled download still delivers every byte intact
	srv, _, shard := fixture(t, config{bytesPerSec: 4 << 20})
	if _, b := get(t, srv.URL+"/packs/tiny/shards/abc123", nil); !bytes.Equal(b, shard) {
		t.Error("throttled body differs")
	}
}

func TestRunFlags(t *testing.T) {
	var o, e bytes.Buffer
	if code := run([]string{"--throttle", "fast"}, &o, &e); code != 2 || !strings.Contains(e.String(), "--throttle") {
		t.Errorf("bad throttle: exit %d, %q", code, e.String())
	}
	if code := run([]string{"--models", "/nonexistent/dir"}, &o, &e); code != 1 || !strings.Contains(e.String(), "/nonexistent/dir") {
		t.Errorf("bad models dir: exit %d, %q", code, e.String())
	}
}

// TestCrossOriginAssets checks the headers a page of another origin needs
// to run the engine (docs/js-api.md, e2e TestCrossOrigin): CORS on
// mode.js, worker.js, wasm_exec.js, the wasm builds and packs, and the
// right Content-Type, Content-Encoding and Vary on precompressed wasm.
func TestCrossOriginAssets(t *testing.T) {
	d := t.TempDir()
	files := map[string]string{
		"web/mode.js": "export {}", "web/worker.js": "// worker", "web/ui/ui.wasm": "\x00asm-ui", "web/ui/ui.wasm.br": "br-bytes",
		"bin/mode.wasm": "\x00asm", "bin/mode.wasm.br": "br-bytes", "bin/mode.wasm.gz": "gz-bytes",
		"models/p/manifest.json": "{}", "models/p/shards/abc": "shard",
	}
	// One modification time for all: written in map order, a sibling could
	// otherwise be nanoseconds older than its wasm, which means stale.
	now := time.Now()
	for p, b := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(d, p)), 0o755)
		if err := os.WriteFile(filepath.Join(d, p), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(d, p), now, now); err != nil {
			t.Fatal(err)
		}
	}
	// A sibling older than its wasm is stale: it must not be served.
	old := now.Add(-time.Hour)
	os.WriteFile(filepath.Join(d, "web/ui/ui.wasm.gz"), []byte("stale"), 0o644)
	if err := os.Chtimes(filepath.Join(d, "web/ui/ui.wasm.gz"), old, old); err != nil {
		t.Fatal(err)
	}
	s, err := newServer(config{web: filepath.Join(d, "web"), wasm: filepath.Join(d, "bin/mode.wasm"), models: filepath.Join(d, "models")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()
	const js, wasm = "text/javascript; charset=utf-8", "application/wasm"
	tests := []struct {
		path, accept        string
		contentType, coding string
		body                string
	}{
		{"/mode.js", "", js, "", "export {}"},
		{"/worker.js", "", js, "", "// worker"},
		{"/wasm_exec.js", "", js, "", ""},
		{"/mode.wasm", "", wasm, "", "\x00asm"},
		{"/mode.wasm", "gzip, deflate", wasm, "gzip", "gz-bytes"},
		{"/mode.wasm", "gzip, deflate, br, zstd", wasm, "br", "br-bytes"},
		{"/mode.wasm", "br;q=0, gzip", wasm, "gzip", "gz-bytes"},
		{"/ui/ui.wasm", "gzip", wasm, "", "\x00asm-ui"}, // its .gz is stale
		{"/ui/ui.wasm", "br", wasm, "br", "br-bytes"},
		{"/packs/p/manifest.json", "", "application/json", "", "{}"},
		{"/packs/p/shards/abc", "", "application/octet-stream", "", "shard"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.accept, func(t *testing.T) {
			hdr := map[string]string{"Origin": "http://another.example"}
			if tt.accept != "" {
				hdr["Accept-Encoding"] = tt.accept
			}
			resp, body := get(t, srv.URL+tt.path, hdr)
			if resp == nil {
				t.Fatal("no response")
			}
			if resp.StatusCode == http.StatusNotFound && tt.path == "/wasm_exec.js" && s.wasmExec == "" {
				t.Fatal("no Go toolchain's wasm_exec.js to serve")
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("Access-Control-Allow-Origin %q, want *: a page of another origin cannot use it", got)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type %q, want %q", got, tt.contentType)
			}
			if got := resp.Header.Get("Content-Encoding"); got != tt.coding {
				t.Errorf("Content-Encoding %q, want %q", got, tt.coding)
			}
			if strings.HasSuffix(tt.path, ".wasm") && !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary %q lacks Accept-Encoding", resp.Header.Get("Vary"))
			}
			if tt.body != "" && string(body) != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
		})
	}
}
