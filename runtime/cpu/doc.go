// Package cpu is the reference Backend: pure Go, no cgo, the same code on
// native, js/wasm and wasip1, with AVX2 and AVX-512 assembly for its inner
// loops on amd64 (package vec).
//
// It has two paths. With Options.Exact, every dot product sums in input
// order with each product rounded to float32, so results match llama2.c's
// run.c bit for bit on x86-64; the parity tests run there. By default the
// fast path computes the same products reassociated: f32 dot products in
// several accumulators (eight-lane fused multiply-adds on AVX2), and
// products with q8_0, q4_0 and q4_k weights in integers, from activations
// quantised to 16 bits in blocks of 32 once per op (tensor.Q16Rows, split
// across the pool when there are several tokens), with one scale multiply
// per block; RMSNorm's Σx² in eight lanes (vec.RMSNormLanes); a prefill
// multiplies them in tiles of two weight rows by four
// tokens (q8_0, q4_k) or a row at a time for two tokens (q4_0), each
// weight block unpacked once per tile (AVX-512 with VNNI where the machine
// has it, AVX2 otherwise, the same bits either way). Its error against the
// exact path is bounded
// per op (RATIONALE.md, "Exact and fast CPU paths"); both paths give the
// same bits whatever the thread count and however tokens are batched.
//
// f32 and bf16 weights are held as float32. f16, q8_0, q4_0 and q4_k
// matrices stay in their stored form and the matrix products compute from
// it directly through tensor.Matrix, row by row, never decoding a whole
// matrix; embedding rows are dequantised as they are gathered, and vectors
// (norms, biases) are decoded at upload.
//
// Large ops are split by output rows (attention by head) across a pool of
// goroutines started by New, which spin briefly and then park between ops;
// each op claims chunks from an atomic counter. On the fast path the routed
// experts of a layer run together (moeFast): gate and up of all of them in
// one hand-off to the pool, down and the weighted sums in another, and
// SwiGLU and attention's softmax use vec.Exp. The ops keep their scratch memory in the Backend,
// so decoding allocates nothing once it has grown; a Backend therefore runs
// one op at a time. Close stops the pool.
//
// Where more goroutines bring no more cores (Go on js/wasm runs on one
// thread), other instances of the engine can take shares of the routed
// experts (SetPeers, PeerServer; peers.go): each routed expert's hidden
// units are split between the instances on the down format's blocks, each
// computes its share of a sparse layer for the same input and routing,
// and the main instance adds the peers' sums to its own. That
// reassociates the down projection's sum, so it is part of the fast path
// only, within the bound RATIONALE.md states ("More than one core").
package cpu
