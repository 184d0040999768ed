//go:build !webgpu && !wasip1 && !js

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"

	"github.com/moderuntime/mode/runtime/backend"
)

// The default build of mode is pure Go (CGO_ENABLED=0 in the Makefile): no
// libc, no Vulkan loader, no wgpu-native. The WebGPU backend is cgo and
// wgpu-native, so it lives in a second build of this command,
// mode-webgpu (go build -tags webgpu), which `mode run` and `mode chat`
// run in their place when asked for --backend webgpu. Linking it here
// cost every CPU run about 6 MiB of resident executable pages
// (RATIONALE.md, "Peak RSS of the smallest pack").

// webgpuCommand is the name of the build of mode with WebGPU linked in.
const webgpuCommand = "mode-webgpu"

// forwardsWebGPU: --backend webgpu runs in webgpuCommand.
const forwardsWebGPU = true

func openWebGPU() (backend.Backend, error) {
	return nil, errors.New("--backend webgpu: runs in " + webgpuCommand + ", not in this build")
}

// forwardWebGPU runs `mode-webgpu cmd args...` on the same standard
// streams, the one beside this executable or else the one on PATH, and
// returns its exit status as this command's. An interrupt reaches the
// child too (the terminal signals the whole process group), so this
// process waits for it rather than dying first.
func forwardWebGPU(cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--backend webgpu: %w", err)
	}
	path, err := findWebGPUCommand(filepath.Dir(self))
	if err != nil {
		return err
	}
	return runForwarded(path, cmd, args, stdin, stdout, stderr)
}

// runForwarded is forwardWebGPU once the command is found.
func runForwarded(path, cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := exec.Command(path, append([]string{cmd}, args...)...)
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if code := ee.ExitCode(); code > 0 {
			return exitCode(code) // it printed its own error
		}
		return fmt.Errorf("--backend webgpu: %s: %w", path, err) // killed by a signal
	}
	if err != nil {
		return fmt.Errorf("--backend webgpu: %w", err)
	}
	return nil
}

// findWebGPUCommand is webgpuCommand in dir, else on PATH.
func findWebGPUCommand(dir string) (string, error) {
	sibling := filepath.Join(dir, webgpuCommand)
	if fi, err := os.Stat(sibling); err == nil && !fi.IsDir() {
		return sibling, nil
	}
	if p, err := exec.LookPath(webgpuCommand); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("--backend webgpu: this mode is the pure-Go build, which runs WebGPU through %s, "+
		"found neither beside it (%s) nor on PATH: build it with `make build` "+
		"or `go build -tags webgpu -o %s ./cmd/mode` (cgo, and a Vulkan, Metal or D3D12 driver to run)",
		webgpuCommand, sibling, sibling)
}
