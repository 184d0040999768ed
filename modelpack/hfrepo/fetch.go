package hfrepo

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/moderuntime/mode/runtime/shard"
)

// errNotFound is a 404 (or 410) for a file of the repository.
var errNotFound = errors.New("not found")

// answer is what one request for a repository file brought back.
type answer struct {
	body  []byte
	total int64 // the file's size, from Content-Range or Content-Length; -1 unknown
	// commit is X-Repo-Commit, from the answer or the redirect before it
	// (the hub sends it on the resolve answer, not on the CDN's).
	commit     string
	linkedSize int64 // X-Linked-Size, -1 when absent
	// etag is the ETag of the answer that carried the bytes (the CDN's,
	// after a redirect): later ranges of the file must carry it too.
	etag string
}

// getter reads files of one repository at one revision, and records
// what it read so that the index can be kept (see Keeper).
type getter struct {
	client *http.Client
	base   string // ENDPOINT/ORG/REPO/resolve/REVISION/
	tries  int
	// replay answers requests made before: an index kept from an earlier
	// visit, or config.json read to resolve a branch. A nil answer is a
	// file that was not found.
	replay map[request]*answer
	// offline makes a request replay does not answer an error
	// (errIncomplete) instead of a request to the server.
	offline bool
	log     []recorded // every answer, in order, each request once
	logged  map[request]bool
}

// request is one read of a file: n bytes at off, or all of it (n < 0).
type request struct {
	file   string
	off, n int64
}

// recorded is an answer the index was built from; a nil answer is a
// file that was not found.
type recorded struct {
	request
	a *answer
}

// errIncomplete is a request a kept index holds no answer for.
var errIncomplete = errors.New("not in the kept index")

// get reads n bytes of file at off, or the whole file (at most limit
// bytes) when n < 0. A ranged read must be answered 206 with exactly those
// bytes: a server that answers 200 is refused without reading its body,
// since that would download the whole file. A replayed answer is held to
// the same sizes as one from the network.
func (g *getter) get(ctx context.Context, file string, off, n, limit int64) (*answer, error) {
	k := request{file, off, n}
	if a, ok := g.replay[k]; ok {
		if a == nil {
			g.note(k, nil)
			return nil, fmt.Errorf("%w (as kept from an earlier visit)", errNotFound)
		}
		if err := a.fits(off, n, limit); err != nil {
			return nil, fmt.Errorf("the answer kept from an earlier visit: %w", err)
		}
		g.note(k, a)
		return a, nil
	}
	if g.offline {
		return nil, fmt.Errorf("bytes %d+%d: %w", off, n, errIncomplete)
	}
	a, err := g.fetch(ctx, file, off, n, limit)
	if err == nil {
		g.note(k, a)
	} else if errors.Is(err, errNotFound) {
		g.note(k, nil)
	}
	return a, err
}

func (g *getter) note(k request, a *answer) {
	if g.logged[k] {
		return
	}
	if g.logged == nil {
		g.logged = map[request]bool{}
	}
	g.logged[k] = true
	g.log = append(g.log, recorded{k, a})
}

// fits checks a replayed answer against what a network answer to the same
// request must be.
func (a *answer) fits(off, n, limit int64) error {
	size := int64(len(a.body))
	switch {
	case n >= 0 && size != n:
		return fmt.Errorf("%d bytes for a range of %d", size, n)
	case n >= 0 && a.total >= 0 && a.total < off+n:
		return fmt.Errorf("bytes %d+%d of a %d-byte file", off, n, a.total)
	case n < 0 && (size > limit || a.total != size):
		return fmt.Errorf("%d bytes (file size %d), at most %d accepted", size, a.total, limit)
	case a.linkedSize < -1 || a.total < -1:
		return fmt.Errorf("size %d, linked size %d", a.total, a.linkedSize)
	}
	return nil
}

