//go:build wasip1

package shard

import (
	"context"
	"errors"
	"unsafe"
)

// Under wasip1 the guest has no network and sees no files of its own: the
// host (`mode run --wasm`, wazero) reads for it. Each host call leaves its
// result — bytes, a name, or an error's text — pending and returns its
// length (negative for an error); take copies it into guest memory. This
// two-call shape keeps every allocation on the guest side.

//go:wasmimport mode open
func hostOpen(location string) int64

//go:wasmimport mode read
func hostRead(file string, offset, length int64) int64

//go:wasmimport mode take
func hostTake(buf unsafe.Pointer)

func take(n int64) ([]byte, error) {
	if n < 0 {
		msg := make([]byte, -n)
		hostTake(unsafe.Pointer(&msg[0]))
		return nil, errors.New(string(msg))
	}
	b := make([]byte, n)
	if n > 0 {
		hostTake(unsafe.Pointer(&b[0]))
	}
	return b, nil
}

func open(loc string, _ HTTPOptions) (Source, string, error) {
	name, err := take(hostOpen(loc))
	if err != nil {
		return nil, "", err
	}
	return hostSource{}, string(name), nil
}

// hostSource reads through the host, URLs included.
type hostSource struct{}

func (hostSource) Read(ctx context.Context, file string, offset, length int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return take(hostRead(file, offset, length))
}

func (hostSource) ReadsURLs() bool { return true }
