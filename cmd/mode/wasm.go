//go:build !wasip1 && !js

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

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
// (empty). The guest reads packs
// through the host functions of host below; clocks are real.
func runWasm(ctx context.Context, wasmPath string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	code, err := os.ReadFile(wasmPath)
	if err != nil {
		return 1, fmt.Errorf("--wasm: %w (build it with `make wasi`)", err)
	}
	cfg := wazero.NewRuntimeConfigCompiler()
	if dir, err := os.UserCacheDir(); err == nil {
		// compiling a 13 MB guest takes about a second; the cache makes
		// later runs start in tens of milliseconds
		if cache, err := wazero.NewCompilationCacheWithDir(filepath.Join(dir, "mode", "wazero")); err == nil {
			cfg = cfg.WithCompilationCache(cache)
		}
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	h := &host{}
	if _, err := rt.NewHostModuleBuilder("mode").
		NewFunctionBuilder().WithFunc(h.open).Export("open").
		NewFunctionBuilder().WithFunc(h.read).Export("read").
		NewFunctionBuilder().WithFunc(h.take).Export("take").
		Instantiate(ctx); err != nil {
		return 1, err
	}
	if err := instantiateSIMDHost(ctx, rt, os.Getenv("MODE_WASM_SIMD") != "off"); err != nil {
		return 1, err
	}
	mod, err := rt.CompileModule(ctx, code)
	if err != nil {
		return 1, fmt.Errorf("%s: %w", wasmPath, err)
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	// The guest's instance gets the name its SIMD kernels import its
	// memory from (internal/wasmsimd).
	mc := wazero.NewModuleConfig().WithName(wasmsimd.GuestModule).WithArgs(append([]string{"mode"}, args...)...).
		WithStdin(stdin).WithStdout(stdout).WithStderr(stderr).
		WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader)
	_, err = rt.InstantiateModule(ctx, mod, mc)
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return int(exit.ExitCode()), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
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
