// Package shaders owns the WGSL compute kernels of the WebGPU backend and a
// plain-Go reference twin of each.
//
// A kernel is a Kernel descriptor (file, entry point, binding kinds) whose
// WGSL text Source specialises: WGSL override constants are not available
// through every binding, so the weight format and sizes such as the tokens
// per workgroup are substituted into the text instead, and each
// specialisation is a separate pipeline. Spec.F16 selects f16-arithmetic
// variants of the matrix kernels (dot_f16.wgsl, tile_f16.wgsl) for devices
// whose WGSL compiler has f16; Spec.Subgroups has the lanes of the decode
// matrix-vector kernels meet through subgroup shuffles (lanes_sg.wgsl)
// rather than in workgroup memory (lanes_wg.wgsl) on devices with the
// subgroups feature. Every kernel's parameters are a
// uniform struct of u32 words built by the *Params types here, so the
// backend and the tests lay them out the same way.
//
// The twins (twin_*.go) compute what the kernels compute, element for
// element, from the same parameters and buffers; the package's tests run
// each kernel on a real adapter and compare. Nothing here needs cgo: the
// package builds for GOOS=js too.
package shaders