// fetch is get over the network, retried.
func (g *getter) fetch(ctx context.Context, file string, off, n, limit int64) (*answer, error) {
	var err error
	for try := 0; try < max(g.tries, 1); try++ {
		if try > 0 {
			select {
			case <-time.After(time.Duration(200<<try) * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var a *answer
		var retry bool
		a, retry, err = g.once(ctx, file, off, n, limit)
		if err == nil || !retry {
			return a, err
		}
	}
	return nil, err
}

func (g *getter) once(ctx context.Context, file string, off, n, limit int64) (a *answer, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+url.PathEscape(file), nil)
	if err != nil {
		return nil, false, err
	}
	if n >= 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	a = &answer{total: -1, linkedSize: -1, etag: resp.Header.Get("ETag")}
	linkedETag := ""
	for r := resp; r != nil; r = requestResponse(r) {
		if c := r.Header.Get("X-Repo-Commit"); c != "" && a.commit == "" {
			a.commit = c
		}
		if e := r.Header.Get("X-Linked-Etag"); e != "" && linkedETag == "" {
			linkedETag = e
		}
		if s := r.Header.Get("X-Linked-Size"); s != "" && a.linkedSize < 0 {
			if v, err := strconv.ParseInt(s, 10, 64); err == nil && v >= 0 {
				a.linkedSize = v
			}
		}
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		if code := resp.Header.Get("X-Error-Code"); code != "" {
			return nil, false, fmt.Errorf("%w (%s, %s)", errNotFound, resp.Status, code)
		}
		return nil, false, fmt.Errorf("%w (%s)", errNotFound, resp.Status)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, true, fmt.Errorf("the server answered %s", resp.Status)
	case n >= 0 && resp.StatusCode == http.StatusOK:
		return nil, false, fmt.Errorf("the server ignored the Range request and answered 200 with the whole file (%d bytes); refusing to download weights that way", resp.ContentLength)
	case n >= 0 && resp.StatusCode == http.StatusPartialContent:
		first, last, total, err := shard.ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return nil, false, err
		}
		if first != off || last != off+n-1 {
			return nil, false, fmt.Errorf("asked for bytes %d-%d, the server sent %d-%d", off, off+n-1, first, last)
		}
		a.total = total
		a.body, err = readN(resp.Body, n)
		if err != nil {
			return nil, true, err
		}
		return a, false, nil
	case n < 0 && resp.StatusCode == http.StatusOK:
		if resp.ContentLength > limit {
			return nil, false, fmt.Errorf("%d bytes, more than the %d accepted", resp.ContentLength, limit)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return nil, true, err
		}
		if int64(len(b)) > limit {
			return nil, false, fmt.Errorf("more than the %d bytes accepted", limit)
		}
		if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
			return nil, true, fmt.Errorf("body cut at %d of %d bytes", len(b), resp.ContentLength)
		}
		// A whole file can be checked against what the hub says it is.
		direct := requestResponse(resp) == nil
		if err := checkWhole(b, linkedETag, resp.Header.Get("ETag"), direct); err != nil {
			return nil, true, err
		}
		a.body, a.total = b, int64(len(b))
		return a, false, nil
	}
	return nil, false, fmt.Errorf("the server answered %s", resp.Status)
}

// checkWhole checks a whole file against the hub's validators: an LFS
// file's X-Linked-Etag is its sha256, and the ETag the resolve URL itself
// answers a file kept in git with is its git blob sha1 (huggingface_hub's
// hf_hub_url: "An object's ETag is: its git-sha1 if stored in git, or its
// sha256 if stored in git-lfs"). A CDN's ETag after a redirect is its own
// business and is not checked; neither is a tag of another form.
func checkWhole(b []byte, linkedETag, etag string, direct bool) error {
	if want := strings.Trim(linkedETag, `"`); len(want) == 64 && isHex(want) {
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != strings.ToLower(want) {
			return fmt.Errorf("the %d bytes received hash to sha256 %x, but X-Linked-Etag says %s: the file was altered or cut on the way", len(b), got, want)
		}
		return nil
	}
	// Strong tags only: a weak one may describe a compressed body.
	if want := strings.Trim(etag, `"`); direct && len(want) == 40 && isHex(want) {
		h := sha1.New()
		fmt.Fprintf(h, "blob %d\x00", len(b))
		h.Write(b)
		if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(want) {
			return fmt.Errorf("the %d bytes received have git blob id %s, but the ETag says %s: the file was altered or cut on the way", len(b), got, want)
		}
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// requestResponse is the redirect answer that led to r, if any.
func requestResponse(r *http.Response) *http.Response {
	if r.Request == nil {
		return nil
	}
	return r.Request.Response
}

// readN reads exactly n bytes of r and checks that nothing follows; memory
// grows with the bytes that arrive, not with n up front.
func readN(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return nil, err
	}
	switch {
	case int64(len(b)) > n:
		return nil, fmt.Errorf("the server sent more than the %d bytes asked for", n)
	case int64(len(b)) < n:
		return nil, fmt.Errorf("body cut at %d of %d bytes", len(b), n)
	}
	return b, nil
}
