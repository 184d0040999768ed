//go:build !wasip1 && !js

package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	goruntime "runtime"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/moderuntime/mode/internal/wasmsimd"
	"github.com/moderuntime/mode/runtime/manifest"
	"github.com/moderuntime/mode/runtime/shard"
)

// runWasm runs `mode ARGS` compiled for wasip1 (wasmPath) under wazero, so
// CI can test the exact wasm build without a browser; stdin may be nil
// (empty). The guest reads packs through the host functions of host
// below; clocks are real. threads is the guests in all (0: one per core):
// past the first, each is an expert peer of the first (wasm_peers.go).
func runWasm(ctx context.Context, wasmPath string, args []string, threads int, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	code, err := os.ReadFile(wasmPath)
	if err != nil {
		return 1, fmt.Errorf("--wasm: %w (build it with `make wasi`)", err)
	}
	var cache wazero.CompilationCache
	if dir, err := os.UserCacheDir(); err == nil {
		// compiling a 13 MB guest takes about a second; the cache makes
		// later runs (and the peers' compiles) take tens of milliseconds
		cache, _ = wazero.NewCompilationCacheWithDir(filepath.Join(dir, "mode", "wazero"))
	}
	simd := os.Getenv("MODE_WASM_SIMD") != "off"
	mp := &mainPeers{}
	for range wasmGuests(threads) - 1 {
		mp.links = append(mp.links, newPeerLink())
	}
	mp.parts = make([][]byte, len(mp.links))
	rt, mod, err := newGuestRuntime(ctx, cache, code, simd, mp, nil)
	if err != nil {
		return 1, fmt.Errorf("%s: %w", wasmPath, err)
	}
	defer rt.Close(ctx)
	// The peers start now and meet the main guest's first message when
	// they are ready; the main guest waits for them only when it must.
	var peers sync.WaitGroup
	for k, l := range mp.links {
		peers.Add(1)
		go func() {
			defer peers.Done()
			l.die(runPeerGuest(ctx, cache, code, simd, l, stderr, k+1))
		}()
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	// The guest's instance gets the name its SIMD kernels import its
	// memory from (internal/wasmsimd).
	mc := wazero.NewModuleConfig().WithName(wasmsimd.GuestModule).WithArgs(append([]string{"mode"}, args...)...).
		WithStdin(stdin).WithStdout(stdout).WithStderr(stderr).
		WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader)
	_, err = rt.InstantiateModule(withGuestMemory(ctx), mod, mc)
	// The peers end at their next message, once done with the one in
	// hand; one that is not done in seconds is left to the process's end.
	for _, l := range mp.links {
		close(l.quit)
	}
	stopped := make(chan struct{})
	go func() { peers.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return int(exit.ExitCode()), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

// wasmGuests is how many guests --threads asks for: one per core for 0,
// at most maxGuests.
func wasmGuests(threads int) int {
	if threads <= 0 {
		threads = goruntime.NumCPU()
	}
	return min(threads, maxGuests)
}

// maxGuests bounds the guests of one run, as cmd/wasm bounds a page's
// workers.
const maxGuests = 16

// peerCommand is the guest's hidden subcommand that serves as an expert
// peer (peers_wasip1.go); a variable so that tests can start a peer that
// fails.
var peerCommand = wasmPeerCommand

// newGuestRuntime makes a wazero runtime with the host modules a guest
// imports (main's side of modepeer when main is non-nil, else peer's)
// and compiles the guest in it.
func newGuestRuntime(ctx context.Context, cache wazero.CompilationCache, code []byte, simd bool, main *mainPeers, peer *peerSide) (wazero.Runtime, wazero.CompiledModule, error) {
	// Not WithCloseOnContextDone: its checks in every loop made the
	// guest's decode three times slower.
	cfg := wazero.NewRuntimeConfigCompiler()
	if cache != nil {
		cfg = cfg.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	mod, err := func() (wazero.CompiledModule, error) {
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
		h := &host{}
		if _, err := rt.NewHostModuleBuilder("mode").
			NewFunctionBuilder().WithFunc(h.open).Export("open").
			NewFunctionBuilder().WithFunc(h.read).Export("read").
			NewFunctionBuilder().WithFunc(h.take).Export("take").
			NewFunctionBuilder().WithFunc(h.sha256).Export("sha256").
			Instantiate(ctx); err != nil {
			return nil, err
		}
		if err := instantiateSIMDHost(ctx, rt, simd); err != nil {
			return nil, err
		}
		if err := peerModule(ctx, rt, main, peer); err != nil {
			return nil, err
		}
		return rt.CompileModule(ctx, code)
	}()
	if err != nil {
		rt.Close(ctx)
		return nil, nil, err
	}
	return rt, mod, nil
}

// runPeerGuest runs expert peer k (a guest of its own runtime, so that
// its SIMD kernels import its own memory by the same name) until the
// main guest is done, and returns why it stopped.
func runPeerGuest(ctx context.Context, cache wazero.CompilationCache, code []byte, simd bool, l *peerLink, stderr io.Writer, k int) error {
	rt, mod, err := newGuestRuntime(ctx, cache, code, simd, nil, &peerSide{link: l})
	if err != nil {
		return fmt.Errorf("expert peer %d: %w", k, err)
	}
	defer rt.Close(ctx)
	mc := wazero.NewModuleConfig().WithName(wasmsimd.GuestModule).WithArgs("mode", peerCommand).
		WithStdout(io.Discard).WithStderr(stderr).WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader)
	_, err = rt.InstantiateModule(withGuestMemory(ctx), mod, mc)
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		if exit.ExitCode() == 0 {
			return errors.New("exited")
		}
		return fmt.Errorf("exited with status %d", exit.ExitCode())
	}
	if err != nil {
		return err
	}
	return errors.New("exited")
}

// host serves the guest's reads. Every call leaves its result pending and
// returns its length, negative for an error's text; take copies it out.
type host struct {
	mu      sync.Mutex
	src     shard.Source
	remote  shard.Source // for absolute URLs when src is a directory
	pending []byte
}

func (h *host) result(b []byte, err error) int64 {
	if err != nil {
		msg := err.Error()
		if msg == "" {
			msg = "error"
		}
		h.pending = []byte(msg)
		return -int64(len(msg))
	}
	h.pending = b
	return int64(len(b))
}

func str(m api.Module, ptr, n uint32) (string, bool) {
	b, ok := m.Memory().Read(ptr, n)
	return string(b), ok
}

func (h *host) open(ctx context.Context, m api.Module, ptr, n uint32) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	loc, ok := str(m, ptr, n)
	if !ok {
		return h.result(nil, errors.New("host: location outside guest memory"))
	}
	src, name, err := shard.OpenNative(loc, shard.HTTPOptions{})
	if err != nil {
		return h.result(nil, err)
	}
	h.src = src
	return h.result([]byte(name), nil)
}

