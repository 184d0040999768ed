package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// parseRate reads a bandwidth such as 50mbit, 100kbit, 2MB or 500KB (per
// second) into bytes per second.
func parseRate(s string) (int64, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	units := []struct {
		suf string
		mul float64
	}{{"gbit", 1e9 / 8}, {"mbit", 1e6 / 8}, {"kbit", 1e3 / 8}, {"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3}, {"b", 1}}
	for _, u := range units {
		if strings.HasSuffix(l, u.suf) {
			v, err := strconv.ParseFloat(strings.TrimSuffix(l, u.suf), 64)
			if err != nil || v <= 0 {
				break
			}
			return int64(v * u.mul), nil
		}
	}
	return 0, fmt.Errorf("%q: want a rate like 50mbit, 500kbit or 2MB", s)
}

// limiter is a token bucket shared by every response: the simulated link's
// bandwidth is divided among concurrent downloads, as a real one is.
type limiter struct {
	mu    sync.Mutex
	rate  float64 // bytes per second
	avail float64
	last  time.Time
}

func newLimiter(bps int64) *limiter {
	return &limiter{rate: float64(bps), avail: float64(bps) / 20, last: time.Now()}
}

// wait blocks until n bytes may be sent.
func (l *limiter) wait(ctx context.Context, n int) error {
	l.mu.Lock()
	now := time.Now()
	l.avail = min(l.avail+now.Sub(l.last).Seconds()*l.rate, l.rate/20) // at most a 50 ms burst
	l.last = now
	l.avail -= float64(n)
	debt := -l.avail
	l.mu.Unlock()
	if debt <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(debt / l.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// throttled writes through the limiter in small pieces.
type throttled struct {
	http.ResponseWriter
	l   *limiter
	ctx context.Context
}

func (t *throttled) Write(b []byte) (int, error) {
	const piece = 16 << 10
	written := 0
	for len(b) > 0 {
		n := min(len(b), piece)
		if err := t.l.wait(t.ctx, n); err != nil {
			return written, err
		}
		m, err := t.ResponseWriter.Write(b[:n])
		written += m
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}
