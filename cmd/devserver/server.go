package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	web, wasm, models string
	hf                string // directory of ORG/REPO checkpoints served in the hub's layout
	bytesPerSec       int64
	latency           time.Duration
	log               io.Writer
	faults            bool
}

type server struct {
	c        config
	web      *os.Root  // nil when the directory does not exist
	models   *os.Root  // nil without --models
	hub      *hubRepos // nil without --hf
	wasmExec string    // path of Go's wasm_exec.js
	limiter  *limiter
	faults   *faultSet
	logMu    sync.Mutex
	// chunkTimeout bounds each write of a response body (0: none), so a
	// client that stops reading is dropped while a slow, throttled
	// download of any size still completes.
	chunkTimeout time.Duration
}

func newServer(c config) (*server, error) {
	s := &server{c: c, faults: &faultSet{}, chunkTimeout: defaultTimeouts.chunk}
	if c.web != "" {
		if r, err := os.OpenRoot(c.web); err == nil {
			s.web = r
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("--web %s: %w", c.web, err)
		}
	}
	if c.models != "" {
		r, err := os.OpenRoot(c.models)
		if err != nil {
			return nil, fmt.Errorf("--models %s: %w", c.models, err)
		}
		s.models = r
	}
	if c.hf != "" {
		r, err := os.OpenRoot(c.hf)
		if err != nil {
			return nil, fmt.Errorf("--hf %s: %w", c.hf, err)
		}
		s.hub = &hubRepos{root: r, seen: map[string]hubFile{}, cdn: map[string]string{}}
	}
	if c.bytesPerSec > 0 {
		s.limiter = newLimiter(c.bytesPerSec)
	}
	s.wasmExec = findWasmExec()
	return s, nil
}

func (s *server) Close() error {
	if s.web != nil {
		s.web.Close()
	}
	if s.models != nil {
		s.models.Close()
	}
	if s.hub != nil {
		s.hub.root.Close()
	}
	return nil
}

// findWasmExec locates wasm_exec.js of the Go toolchain that builds the
// wasm, which must match it.
func findWasmExec() string {
	var roots []string
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		roots = append(roots, strings.TrimSpace(string(out)))
	}
	roots = append(roots, runtime.GOROOT(), "/usr/local/go")
	for _, r := range roots {
		p := filepath.Join(r, "lib", "wasm", "wasm_exec.js")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// maxPathBytes bounds a request's path: every name this server serves is
// short, and a long one would only reach the file system to fail there.
const maxPathBytes = 1024

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.chunkTimeout > 0 {
		w = &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: s.chunkTimeout}
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Embedder-Policy", "require-corp")
	if len(r.URL.Path) > maxPathBytes {
		http.Error(w, "path too long", http.StatusRequestURITooLong)
		return
	}
	if r.URL.Path == "/__faults" && s.c.faults {
		// A test-control endpoint: same-origin only, so no page elsewhere
		// can switch faults on (no CORS headers, no preflight).
		s.faults.handle(w, r)
		return
	}
	// Everything else is a model, the wasm or a static asset, which any
	// origin may fetch.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Range, Content-Length, ETag, Accept-Ranges, Content-Encoding")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Range, If-None-Match, If-Range, Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if s.c.latency > 0 {
		select {
		case <-time.After(s.c.latency):
		case <-r.Context().Done():
			return
		}
	}
	if s.faults.down() {
		panic(http.ErrAbortHandler) // the server "went away": the connection drops
	}
	p := r.URL.Path
	switch {
	case p == "/wasm_exec.js":
		if s.wasmExec == "" {
			http.Error(w, "wasm_exec.js not found: no Go toolchain", http.StatusNotFound)
			return
		}
		s.serveFile(w, r, nil, s.wasmExec, "no-cache")
	case p == "/mode.wasm":
		s.serveWasm(w, r)
	case p == "/packs" || p == "/packs/":
		s.listPacks(w)
	case strings.HasPrefix(p, "/packs/"):
		s.servePack(w, r, strings.TrimPrefix(p, "/packs/"))
	case s.hub != nil && strings.HasPrefix(p, hfPrefix):
		s.served(w, r, p, func(w http.ResponseWriter) { s.serveHub(w, r, strings.TrimPrefix(p, hfPrefix)) })
	case s.hub != nil && strings.HasPrefix(p, hfCDNPrefix):
		s.served(w, r, p, func(w http.ResponseWriter) { s.serveHubCDN(w, r, strings.TrimPrefix(p, hfCDNPrefix)) })
	default:
		name := strings.TrimPrefix(p, "/")
		if name == "" || strings.HasSuffix(name, "/") {
			name += "index.html"
		}
		if s.web == nil {
			http.NotFound(w, r)
			return
		}
		if path.Ext(name) == ".wasm" {
			s.servePrecompressed(w, r, s.web, name) // web/ui/ui.wasm
			return
		}
		if name == "index.html" || name == "ui/index.html" {
			if csp, err := pageCSP(s.web, name); err == nil {
				h.Set("Content-Security-Policy", csp)
			}
		}
		s.serveFile(w, r, s.web, name, "no-cache")
	}
}

