// Package tensor owns the in-memory form of a weight tensor: its element
// type, shape and raw little-endian bytes, plus conversions between the
// storage formats (f32, f16, bf16, and the block-quantised q8_0, q4_0 and
// q4_k) and float32.
//
// A Tensor is a value the importers produce and the backends consume.
// Quantize converts to any format and RMSError measures what it cost; the
// layouts are documented in quant.go, and are designed so that a GPU kernel
// can read each array as u32 words. Matrix views a matrix in f16 or a block
// format for CPU kernels that compute row dot products from the stored form
// directly: this package is the one place that knows the layouts and the
// dequantisation arithmetic. Its Dot and Dot4 sum in a fixed order (the
// CPU's exact path); MulQuantized is the fast path's product of block rows
// with activations quantised once per op (Q16Rows; several of them can share
// one allocation, Q16Arena), computed in integers by package vec.
package tensor
