//go:build wasip1 || js

package main

import (
	"errors"
	"io"

	"github.com/moderuntime/mode/runtime/backend"
)

// The wasip1 build runs under wazero, which has no GPU; the browser build
// is cmd/wasm.
func openWebGPU() (backend.Backend, error) {
	return nil, errors.New("--backend webgpu: not available in the wasm build; use cpu")
}

// forwardsWebGPU: a wasip1 guest starts no processes; openWebGPU says why.
const forwardsWebGPU = false

func forwardWebGPU(string, []string, io.Reader, io.Writer, io.Writer) error {
	panic("the wasm build does not forward --backend webgpu")
}