// cleanName turns a URL path into a name inside a root, refusing anything
// that is not a plain relative path (os.Root refuses escapes too; this
// gives a clear 400 instead of a 404).
func cleanName(p string) (string, bool) {
	if p == "" || strings.Contains(p, "\\") || strings.Contains(p, "\x00") {
		return "", false
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", false
		}
	}
	c := path.Clean(p)
	if c == "." || strings.HasPrefix(c, "/") || !fs.ValidPath(c) {
		return "", false
	}
	return c, true
}

// serveFile serves name from root (or an absolute path when root is nil)
// with Range and conditional requests.
func (s *server) serveFile(w http.ResponseWriter, r *http.Request, root *os.Root, name, cache string) *fileInfo {
	var f *os.File
	var err error
	if root == nil {
		f, err = os.Open(name)
	} else {
		c, ok := cleanName(name)
		if !ok {
			http.Error(w, "bad path", http.StatusBadRequest)
			return nil
		}
		f, err = root.Open(c)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENAMETOOLONG) {
			http.NotFound(w, r)
		} else {
			http.Error(w, "cannot open the file", http.StatusForbidden)
		}
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		http.NotFound(w, r)
		return nil
	}
	h := w.Header()
	if cache != "" {
		h.Set("Cache-Control", cache)
	}
	if h.Get("ETag") == "" {
		h.Set("ETag", fmt.Sprintf(`"%x-%x"`, st.Size(), st.ModTime().UnixNano()))
	}
	if ct := contentType(name); ct != "" {
		h.Set("Content-Type", ct)
	}
	if rg := r.Header.Get("Range"); rg != "" {
		rs, err := parseRange(rg, st.Size())
		if err != nil {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", st.Size()))
			http.Error(w, "range not satisfiable: "+err.Error(), http.StatusRequestedRangeNotSatisfiable)
			return nil
		}
		r.Header.Set("Range", formatRanges(rs))
	}
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
	return &fileInfo{size: st.Size()}
}

type fileInfo struct{ size int64 }

func contentType(name string) string {
	switch path.Ext(name) {
	case ".wasm":
		return "application/wasm"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".json":
		return "application/json"
	case ".html":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case "":
		return "application/octet-stream" // content-addressed shards have no extension
	}
	return ""
}

// serveWasm serves the wasm build, precompressed when a .br or .gz sibling
// exists and the client accepts it.
func (s *server) serveWasm(w http.ResponseWriter, r *http.Request) {
	s.servePrecompressed(w, r, nil, s.c.wasm)
}

