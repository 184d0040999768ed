package shard

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// failure is why one attempt failed and whether another may succeed.
type failure struct {
	err   error
	retry bool
	after time.Duration // the server's Retry-After, 0 if none
	// etag is the ETag of an answer refused for not being the expected
	// one (HTTPOptions.ETag), "" for other failures.
	etag string
}

func permanent(err error) *failure { return &failure{err: err} }

func temporary(err error, after time.Duration) *failure {
	return &failure{err: err, retry: true, after: after}
}

// delay is the wait before retry number n (from 1): Backoff doubled n-1
// times, jittered to between half and one and a half of that so clients
// that failed together do not come back together, at least what the
// server asked for, and at most h.maxWait.
func (h *HTTP) delay(n int, after time.Duration) time.Duration {
	d := h.backoff
	for i := 1; i < n && d < h.maxWait; i++ {
		d *= 2
	}
	d = min(d, h.maxWait)
	d = d/2 + rand.N(d) // d > 0: Backoff defaults to a positive value
	return min(max(d, after), h.maxWait)
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// Anything else, or a time in the past, is 0.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 64); err == nil {
		// Clamp before converting: a huge value must not overflow into a
		// negative Duration. The caller caps the wait anyway.
		return time.Duration(min(s, uint64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// sleep waits d or until ctx ends, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