func (h *host) read(ctx context.Context, m api.Module, ptr, n uint32, off, length int64) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	file, ok := str(m, ptr, n)
	if !ok {
		return h.result(nil, errors.New("host: file name outside guest memory"))
	}
	src := h.src
	if src == nil {
		return h.result(nil, errors.New("host: read before open"))
	}
	if strings.HasPrefix(file, "http://") || strings.HasPrefix(file, "https://") {
		if _, isHTTP := src.(*shard.HTTP); !isHTTP {
			if h.remote == nil {
				r, err := shard.NewHTTP(file, shard.HTTPOptions{})
				if err != nil {
					return h.result(nil, err)
				}
				h.remote = r
			}
			src = h.remote
		}
	}
	if off == 0 && length < 0 {
		// The guest reads a file of unknown size only for the manifest:
		// bound it as shard.ReadManifest does natively.
		return h.result(shard.ReadFile(ctx, src, file, manifest.MaxSize))
	}
	return h.result(src.Read(ctx, file, off, length))
}

func (h *host) take(ctx context.Context, m api.Module, ptr uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m.Memory().Write(ptr, h.pending)
	h.pending = nil
}

// sha256(p, n, out) writes the SHA-256 of the guest's n bytes at p to
// out: the guest's shard checks, natively (runtime/shard sum_wasip1.go).
func (h *host) sha256(ctx context.Context, m api.Module, p, n, out uint32) {
	b, ok := m.Memory().Read(p, n)
	if !ok {
		panic("mode.sha256: bytes outside guest memory")
	}
	sum := sha256.Sum256(b)
	if !m.Memory().Write(out, sum[:]) {
		panic("mode.sha256: result outside guest memory")
	}
}
