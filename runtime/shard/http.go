package shard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPOptions configure an HTTP source. The zero value is usable.
type HTTPOptions struct {
	// Client sends the requests. Nil means a client with connect, TLS and
	// response-header timeouts but no overall one, since a large shard may
	// take minutes: bound a read with its context instead.
	Client *http.Client
	// MaxConcurrent limits the requests in flight across all reads of one
	// source (default 6, what browsers allow per host).
	MaxConcurrent int
	// Retries is how many attempts may follow a failed one (default 4;
	// negative means none). Resuming a body that was cut after some bytes
	// arrived does not use up a retry.
	Retries int
	// Backoff is the delay before the first retry, doubled for each next
	// one, with jitter (default 200ms).
	Backoff time.Duration
	// Logf, if set, is told about retries, resumes and restarts.
	Logf func(format string, args ...any)
	// ETag, if set, gives the ETag answers for a URL must carry, "" for
	// any: the one the caller saw when it read the file's layout (an hf:
	// repository's safetensors header). Ranges of a file that is not
	// content-addressed per range cannot be hash-checked, but an answer
	// naming another version of the file can be refused: it is refetched
	// like a failed read, then an error. (Weak and strong tags compare by
	// their opaque part; an answer without an ETag is not refused.)
	ETag func(url string) string
	// ETagChanged, if set, is called when an answer's ETag is not the one
	// ETag gave for url, before the answer is counted as a failure: the
	// caller may read the file's layout again (an hf: index kept from an
	// earlier visit names the ETag the CDN sent then, and the CDN may have
	// moved the file since) and report whether ETag may now answer
	// otherwise. If so, the read is tried again at once, without a retry
	// used up; only once per read, so a caller that always says yes cannot
	// keep it going.
	ETagChanged func(ctx context.Context, url, got string) bool
}

// HTTPStats counts what an HTTP source did since it was made.
type HTTPStats struct {
	Requests     int64 // requests sent, retries and resumes included
	Bytes        int64 // body bytes received, discarded ones included
	Retries      int64 // attempts repeated after an error, 408, 429 or 5xx
	Resumes      int64 // requests continuing a body that was cut short
	NotModified  int64 // 304 answers served from the ETag cache
	RangeIgnored int64 // 200 answers to a ranged request
}

const (
	defaultMaxConcurrent = 6
	defaultRetries       = 4
	defaultBackoff       = 200 * time.Millisecond
	// maxWait caps one wait between attempts, whatever Retry-After says:
	// a server asking for an hour gets an error sooner instead.
	maxWait = 30 * time.Second
	// maxCached is the largest body kept for If-None-Match: the cache is
	// for manifests and tokenizers, not for shards read whole by mistake.
	maxCached = 64 << 20
)

// HTTP is a Source reading files over HTTP(S) relative to a base URL.
// File names that are absolute http(s) URLs are fetched as they are, so a
// manifest may point at files on another host. An HTTP is safe for
// concurrent use; its connection limit, ETag cache and stats are shared by
// all reads.
type HTTP struct {
	base    *url.URL // nil: only absolute URLs can be read
	client  *http.Client
	sem     chan struct{} // one token per request in flight
	retries int
	backoff time.Duration
	maxWait time.Duration // a field so tests can shorten Retry-After waits
	logf    func(format string, args ...any)
	etag    func(url string) string // nil: no ETag is expected
	changed func(ctx context.Context, url, got string) bool

	mu    sync.Mutex
	cache map[string]cachedBody // URL → last whole-file body with an ETag

	requests, bytes, retried, resumes, notModified, rangeIgnored atomic.Int64
}

type cachedBody struct {
	etag string
	body []byte
}

// NewHTTP returns a Source reading files relative to base, an http(s) URL.
// A base not ending in "/" names a file (typically the manifest) and its
// directory is used. On wasip1, which has no network, it fails unless
// o.Client is set.
func NewHTTP(base string, o HTTPOptions) (*HTTP, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("HTTP source %q: %w", base, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("HTTP source %q: want an http:// or https:// URL with a host", base)
	}
	// Keep the directory: "./" resolves to it and drops query and fragment.
	u = u.ResolveReference(&url.URL{Path: "./"})
	return newHTTP(u, o)
}

func newHTTP(base *url.URL, o HTTPOptions) (*HTTP, error) {
	h := &HTTP{
		base:    base,
		client:  o.Client,
		retries: o.Retries,
		backoff: o.Backoff,
		maxWait: maxWait,
		logf:    o.Logf,
		etag:    o.ETag,
		changed: o.ETagChanged,
		cache:   map[string]cachedBody{},
	}
	if h.client == nil {
		c, err := defaultClient()
		if err != nil {
			where := "absolute URLs"
			if base != nil {
				where = base.String()
			}
			return nil, fmt.Errorf("HTTP source %s: %w", where, err)
		}
		h.client = c
	}
	n := o.MaxConcurrent
	if n <= 0 {
		n = defaultMaxConcurrent
	}
	h.sem = make(chan struct{}, n)
	switch {
	case h.retries == 0:
		h.retries = defaultRetries
	case h.retries < 0:
		h.retries = 0
	}
	if h.backoff <= 0 {
		h.backoff = defaultBackoff
	}
	if h.logf == nil {
		h.logf = func(string, ...any) {}
	}
	return h, nil
}

// Stats returns the counts so far.
func (h *HTTP) Stats() HTTPStats {
	return HTTPStats{
		Requests:     h.requests.Load(),
		Bytes:        h.bytes.Load(),
		Retries:      h.retried.Load(),
		Resumes:      h.resumes.Load(),
		NotModified:  h.notModified.Load(),
		RangeIgnored: h.rangeIgnored.Load(),
	}
}

// Read returns length bytes of file from offset (to the end when
// length < 0). A read of a whole file (offset 0, length < 0) is
// revalidated with If-None-Match when it was read before.
func (h *HTTP) Read(ctx context.Context, file string, offset, length int64) ([]byte, error) {
	u, err := h.resolve(file)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("GET %s: negative offset %d", u, offset)
	}
	if length == 0 {
		return []byte{}, nil
	}
	t := &transfer{h: h, url: u, off: offset, want: length}
	return t.run(ctx)
}

// resolve turns a file name into the URL to fetch. Relative names are
// paths (escaped here, so "#" or "?" in a file name is not misread);
// unlike Dir, ".." is allowed: the server decides what it serves, and an
// absolute URL could point anywhere anyway.
func (h *HTTP) resolve(file string) (string, error) {
	if isURL(file) {
		u, err := url.Parse(file)
		if err != nil {
			return "", fmt.Errorf("GET %q: %w", file, err)
		}
		if u.Host == "" {
			return "", fmt.Errorf("GET %q: URL has no host", file)
		}
		u.Fragment = ""
		return u.String(), nil
	}
	if h.base == nil {
		return "", fmt.Errorf("GET %q: a relative file needs a source with a base URL", file)
	}
	if file == "" || strings.HasPrefix(file, "/") {
		return "", fmt.Errorf("GET %q: want a file name relative to %s", file, h.base)
	}
	return h.base.ResolveReference(&url.URL{Path: file}).String(), nil
}

// acquire takes a request slot, or fails when ctx ends first.
func (h *HTTP) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *HTTP) release() { <-h.sem }

func (h *HTTP) cached(u string) (cachedBody, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.cache[u]
	return c, ok
}

func (h *HTTP) store(u, etag string, body []byte) {
	if etag == "" || len(body) > maxCached {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cache[u] = cachedBody{etag: etag, body: body}
}
