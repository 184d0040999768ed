//go:build wasip1 || js

package main

import (
	"errors"

	"github.com/moderuntime/mode/runtime/backend"
)

// The wasip1 build runs under wazero, which has no GPU; the browser build
// is cmd/wasm.
func openWebGPU() (backend.Backend, error) {
	return nil, errors.New("--backend webgpu: not available in the wasm build; use cpu")
}
