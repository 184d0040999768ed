// Package backend defines the interface between the engine, which owns the
// model graph (which op runs when, on which rows), and a compute device,
// which owns memory and kernels. The CPU backend (runtime/cpu) is the
// reference implementation; the WebGPU backend implements the same ops with
// WGSL kernels.
//
// Ops are asynchronous by contract: a device may queue them and report a
// failure only at the next Read or Sync, as WebGPU does. Shapes are the
// engine's responsibility and are validated once, when a model is loaded.
package backend
