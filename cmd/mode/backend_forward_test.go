//go:build !webgpu && !wasip1 && !js

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestFindWebGPUCommand: mode-webgpu beside mode wins over one on PATH,
// PATH's is taken when none is beside, and without either the error says
// how to build it.
func TestFindWebGPUCommand(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the fake commands are shell scripts")
	}
	beside, onPath, empty := t.TempDir(), t.TempDir(), t.TempDir()
	for _, dir := range []string{beside, onPath} {
		writeScript(t, filepath.Join(dir, webgpuCommand), "exit 0")
	}
	for _, tt := range []struct {
		dir, path, want, wantErr string
	}{
		{beside, onPath, filepath.Join(beside, webgpuCommand), ""},
		{empty, onPath, filepath.Join(onPath, webgpuCommand), ""},
		{empty, empty, "", "go build -tags webgpu -o " + filepath.Join(empty, webgpuCommand) + " ./cmd/mode"},
	} {
		t.Setenv("PATH", tt.path)
		got, err := findWebGPUCommand(tt.dir)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("dir %s, PATH %s: error %v, want one containing %q", tt.dir, tt.path, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("dir %s, PATH %s: %q, %v; want %q", tt.dir, tt.path, got, err, tt.want)
		}
	}
}

// TestRunForwarded: the forwarded command gets the subcommand and every
// argument as given, the same standard streams, and its exit status
// becomes mode's.
func TestRunForwarded(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the fake commands are shell scripts")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, webgpuCommand)
	writeScript(t, script, `printf '%s|' "$@"; echo; cat; echo "to stderr" >&2; exit ${MODE_TEST_EXIT:-0}`)
	args := []string{"-m", "a model with spaces", "--backend", "webgpu", "-p", ""}
	for _, code := range []int{0, 3} {
		t.Setenv("MODE_TEST_EXIT", strconv.Itoa(code))
		var o, e bytes.Buffer
		err := runForwarded(script, "chat", args, strings.NewReader("hello\n"), &o, &e)
		if want := "chat|-m|a model with spaces|--backend|webgpu|-p||\nhello\n"; o.String() != want {
			t.Errorf("stdout %q, want %q", o.String(), want)
		}
		if e.String() != "to stderr\n" {
			t.Errorf("stderr %q", e.String())
		}
		var ec exitCode
		switch {
		case code == 0 && err != nil:
			t.Errorf("exit 0: %v", err)
		case code != 0 && (!errors.As(err, &ec) || int(ec) != code):
			t.Errorf("exit %d: got %v, want exitCode(%d)", code, err, code)
		}
	}
}

// TestWebGPUNotFound: without mode-webgpu anywhere, --backend webgpu
// fails at once, before loading the model, and says how to build it.
func TestWebGPUNotFound(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	code, _, stderr := runMode("run", "-m", "/nonexistent/model.bin", "--backend", "webgpu")
	if code != 1 || !strings.Contains(stderr, "go build -tags webgpu") || strings.Contains(stderr, "nonexistent") {
		t.Errorf("status %d, stderr %q: want 1 and how to build mode-webgpu, before the model is opened", code, stderr)
	}
}

// TestWebGPUForwardEndToEnd builds mode as the Makefile does (pure Go)
// and mode-webgpu beside it, and runs stories260K greedily through
// `mode run --backend webgpu` (on Mesa lavapipe here): the story is the
// CPU backend's.
func TestWebGPUForwardEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mode twice")
	}
	model := stories(t)
	dir := t.TempDir()
	for _, b := range []struct {
		name string
		env  []string
		args []string
	}{
		{"mode", []string{"CGO_ENABLED=0"}, nil},
		{webgpuCommand, nil, []string{"-tags", "webgpu"}},
	} {
		cmd := exec.Command("go", append(append([]string{"build"}, b.args...), "-o", filepath.Join(dir, b.name), ".")...)
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b.name, err, out)
		}
	}
	if out, err := exec.Command("go", "tool", "nm", filepath.Join(dir, "mode")).Output(); err != nil {
		t.Fatal(err)
	} else if bytes.Contains(out, []byte("wgpuCreateInstance")) {
		t.Error("the pure-Go mode links wgpu-native")
	}
	story := func(backend string) string {
		t.Helper()
		var o, e bytes.Buffer
		cmd := exec.Command(filepath.Join(dir, "mode"), "run", "-m", model, "-n", "40", "--ids", "--backend", backend)
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			if backend == "webgpu" && strings.Contains(e.String(), "no adapter") && os.Getenv("CI") != "true" {
				t.Skip("no WebGPU adapter: ", e.String())
			}
			t.Fatalf("mode run --backend %s: %v\n%s", backend, err, e.String())
		}
		return o.String()
	}
	cpu, gpu := story("cpu"), story("webgpu")
	if !strings.HasPrefix(cpu, "Once upon a time, there was a little girl named Lily.") {
		t.Fatalf("the CPU's story: %q", cpu)
	}
	if gpu != cpu {
		t.Errorf("--backend webgpu wrote\n%q\nthe CPU\n%q", gpu, cpu)
	}
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}
