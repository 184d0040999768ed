//go:build !wasip1 && !js

package main

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/moderuntime/mode/internal/wasmsimd"
)

// simdHost is the wazero side of the guest's "modesimd" imports: load
// compiles the kernel module the guest hands over (internal/wasmsimd),
// instantiated on the guest's own memory, and the kernel imports forward
// to its exports, so the kernels compute on the guest's buffers in place.
// With on false (MODE_WASM_SIMD=off) load declines and the guest keeps
// its pure-Go kernels: for comparisons.
type simdHost struct {
	rt      wazero.Runtime
	on      bool
	kernels map[string]api.Function
}

// kernelArgs is each kernel's number of i32 arguments.
var kernelArgs = map[string]int{wasmsimd.KernelQ8_0: 9, wasmsimd.KernelQ4_0: 9, wasmsimd.KernelQ4_K: 12,
	wasmsimd.KernelF32: 7, wasmsimd.KernelF16: 7, wasmsimd.KernelScores: 6, wasmsimd.KernelWeightedSum: 6,
	wasmsimd.KernelExp: 4, wasmsimd.KernelSiLU: 3, wasmsimd.KernelQ16: 5,
	wasmsimd.KernelRMSNorm: 5, wasmsimd.KernelRMSNormLanes: 5, wasmsimd.KernelSoftmax: 3}

func instantiateSIMDHost(ctx context.Context, rt wazero.Runtime, on bool) error {
	h := &simdHost{rt: rt, on: on, kernels: map[string]api.Function{}}
	i32 := api.ValueTypeI32
	b := rt.NewHostModuleBuilder("modesimd").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(h.load), []api.ValueType{i32, i32}, []api.ValueType{i32}).Export("load")
	for name, n := range kernelArgs {
		b = b.NewFunctionBuilder().WithGoModuleFunction(h.forward(name), slices.Repeat([]api.ValueType{i32}, n), nil).Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// load answers as internal/wasmsimd's load codes: 1 loaded, 0 declined,
// -2 the module failed (wazero always has SIMD128).
func (h *simdHost) load(ctx context.Context, m api.Module, stack []uint64) {
	stack[0] = api.EncodeI32(h.loadModule(ctx, m, api.DecodeU32(stack[0]), api.DecodeU32(stack[1])))
}

func (h *simdHost) loadModule(ctx context.Context, m api.Module, p, n uint32) int32 {
	if !h.on {
		return 0
	}
	b, ok := m.Memory().Read(p, n)
	if !ok {
		return -2
	}
	code, err := h.rt.CompileModule(ctx, append([]byte(nil), b...))
	if err == nil {
		var k api.Module
		if k, err = h.rt.InstantiateModule(ctx, code, wazero.NewModuleConfig().WithName("modesimd-kernels")); err == nil {
			for name := range h.kernels {
				delete(h.kernels, name)
			}
			for name := range kernelArgs {
				if f := k.ExportedFunction(name); f != nil {
					h.kernels[name] = f
				} else {
					err = fmt.Errorf("no export %q", name)
				}
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mode: SIMD128 kernels unavailable: %v\n", err)
		return -2
	}
	return 1
}

// forward calls the kernel name with the guest's arguments, which are
// also the kernel's: no copies, as both work on the guest's memory.
func (h *simdHost) forward(name string) api.GoModuleFunction {
	return api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
		f := h.kernels[name]
		if f == nil {
			panic("modesimd." + name + " called before a successful load")
		}
		if err := f.CallWithStack(ctx, stack); err != nil {
			panic(fmt.Errorf("modesimd.%s: %w", name, err))
		}
	})
}
