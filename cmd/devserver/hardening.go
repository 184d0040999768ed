package main

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"
)

// timeouts are the server's limits on slow clients.
type timeouts struct {
	header, read, idle time.Duration // http.Server's ReadHeaderTimeout, ReadTimeout, IdleTimeout
	chunk              time.Duration // each write of a body; see deadlineWriter
}

// defaultTimeouts: requests are GETs (and small test-control POSTs), so
// reading one is quick; there is no overall write timeout, since a
// throttled download of a large shard takes as long as it takes.
var defaultTimeouts = timeouts{header: 10 * time.Second, read: 30 * time.Second, idle: 120 * time.Second, chunk: 60 * time.Second}

// newHTTPServer is the http.Server run() serves with.
func newHTTPServer(h http.Handler, t timeouts) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: t.header, ReadTimeout: t.read, IdleTimeout: t.idle}
}

// deadlineWriter moves the connection's write deadline before each write,
// so each chunk of a body (at most 32 KiB from ServeContent, 16 KiB when
// throttled) must be taken within d, however long the whole body takes.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.d)) // unsupported (a test recorder): no deadline
	return w.ResponseWriter.Write(b)
}

func (w *deadlineWriter) Flush() {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	w.rc.Flush()
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// inlineScript matches an inline <script> element (one without src).
var inlineScript = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)

// pageCSP is the Content-Security-Policy of the pages (/ and /ui/): their
// own scripts and the hashes of their inline module scripts, WebAssembly
// compiled from fetched bytes ('wasm-unsafe-eval', needed by
// instantiateStreaming), the engine's module Worker from this origin,
// inline styles (the pages and the Go UI set style attributes), and
// fetches to this origin only: the worker, which fetches the models, is
// its own context and is not bound by the page's policy.
func pageCSP(root *os.Root, name string) (string, error) {
	f, err := root.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return "", err
	}
	var hashes []string
	for _, m := range inlineScript.FindAllSubmatch(b, -1) {
		if strings.Contains(strings.ToLower(string(m[1])), "src=") {
			continue
		}
		sum := sha256.Sum256(m[2])
		hashes = append(hashes, fmt.Sprintf("'sha256-%s'", base64.StdEncoding.EncodeToString(sum[:])))
	}
	script := "script-src 'self' 'wasm-unsafe-eval' " + strings.Join(hashes, " ")
	if name == "ui/index.html" {
		// vugu's renderer installs its JavaScript half with eval
		// (domrender.New): without this the chat page cannot start.
		script += " 'unsafe-eval'"
	}
	return strings.Join([]string{
		"default-src 'self'",
		script,
		"style-src 'self' 'unsafe-inline'",
		"img-src 'self' data:",
		"worker-src 'self'",
		// A model may live on another server (the chat page's Model URL).
		"connect-src 'self' https: http://127.0.0.1:* http://localhost:*",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'self'",
	}, "; "), nil
}
