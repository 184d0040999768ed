// Package cpu is the reference Backend: pure Go, no cgo, the same code on
// native, js/wasm and wasip1. Matrix products are split across goroutines
// by output rows; every dot product sums in input order so results are
// reproducible and match llama2.c's run.c bit for bit on x86-64.
//
// f32 and bf16 weights are held as float32. f16, q8_0, q4_0 and q4_k
// matrices stay in their stored form and the matrix products compute from
// it directly through tensor.Matrix, block by block, never decoding a whole
// matrix; embedding rows are dequantised as they are gathered, and vectors
// (norms, biases) are decoded at upload. The quantised kernels have a fixed
// summation order too, so their results are reproducible across thread
// counts, though they differ from f32 over the dequantised weights by
// rounding.
package cpu
