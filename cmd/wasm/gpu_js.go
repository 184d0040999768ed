//go:build js && wasm

package main

import (
	"errors"
	"fmt"
	"syscall/js"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/webgpu"
)

// openWebGPU opens the WebGPU backend on the worker's navigator.gpu, or
// says in words a person can act on why it cannot. It awaits promises, so
// it must run on an ordinary goroutine (requests do).
func openWebGPU() (b backend.Backend, info gpuInfo, err error) {
	if g := js.Global().Get("navigator").Get("gpu"); !g.Truthy() {
		return nil, info, errors.New("navigator.gpu is missing: this browser, or this context, has no WebGPU")
	}
	// A bug in the JS binding panics; that must cost the GPU, not the worker.
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("opening the WebGPU device failed: %v", r)
		}
	}()
	wb, err := webgpu.Open(webgpu.Options{})
	if errors.Is(err, webgpu.ErrNoAdapter) {
		return nil, info, errors.New("navigator.gpu.requestAdapter() found no adapter: WebGPU is disabled, or this GPU is blocklisted")
	}
	if err != nil {
		return nil, info, err
	}
	a := wb.Device().Adapter
	return wb, gpuInfo{Adapter: a.Name, Software: a.Software}, nil
}
