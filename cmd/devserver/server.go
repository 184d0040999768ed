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
	"time"
)

type config struct {
	web, wasm, models string
	bytesPerSec       int64
	latency           time.Duration
	log               io.Writer
	faults            bool
}

type server struct {
	c        config
	web      *os.Root // nil when the directory does not exist
	models   *os.Root // nil without --models
	wasmExec string   // path of Go's wasm_exec.js
	limiter  *limiter
	faults   *faultSet
	logMu    sync.Mutex
}

func newServer(c config) (*server, error) {
	s := &server{c: c, faults: &faultSet{}}
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

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Range, Content-Length, ETag, Accept-Ranges, Content-Encoding")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Embedder-Policy", "require-corp")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Range, If-None-Match, If-Range, Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.URL.Path == "/__faults" && s.c.faults {
		s.faults.handle(w, r)
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
	default:
		name := strings.TrimPrefix(p, "/")
		if name == "" || strings.HasSuffix(name, "/") {
			name += "index.html"
		}
		if s.web == nil {
			http.NotFound(w, r)
			return
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
		if errors.Is(err, fs.ErrNotExist) {
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
	h := w.Header()
	h.Set("Content-Type", "application/wasm")
	h.Add("Vary", "Accept-Encoding")
	accept := r.Header.Get("Accept-Encoding")
	for _, enc := range []struct{ ext, name string }{{".br", "br"}, {".gz", "gzip"}} {
		if !strings.Contains(accept, enc.name) {
			continue
		}
		if _, err := os.Stat(s.c.wasm + enc.ext); err == nil {
			h.Set("Content-Encoding", enc.name)
			r.Header.Del("Range") // a range of the encoded bytes would not be what the client means
			s.serveFile(w, r, nil, s.c.wasm+enc.ext, "no-cache")
			return
		}
	}
	s.serveFile(w, r, nil, s.c.wasm, "no-cache")
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
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	start := time.Now()
	defer func() {
		s.logRequest(r, name, rec, time.Since(start))
	}()
	if s.models == nil {
		http.NotFound(rec, r)
		return
	}
	var out http.ResponseWriter = rec
	if f := s.faults.match(name); f != nil {
		if f.Status != 0 {
			http.Error(rec, "injected failure", f.Status)
			return
		}
		out = f.wrap(rec)
	}
	if s.limiter != nil {
		out = &throttled{ResponseWriter: out, l: s.limiter, ctx: r.Context()}
	}
	cache := "no-cache"
	if strings.Contains(name, "/shards/") {
		cache = "public, max-age=31536000, immutable"
		w.Header().Set("ETag", `"`+path.Base(name)+`"`)
	}
	s.serveFile(out, r, s.models, name, cache)
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
	b, _ := json.Marshal(logLine{Path: "/packs/" + name, Range: r.Header.Get("Range"), Bytes: rec.bytes, Status: rec.status,
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
