//go:build !wasip1 && !js

package main

import (
	"runtime"
	"testing"
	"time"
)

// TestRecvSpin: a guest that waits polls for its spin, takes a message
// sent meanwhile, and otherwise reports none so that it blocks; with one
// Go thread, or spin 0, it does not poll at all.
func TestRecvSpin(t *testing.T) {
	if runtime.GOMAXPROCS(0) >= 2 {
		c := make(chan []byte, 1)
		go func() { time.Sleep(5 * time.Millisecond); c <- []byte("answer") }()
		if m, ok := recvSpin(c, 200*time.Millisecond); !ok || string(m) != "answer" {
			t.Fatalf("a message sent while polling: %q, %v", m, ok)
		}
		spin := 10 * time.Millisecond
		start := time.Now()
		if m, ok := recvSpin(c, spin); ok || time.Since(start) < spin {
			t.Fatalf("no message: %q, %v after %v", m, ok, time.Since(start))
		}
	}
	c := make(chan []byte, 1)
	c <- []byte("queued")
	if _, ok := recvSpin(c, 0); ok {
		t.Fatal("polled with spin 0")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if _, ok := recvSpin(c, time.Second); ok {
		t.Fatal("polled with one Go thread")
	}
}
