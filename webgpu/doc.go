// Package webgpu runs the ops of runtime/backend on a WebGPU device through
// github.com/cogentcore/webgpu: natively (wgpu-native over Vulkan, Metal,
// D3D12 or GL; tested on Mesa lavapipe) and under GOOS=js in a browser.
//
// It owns device acquisition (sized to the adapter's limits, with
// shader-f16 and subgroups where the adapter has them and the WGSL
// compiler takes them: Device.F16, Device.Subgroups; Options.NoSubgroups
// or MODE_WEBGPU_SUBGROUPS=off keep the workgroup-memory path), a pipeline
// cache keyed by kernel and specialisation, a pool of scratch buffers, the
// recording of ops into one queue submission per forward step, bounded
// waits for the device (errors surface at Sync and Read, never as a hang),
// the splitting of weights larger than one binding into pages, and the
// expert pool: routed experts' matrices written straight into extents of
// shared pages, found by the MoE kernels through a per-layer table, so that
// each expert is on the device once and a layer's experts may exceed one
// binding. When it records a decoded token it fuses neighbouring ops to
// save dispatches (a norm into the matvec that reads it, rope and cache
// store into attention, a small head and the greedy argmax, a one-
// workgroup router and its top-k), setting aside and replaying the work a fused
// kernel cannot also do; Backend.unfused turns that off for comparison.
// The kernels themselves are in package shaders.
package webgpu
