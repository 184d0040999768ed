package sample

// Uniform returns the n-th random number of the stream selected by seed, a
// float32 in [0, 1) with 24 random bits.
//
// The generator is counter based rather than stateful so that any draw can
// be recomputed from (seed, n) alone, and it uses only 32-bit integer
// operations so that a WGSL shader (which has no 64-bit integers) can
// reproduce it bit for bit:
//
//	k = pcgHash(pcgHash(lo32(seed)) ^ hi32(seed))
//	h = pcgHash(pcgHash(n ^ k) ^ k)
//	u = float32(h >> 8) / 2^24
//
// The seed enters both rounds through its digest k. With the seed only
// XORed into the counter, as in pcgHash(pcgHash(n ^ lo) ^ hi), every
// stream would be the same sequence of numbers read in another order:
// seeds 1000 and 1001 would draw the same 128 numbers in their first 128
// draws, so sequences sampled with nearby seeds share their randomness.
//
// Keeping 24 bits makes the conversion to float32 exact, so u never rounds
// up to 1.
func Uniform(seed uint64, n uint32) float32 {
	k := seedKey(seed)
	h := pcgHash(pcgHash(n^k) ^ k)
	return float32(h>>8) * (1.0 / 16777216.0)
}

// seedKey is the 32-bit digest of a 64-bit seed that keys both hash rounds.
func seedKey(seed uint64) uint32 {
	return pcgHash(pcgHash(uint32(seed)) ^ uint32(seed>>32))
}

// pcgHash is the PCG-RXS-M-XS 32-bit hash recommended by Jarzynski and
// Olano, "Hash Functions for GPU Rendering" (JCGT 2020). All arithmetic
// wraps modulo 2^32, as it does in WGSL u32.
func pcgHash(v uint32) uint32 {
	state := v*747796405 + 2891336453
	word := ((state >> ((state >> 28) + 4)) ^ state) * 277803737
	return (word >> 22) ^ word
}
