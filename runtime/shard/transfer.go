package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// maxFreeResumes is how many times one read resumes a cut body at once;
// later cuts count as failures, retried with backoff up to the limit.
const maxFreeResumes = 16

// transfer is one HTTP Read: the bytes received so far and what the next
// request has to ask for.
type transfer struct {
	h    *HTTP
	url  string
	off  int64  // first byte wanted
	want int64  // bytes wanted from off; < 0 means to the end of the file
	buf  []byte // bytes received so far, starting at off
	// etag is the strong ETag of the response that began buf, sent as
	// If-Range when resuming so that bytes of two versions of a file are
	// never glued together.
	etag string
	// tag is the ETag (weak or strong) to cache a whole-file body under;
	// cleared when a resume could not be checked with If-Range.
	tag string
	// limit, when > 0, bounds a read to the end of the file: a longer
	// file is an error and no more than limit+1 of its bytes are held.
	limit int64
}

// whole reports whether the read is of a whole file, the kind of read the
// ETag cache serves.
func (t *transfer) whole() bool { return t.off == 0 && t.want < 0 }

// remaining is how many bytes are still wanted, or -1 for "to the end".
func (t *transfer) remaining() int64 {
	if t.want < 0 {
		return -1
	}
	return t.want - int64(len(t.buf))
}

// run makes attempts until the bytes are in, an error is final, the
// retries are spent or ctx ends.
func (t *transfer) run(ctx context.Context) ([]byte, error) {
	failures, resumes := 0, 0
	asked := false // whether HTTPOptions.ETagChanged was called
	for {
		before := len(t.buf)
		body, f := t.attempt(ctx)
		if f == nil {
			return body, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("GET %s: %w", t.url, err)
		}
		if !f.retry {
			return nil, f.err
		}
		if f.etag != "" && t.h.changed != nil && !asked {
			asked = true
			if t.h.changed(ctx, t.url, f.etag) {
				t.h.logf("%v; the expected ETag was read again, trying once more", f.err)
				continue
			}
		}
		if len(t.buf) > before && resumes < maxFreeResumes {
			// Bytes arrived, so the server is up: ask for the rest at once.
			// Only so often: a server that sends a few bytes per answer
			// must not keep a read going forever.
			resumes++
			t.h.logf("%v; resuming at byte %d", f.err, t.off+int64(len(t.buf)))
			continue
		}
		if failures == t.h.retries {
			return nil, fmt.Errorf("%w (gave up after %d attempts)", f.err, failures+1)
		}
		failures++
		t.h.retried.Add(1)
		d := t.h.delay(failures, f.after)
		t.h.logf("%v; retry %d of %d in %v", f.err, failures, t.h.retries, d)
		if err := sleep(ctx, d); err != nil {
			return nil, fmt.Errorf("GET %s: %w while waiting to retry after: %v", t.url, err, f.err)
		}
	}
}

// attempt sends one request and reads its answer into t.buf.
func (t *transfer) attempt(ctx context.Context) ([]byte, *failure) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return nil, permanent(fmt.Errorf("GET %s: %w", t.url, err))
	}
	pos := t.off + int64(len(t.buf))
	ranged := pos > 0 || t.want >= 0
	if ranged {
		req.Header.Set("Range", rangeHeader(pos, t.remaining()))
	}
	resuming := len(t.buf) > 0
	if resuming {
		if t.etag != "" {
			req.Header.Set("If-Range", t.etag)
		} else {
			t.tag = "" // the parts cannot be proved to be one version
		}
	}
	var cached cachedBody
	revalidate := false
	if t.whole() && !resuming {
		if cached, revalidate = t.h.cached(t.url); revalidate {
			req.Header.Set("If-None-Match", cached.etag)
		}
	}

	if err := t.h.acquire(ctx); err != nil {
		return nil, temporary(fmt.Errorf("GET %s: %w", t.url, err), 0)
	}
	defer t.h.release()
	t.h.requests.Add(1)
	if resuming {
		t.h.resumes.Add(1)
	}
	resp, err := t.h.client.Do(req)
	if err != nil {
		return nil, temporary(err, 0) // *url.Error names the URL
	}
	defer resp.Body.Close()

	if f := t.unexpectedETag(resp); f != nil {
		return nil, f
	}
	var f *failure
	switch {
	case resp.StatusCode == http.StatusNotModified && revalidate:
		t.h.notModified.Add(1)
		return bytes.Clone(cached.body), nil
	case resp.StatusCode == http.StatusPartialContent && ranged:
		f = t.partial(resp, pos)
	case resp.StatusCode == http.StatusOK:
		f = t.full(resp, ranged)
	default:
		return nil, statusFailure(t.url, resp)
	}
	if f != nil {
		return nil, f
	}
	if t.whole() && t.tag != "" {
		t.h.store(t.url, t.tag, bytes.Clone(t.buf))
	}
	return t.buf, nil
}

