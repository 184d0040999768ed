// Package vec holds the inner loops of the CPU backend's fast path: f32 dot
// products (alone and in tiles of several rows and tokens) and axpy, f16
// decoding, and dot products of q8_0, q4_0 and q4_k weight rows with
// activations quantised to int16 in blocks of 32, multiplied in integers
// and scaled once per block: one weight row at a time, four, or (for
// prefill) tiles of two rows by up to eight tokens that unpack each weight
// block once for all of them; the quantiser of those activations and the
// layouts the kernels read them in (DupQ16 for q8_0's AVX-512 tiles,
// PrepRows for its one row at a time, PrepQ4_0 for every q4_0 kernel:
// bytes for byte multiply-adds, with the nibbles' offsets); and a float32
// exp
// (Exp, ExpShift, SiLUMul) for the fast path's softmax and SiLU, pure Go
// everywhere; attention's scores and weighted sums over cache rows, one
// head at a time (Scores, WeightedSum) or several heads over each block of
// rows in one call (ScoresHeads, AxpyHeads), an f16 cache's rows decoded
// for them (HalfRows); the softmax's division, maximum and scaling
// (DivMax, Max, Scale); and RMSNorm, in run.c's order for the exact path
// (RMSNorm) and with its sum in eight lanes for the fast one
// (RMSNormLanes).
//
// On amd64 with AVX2 and FMA they run in assembly, chosen at run time; the
// pure-Go versions serve everything else (wasm, other architectures, or any
// build with the purego tag). The integer kernels are exact, so the two
// versions agree bit for bit (the Go code sums in the assembly's lanes); the
// f32 kernels differ by rounding (the assembly fuses multiply-adds).
package vec
