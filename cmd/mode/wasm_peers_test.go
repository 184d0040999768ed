//go:build !wasip1 && !js

package main

import (
	"runtime"
	"testing"
	"time"
)

// TestRecvSpin: a guest that waits polls for peerSpin, takes a message
// sent meanwhile, and otherwise reports none so that it blocks; with one
// Go thread, or peerSpin 0, it does not poll at all.
func TestRecvSpin(t *testing.T) {
	defer func(d time.Duration) { peerSpin = d }(peerSpin)
	peerSpin = 200 * time.Millisecond
	if runtime.GOMAXPROCS(0) >= 2 {
		c := make(chan []byte, 1)
		go func() { time.Sleep(5 * time.Millisecond); c <- []byte("answer") }()
		if m, ok := recvSpin(c); !ok || string(m) != "answer" {
			t.Fatalf("a message sent while polling: %q, %v", m, ok)
		}
		peerSpin = 10 * time.Millisecond
		start := time.Now()
		if m, ok := recvSpin(c); ok || time.Since(start) < peerSpin {
			t.Fatalf("no message: %q, %v after %v", m, ok, time.Since(start))
		}
	}
	peerSpin = 0
	c := make(chan []byte, 1)
	c <- []byte("queued")
	if _, ok := recvSpin(c); ok {
		t.Fatal("polled with peerSpin 0")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	peerSpin = time.Second
	if _, ok := recvSpin(c); ok {
		t.Fatal("polled with one Go thread")
	}
}