// partial reads a 206 answer, which must hold exactly the bytes asked for.
func (t *transfer) partial(resp *http.Response, pos int64) *failure {
	cr := resp.Header.Get("Content-Range")
	first, last, total, err := parseContentRange(cr)
	if err != nil {
		return permanent(fmt.Errorf("GET %s: %w", t.url, err))
	}
	n := t.remaining()
	if n < 0 && total >= 0 {
		n = total - pos
	}
	if first != pos || (n >= 0 && last != pos+n-1) {
		if total >= 0 && n >= 0 && pos+n > total {
			return permanent(fmt.Errorf("GET %s: the file has %d bytes, fewer than the %d wanted", t.url, total, pos+n))
		}
		return permanent(fmt.Errorf("GET %s: asked for %s, got Content-Range %q", t.url, rangeHeader(pos, n), cr))
	}
	if len(t.buf) == 0 {
		t.began(resp)
	} else if e := resp.Header.Get("ETag"); t.etag != "" && e != "" && e != t.etag {
		// The server ignored If-Range but says the file changed.
		t.restart(e)
		return temporary(fmt.Errorf("GET %s: file changed during the read (ETag %s, was %s)", t.url, e, t.etag), 0)
	}
	return t.appendBody(resp.Body, n, true)
}

// full reads a 200 answer: the whole file, of which the bytes wanted may
// be a part if the request was ranged.
func (t *transfer) full(resp *http.Response, ranged bool) *failure {
	switch {
	case !ranged:
		t.began(resp)
		if t.limit > 0 && resp.ContentLength > t.limit {
			return permanent(fmt.Errorf("GET %s: %d bytes, more than the %d accepted", t.url, resp.ContentLength, t.limit))
		}
		return t.appendBody(resp.Body, resp.ContentLength, true)
	case len(t.buf) > 0 && t.etag != "" && resp.Header.Get("ETag") != t.etag:
		// A 200 to If-Range: the file changed since the bytes we hold.
		// (With the same ETag, the server just ignores Range and If-Range.)
		t.restart(resp.Header.Get("ETag"))
	default:
		t.h.rangeIgnored.Add(1)
		if len(t.buf) == 0 {
			t.began(resp)
		}
	}
	skip := t.off + int64(len(t.buf))
	n := t.remaining()
	if size := resp.ContentLength; size >= 0 && (size < skip || n >= 0 && size < skip+n) {
		return permanent(fmt.Errorf("GET %s: the file has %d bytes, fewer than the %d wanted", t.url, size, skip+max(n, 0)))
	}
	got, err := io.CopyN(io.Discard, resp.Body, skip)
	t.h.bytes.Add(got)
	if err == io.EOF {
		return permanent(fmt.Errorf("GET %s: the file has %d bytes, offset %d is past its end", t.url, got, skip))
	}
	if err != nil {
		return temporary(fmt.Errorf("GET %s: skipping to byte %d: %w", t.url, skip, err), 0)
	}
	// The rest of the body is the rest of the file, not ours to check.
	return t.appendBody(resp.Body, n, false)
}

// unexpectedETag refuses a 200 or 206 answer whose ETag is not the one
// the caller expects for the URL (HTTPOptions.ETag): its bytes belong to
// another version of the file. It is retried, since a CDN edge or proxy
// with a stale copy may answer right the next time.
func (t *transfer) unexpectedETag(resp *http.Response) *failure {
	if t.h.etag == nil || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent) {
		return nil
	}
	want, got := t.h.etag(t.url), resp.Header.Get("ETag")
	if want == "" || got == "" || opaqueTag(want) == opaqueTag(got) {
		return nil
	}
	f := temporary(fmt.Errorf("GET %s: the answer has ETag %s, but the file had ETag %s when it was indexed: its bytes changed on the server", t.url, got, want), 0)
	f.etag = got
	return f
}

// opaqueTag is an ETag without its weakness mark.
func opaqueTag(e string) string { return strings.TrimPrefix(e, "W/") }

// began records the validators of the response that begins t.buf.
func (t *transfer) began(resp *http.Response) {
	t.tag = resp.Header.Get("ETag")
	t.etag = ""
	if strings.HasPrefix(t.tag, `"`) { // weak ones start with W/
		t.etag = t.tag
	}
}

// restart drops the bytes of a version of the file that is gone.
func (t *transfer) restart(etag string) {
	t.h.logf("GET %s: file changed (ETag %s, was %s); starting over from byte %d", t.url, etag, t.etag, t.off)
	t.buf = t.buf[:0]
	t.tag, t.etag = "", ""
	if strings.HasPrefix(etag, `"`) {
		t.tag, t.etag = etag, etag
	}
}