// servePrecompressed serves name from root (an absolute path when root is
// nil) or, when the client accepts it, its .br or .gz sibling with the
// matching Content-Encoding. Content-Type stays that of name, and Vary
// says the answer depends on Accept-Encoding, so that no cache hands the
// encoded bytes to a client that did not ask for them.
func (s *server) servePrecompressed(w http.ResponseWriter, r *http.Request, root *os.Root, name string) {
	h := w.Header()
	h.Add("Vary", "Accept-Encoding")
	if ct := contentType(name); ct != "" {
		h.Set("Content-Type", ct)
	}
	stat := func(p string) (fs.FileInfo, error) {
		if root == nil {
			return os.Stat(p)
		}
		c, ok := cleanName(p)
		if !ok {
			return nil, fs.ErrInvalid
		}
		return root.Stat(c)
	}
	plain, err := stat(name)
	for _, enc := range []struct{ ext, name string }{{".br", "br"}, {".gz", "gzip"}} {
		if err != nil || !accepts(r.Header.Get("Accept-Encoding"), enc.name) {
			continue
		}
		// A sibling older than the file was left by an earlier build (a
		// plain `go build` does not precompress): its bytes are stale.
		if st, err := stat(name + enc.ext); err != nil || st.ModTime().Before(plain.ModTime()) {
			continue
		}
		h.Set("Content-Encoding", enc.name)
		// A range of the encoded bytes would not be what the client means;
		// the Content-Type set above stays (.br and .gz have none of their own).
		r.Header.Del("Range")
		s.serveFile(w, r, root, name+enc.ext, "no-cache")
		return
	}
	s.serveFile(w, r, root, name, "no-cache")
}

// accepts reports whether an Accept-Encoding header value accepts coding
// (listed, and not with q=0).
func accepts(header, coding string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), coding) {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

type packEntry struct {
	Name     string `json:"name"`
	Manifest string `json:"manifest"`
}

func (s *server) listPacks(w http.ResponseWriter) {
	list := []packEntry{}
	if s.models != nil {
		entries, _ := fs.ReadDir(s.models.FS(), ".")
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			if _, err := s.models.Stat(path.Join(e.Name(), "manifest.json")); err == nil {
				list = append(list, packEntry{Name: e.Name(), Manifest: "/packs/" + e.Name() + "/manifest.json"})
			}
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	json.NewEncoder(w).Encode(list)
}

// servePack serves a file of a pack, logging the request. Shards are named
// by their content hash, so they can be cached forever.
func (s *server) servePack(w http.ResponseWriter, r *http.Request, name string) {
	s.served(w, r, "/packs/"+name, func(out http.ResponseWriter) {
		if s.models == nil {
			http.NotFound(out, r)
			return
		}
		cache := "no-cache"
		if strings.Contains(name, "/shards/") {
			cache = "public, max-age=31536000, immutable"
			w.Header().Set("ETag", `"`+path.Base(name)+`"`)
		}
		s.serveFile(out, r, s.models, name, cache)
	})
}

// served runs serve for a model file at URL path p with what every model
// file gets: a log line, the injected faults whose path p contains, and
// the throttle.
func (s *server) served(w http.ResponseWriter, r *http.Request, p string, serve func(http.ResponseWriter)) {
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	start := time.Now()
	defer func() {
		s.logRequest(r, p, rec, time.Since(start))
	}()
	var out http.ResponseWriter = rec
	if f := s.faults.match(strings.TrimPrefix(p, "/packs/"), r.Header.Get("Range")); f != nil {
		if f.Status != 0 {
			http.Error(rec, "injected failure", f.Status)
			return
		}
		out = f.wrap(rec)
	}
	if s.limiter != nil {
		out = &throttled{ResponseWriter: out, l: s.limiter, ctx: r.Context()}
	}
	serve(out)
}

type logLine struct {
	Path   string  `json:"path"`
	Range  string  `json:"range,omitempty"`
	Bytes  int64   `json:"bytes"`
	Status int     `json:"status"`
	MS     float64 `json:"ms"`
}

func (s *server) logRequest(r *http.Request, name string, rec *recorder, d time.Duration) {
	if s.c.log == nil {
		return
	}
	b, _ := json.Marshal(logLine{Path: name, Range: r.Header.Get("Range"), Bytes: rec.bytes, Status: rec.status,
		MS: float64(d.Microseconds()) / 1000})
	s.logMu.Lock()
	defer s.logMu.Unlock()
	s.c.log.Write(append(b, '\n'))
}

// recorder notes the status and body bytes of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
