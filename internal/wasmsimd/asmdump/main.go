package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"

	"github.com/moderuntime/mode/internal/wasmsimd"
	"github.com/tetratelabs/wazero"
)

func main() {
	kernel := flag.String("kernel", "", "disassemble this kernel (an export name: q4_0, q8_0, …) with objdump")
	out := flag.String("o", "", "also write the module's whole machine code to this file")
	flag.Parse()
	if err := run(*kernel, *out); err != nil {
		fmt.Fprintln(os.Stderr, "asmdump:", err)
		os.Exit(1)
	}
}

type fnCode struct {
	name      string
	off, size uint64
}

func run(kernel, out string) error {
	code, fns, err := compiled()
	if err != nil {
		return err
	}
	if out != "" {
		if err := os.WriteFile(out, code, 0o644); err != nil {
			return err
		}
	}
	if kernel == "" {
		for _, f := range fns {
			fmt.Printf("%-10s %6d %6d\n", f.name, f.off, f.size)
		}
		return nil
	}
	for _, f := range fns {
		if f.name != kernel {
			continue
		}
		tmp, err := os.CreateTemp("", "asmdump-*.bin")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if _, err := tmp.Write(code); err != nil {
			return err
		}
		tmp.Close()
		arch := "i386:x86-64"
		if runtime.GOARCH == "arm64" {
			arch = "aarch64"
		}
		cmd := exec.Command("objdump", "-D", "-b", "binary", "-m", arch,
			"--start-address="+strconv.FormatUint(f.off, 10), "--stop-address="+strconv.FormatUint(f.off+f.size, 10), tmp.Name())
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}
	return fmt.Errorf("no kernel %q", kernel)
}

// compiled returns the module's machine code and where each exported
// function's code lies in it.
func compiled() ([]byte, []fnCode, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "asmdump-cache-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, nil, err
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, wasmsimd.Module(wasmsimd.GuestModule, "memory"))
	if err != nil {
		return nil, nil, fmt.Errorf("compiling the kernel module: %w", err)
	}
	var file string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			file = p
		}
		return nil
	})
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("reading wazero's cache file: %w", err)
	}
	// magic, a length-prefixed version, the function count and offsets,
	// the code's length and the code
	if !bytes.HasPrefix(b, []byte("WAZEVO")) || len(b) < 7 {
		return nil, nil, errors.New("the cache file is not wazero's compiled-module layout (a wazero other than v1.12?)")
	}
	b = b[6:]
	b = b[1+int(b[0]):]
	n := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	offs := make([]uint64, n)
	for i := range offs {
		offs[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	b = b[8*n:]
	size := binary.LittleEndian.Uint64(b)
	code := b[8 : 8+size]
	var fns []fnCode
	for name, def := range cm.ExportedFunctions() {
		i := int(def.Index()) // no imported functions: index = position
		end := size
		if i+1 < n {
			end = offs[i+1]
		}
		fns = append(fns, fnCode{name, offs[i], end - offs[i]})
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].off < fns[j].off })
	return code, fns, nil
}