// appendBody appends n bytes of r to t.buf, or all of r when n < 0. With
// strict, r must end there: a server sending more than it announced is an
// error and its extra bytes are never held.
func (t *transfer) appendBody(r io.Reader, n int64, strict bool) *failure {
	start := len(t.buf)
	var err error
	if n >= 0 && t.want >= 0 {
		// n derives from the caller's length, which comes from a manifest
		// that may lie too: memory grows as the bytes arrive, never to n
		// up front.
		if int64(int(n)) != n {
			return permanent(fmt.Errorf("GET %s: %d bytes do not fit in memory on this platform", t.url, n))
		}
		t.buf, err = appendN(t.buf, r, int(n))
		if err == nil && strict {
			var extra [1]byte
			if m, _ := io.ReadFull(r, extra[:]); m > 0 {
				t.h.bytes.Add(int64(len(t.buf) - start + m))
				return permanent(fmt.Errorf("GET %s: the server sent more than the %d bytes asked for", t.url, n))
			}
		}
	} else {
		// Any n comes from the server: let memory grow only with the bytes
		// that arrive, and stop one past n, or one past the limit.
		lr, most := r, -1
		stop := int64(-1)
		if n >= 0 {
			stop = n
		}
		if t.limit > 0 && (stop < 0 || stop > t.limit-int64(start)) {
			stop = max(t.limit-int64(start), 0)
		}
		if stop >= 0 {
			lr = io.LimitReader(r, stop+1)
			if int64(int(stop+1)) == stop+1 {
				most = start + int(stop+1)
			}
		}
		t.buf, err = appendAll(t.buf, lr, most)
		got := int64(len(t.buf) - start)
		switch {
		case n >= 0 && got > n:
			t.h.bytes.Add(got)
			t.buf = t.buf[:start]
			return permanent(fmt.Errorf("GET %s: the server sent more than the %d bytes it announced", t.url, n))
		case t.limit > 0 && int64(len(t.buf)) > t.limit:
			t.h.bytes.Add(got)
			t.buf = t.buf[:start]
			return permanent(fmt.Errorf("GET %s: more than the %d bytes accepted", t.url, t.limit))
		case err == nil && n >= 0 && got < n:
			err = io.ErrUnexpectedEOF
		}
	}
	got := len(t.buf) - start
	t.h.bytes.Add(int64(got))
	if err != nil {
		return temporary(fmt.Errorf("GET %s: body cut at byte %d, %d bytes into this answer: %w", t.url, t.off+int64(len(t.buf)), got, err), 0)
	}
	return nil
}

// appendN appends n bytes of r to b, or fewer and an error. The buffer
// doubles as bytes arrive (from 64 KiB, never past len(b)+n), so a server
// that announces a large body and sends little costs little.
func appendN(b []byte, r io.Reader, n int) ([]byte, error) {
	end := len(b) + n
	for len(b) < end {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(max(cap(b), 64<<10), end-len(b)))
		}
		m, err := r.Read(b[len(b):min(cap(b), end)])
		b = b[:len(b)+m]
		if err == io.EOF {
			if len(b) < end {
				return b, io.ErrUnexpectedEOF
			}
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// appendAll is io.ReadAll appending to b. The buffer doubles (append
// grows large slices by a quarter, which allocates five times what it
// holds by the end) and, when most >= 0, never past a capacity of most.
func appendAll(b []byte, r io.Reader, most int) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			grow := max(cap(b), 4096)
			if most >= 0 {
				grow = max(min(grow, most-len(b)), 1)
			}
			b = slices.Grow(b, grow)
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// statusFailure turns an unusable status into an error, retryable for
// 408, 429 and 5xx only: other 4xx answers will not change by asking again.
func statusFailure(url string, resp *http.Response) *failure {
	code := resp.StatusCode
	switch {
	case code == http.StatusNotFound || code == http.StatusGone:
		return permanent(fmt.Errorf("GET %s: file missing at that URL (%s)", url, resp.Status))
	case code == http.StatusRequestedRangeNotSatisfiable:
		return permanent(fmt.Errorf("GET %s: %s (Content-Range %q): the file is shorter than the manifest says", url, resp.Status, resp.Header.Get("Content-Range")))
	}
	msg := fmt.Sprintf("GET %s: %s", url, resp.Status)
	if s := snippet(resp.Body); s != "" {
		msg += ": " + s
	}
	if code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 {
		return temporary(errors.New(msg), retryAfter(resp.Header.Get("Retry-After"), time.Now()))
	}
	return permanent(errors.New(msg))
}

// snippet is the start of an error body on one line, which often says
// why (an expired signed URL, a rate limit), or "" if it is not text.
func snippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 200))
	if !utf8.Valid(b) {
		return ""
	}
	return strings.Join(strings.Fields(string(b)), " ")
}
