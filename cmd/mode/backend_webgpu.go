//go:build !wasip1 && !js

package main

import (
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/webgpu"
)

func openWebGPU() (backend.Backend, error) { return webgpu.Open(webgpu.Options{}) }
