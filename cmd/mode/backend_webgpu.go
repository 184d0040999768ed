//go:build webgpu && !wasip1 && !js

package main

import (
	"io"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/webgpu"
)

// This is mode-webgpu, mode built with -tags webgpu: cgo and wgpu-native
// linked in, the WebGPU backend run in this process.
func openWebGPU() (backend.Backend, error) { return webgpu.Open(webgpu.Options{}) }

// forwardsWebGPU: --backend webgpu runs here.
const forwardsWebGPU = false

func forwardWebGPU(string, []string, io.Reader, io.Writer, io.Writer) error {
	panic("mode-webgpu runs --backend webgpu itself")
}
