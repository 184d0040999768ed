// Package tensor owns the in-memory form of a weight tensor: its element
// type, shape and raw little-endian bytes, plus conversions between the
// storage formats (f32, f16, bf16, and the block-quantised formats) and
// float32.
//
// A Tensor is a value the importers produce and the backends consume; it
// carries no compute of its own beyond decoding.
package tensor
