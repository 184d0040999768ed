package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoak is the loopback soak `make bench` prints (MODE_SOAK=1; not part
// of `make test`): the devserver binary, as `make demo` runs it, serves
// random byte ranges of a pack's shards to 64 clients for SOAK_SECONDS
// (60 by default) while 100 more clients misbehave — 25 connect and say
// nothing, 25 send their request headers a byte a second, 25 ask for a
// shard and never read, 25 read a byte at a time. Every ranged answer
// must be right (206, Content-Range, the bytes of the file), and the
// server's open file descriptors and resident memory, sampled each
// second from /proc, must stay within bounds and return to their level
// before the soak once the clients are gone.
func TestSoak(t *testing.T) {
	if os.Getenv("MODE_SOAK") == "" {
		t.Skip("the soak runs a minute: MODE_SOAK=1 (make soak, part of make bench)")
	}
	secs := 60
	if s := os.Getenv("SOAK_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("SOAK_SECONDS=%q: want a positive number", s)
		}
		secs = n
	}
	const active, stalled = 64, 100

	// A pack of four shards of 1, 2, 3 and 4 MiB of random bytes.
	d := t.TempDir()
	files := map[string][]byte{}
	var names []string
	for i := 1; i <= 4; i++ {
		b := make([]byte, i<<20)
		rand.NewChaCha8([32]byte{byte(i)}).Read(b)
		name := fmt.Sprintf("shard%d", i)
		files[name], names = b, append(names, name)
		writeFile(t, filepath.Join(d, "models", "soak", "shards", name), b)
	}
	writeFile(t, filepath.Join(d, "models", "soak", "manifest.json"), []byte(`{}`))
	writeFile(t, filepath.Join(d, "web", "index.html"), []byte("<h1>mode</h1>"))
	writeFile(t, filepath.Join(d, "mode.wasm"), []byte("\x00asm"))

	bin := filepath.Join(d, "devserver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--web", filepath.Join(d, "web"), "--wasm", filepath.Join(d, "mode.wasm"),
		"--models", filepath.Join(d, "models"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on http://") {
		t.Fatalf("devserver said %q (%v)", line, err)
	}
	base := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	addr := strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/")
	pid := cmd.Process.Pid

	// Warm up (the first requests grow the heap), then note the levels.
	if _, err := http.Get(base + "packs/soak/shards/shard1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	fd0, rss0 := procFDs(t, pid), procRSS(t, pid)

	var peakFD, peakRSS atomic.Int64
	sampleDone := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampleDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			if n := procFDs(t, pid); n > peakFD.Load() {
				peakFD.Store(n)
			}
			if n := procRSS(t, pid); n > peakRSS.Load() {
				peakRSS.Store(n)
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var requests, bytesRead, failures atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: active, DisableCompression: true}}
	for c := range active {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for ctx.Err() == nil {
				name := names[rng.IntN(len(names))]
				f := files[name]
				var start, end int // inclusive
				var spec string
				switch rng.IntN(8) {
				case 0: // a suffix
					n := 1 + rng.IntN(64<<10)
					start, end, spec = len(f)-n, len(f)-1, fmt.Sprintf("bytes=-%d", n)
				case 1: // open-ended
					start = len(f) - 1 - rng.IntN(128<<10)
					end, spec = len(f)-1, fmt.Sprintf("bytes=%d-", start)
				default:
					start = rng.IntN(len(f))
					end = min(len(f)-1, start+rng.IntN(256<<10))
					spec = fmt.Sprintf("bytes=%d-%d", start, end)
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", base+"packs/soak/shards/"+name, nil)
				req.Header.Set("Range", spec)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("%s %s: %w", name, spec, err))
					}
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil && ctx.Err() != nil:
				case err != nil:
					fail(fmt.Errorf("%s %s: reading: %w", name, spec, err))
				case resp.StatusCode != http.StatusPartialContent:
					fail(fmt.Errorf("%s %s: status %d", name, spec, resp.StatusCode))
				case resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", start, end, len(f)):
					fail(fmt.Errorf("%s %s: Content-Range %q", name, spec, resp.Header.Get("Content-Range")))
				case !bytes.Equal(body, f[start:end+1]):
					fail(fmt.Errorf("%s %s: %d bytes that differ from the file's", name, spec, len(body)))
				default:
					requests.Add(1)
					bytesRead.Add(int64(len(body)))
				}
			}
		}()
	}

	// The misbehaving clients hold a connection each, and open a new one
	// whenever the server closes theirs, until the soak ends.
	var closedByServer atomic.Int64
	misbehave := []func(net.Conn){
		func(c net.Conn) { io.Copy(io.Discard, c) }, // says nothing
		func(c net.Conn) { // headers a byte a second
			for _, b := range []byte("GET /packs/soak/shards/shard4 HTTP/1.1\r\nHost: x\r\n\r\n") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
			io.Copy(io.Discard, c)
		},
		func(c net.Conn) { // asks, never reads
			if _, err := c.Write([]byte("GET /packs/soak/shards/shard4 HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
				return
			}
			<-ctx.Done()
		},
		func(c net.Conn) { // reads a byte at a time
			if _, err := c.Write([]byte("GET /packs/soak/shards/shard4 HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
				return
			}
			b := make([]byte, 1)
			for {
				if _, err := c.Read(b); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		},
	}
	for i := range stalled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					fail(fmt.Errorf("misbehaving client %d: %w", i, err))
					time.Sleep(100 * time.Millisecond)
					continue
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				misbehave[i%len(misbehave)](c)
				if stop() { // returned before the soak's end: the server closed it
					closedByServer.Add(1)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	client.CloseIdleConnections()

	// Once the clients are gone the server's descriptors return to their
	// level before the soak (the server notices closed connections at
	// once; give it a few seconds).
	var fdAfter int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		fdAfter = procFDs(t, pid)
		if fdAfter <= fd0+2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stopSampling)
	<-sampleDone
	rssAfter := procRSS(t, pid)

	t.Logf("soak %ds: %d clients × random ranges: %d requests, %.1f MiB, %d errors; %d misbehaving clients, connections closed by the server: %d",
		secs, active, requests.Load(), float64(bytesRead.Load())/(1<<20), failures.Load(), stalled, closedByServer.Load())
	t.Logf("server file descriptors: %d before, %d at most, %d after; resident memory: %.1f MiB before, %.1f MiB at most, %.1f MiB after",
		fd0, peakFD.Load(), fdAfter, mib(rss0), mib(peakRSS.Load()), mib(rssAfter))
	if n := failures.Load(); n > 0 {
		t.Errorf("%d errors; the first: %v", n, firstErr.Load())
	}
	if requests.Load() == 0 {
		t.Errorf("no ranged request completed")
	}
	// At most two descriptors per client: its connection and the shard
	// file its request has open (a client that never reads holds both
	// until the write deadline), plus a few for connections on their way
	// out.
	if limit := fd0 + 2*(active+stalled) + 8; peakFD.Load() > limit {
		t.Errorf("the server held %d file descriptors, more than %d", peakFD.Load(), limit)
	}
	if fdAfter > fd0+2 {
		t.Errorf("the server holds %d file descriptors after the soak, %d before", fdAfter, fd0)
	}
	// Buffers per connection are tens of KiB: 164 connections in well
	// under 256 MiB, whatever the traffic.
	if limit := rss0 + 256<<20; peakRSS.Load() > limit {
		t.Errorf("the server's resident memory reached %.1f MiB, %.1f MiB before", mib(peakRSS.Load()), mib(rss0))
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// procFDs counts the open file descriptors of process pid.
func procFDs(t *testing.T, pid int) int64 {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Errorf("counting descriptors: %v", err)
		return 0
	}
	return int64(len(es))
}

// procRSS is the resident memory of process pid, in bytes.
func procRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Errorf("reading memory: %v", err)
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
