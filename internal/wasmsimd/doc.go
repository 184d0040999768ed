// Package wasmsimd is the engine's SIMD128 kernel module for the wasm
// builds. The Go compiler emits no WebAssembly SIMD, so the hot integer
// matrix products of the CPU path (q8_0, q4_0 and q4_k weights against
// tensor.Q16Rows activations), with the f32/f16 products, attention's two
// loops and its softmax, RMSNorm, SwiGLU's exponentials and the
// activations' quantisation, are written here against a small encoder of
// the few instructions they need, and Module assembles them into a
// separate WebAssembly module that imports the Go instance's memory.
//
// The host instantiates that module beside the Go one (web/worker.js in
// the browser, cmd/mode under wazero) and forwards the Go side's
// "modesimd" imports to its exports, so the kernels compute on the
// engine's own buffers with no copies. Ready asks the host to do so once
// (the modesimd.load import, handed the module's bytes); without SIMD128,
// or on a host that declines, the engine keeps runtime/vec's pure-Go
// kernels, whose bits the SIMD ones reproduce exactly. Every js/wasm or
// wasip1 host of a binary that links runtime/tensor must provide the
// modesimd imports, if only as stubs whose load returns 0.
package wasmsimd
