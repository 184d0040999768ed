package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Q8_0FromBlocks builds a q8_0 [rows, cols] matrix from its blocks given
// apart: one scale per block of 32 elements and the quants in element
// order, so that element i is scales[i/32]·q[i]. This is how an importer
// re-lays out ggml's Q8_0 without requantising: the scales must be exactly
// representable as f16, as ggml's f16 scales widened to float32 are, so
// that nothing is rounded.
func Q8_0FromBlocks(name string, rows, cols int, scales []float32, q []int8) (*Tensor, error) {
	t, a, err := fromBlocks(name, Q8_0, rows, cols, scales, len(q))
	if err != nil {
		return nil, err
	}
	for i, v := range q {
		a.qs[i] = byte(v)
	}
	return t, nil
}

// Q4_0FromBlocks builds a q4_0 [rows, cols] matrix from one scale per block
// of 32 elements and the 4-bit quants (0 to 15) in element order, unpacked,
// so that element i is scales[i/32]·(nibbles[i]−8). The scales must be
// exactly representable as f16 (see Q8_0FromBlocks).
func Q4_0FromBlocks(name string, rows, cols int, scales []float32, nibbles []uint8) (*Tensor, error) {
	t, a, err := fromBlocks(name, Q4_0, rows, cols, scales, len(nibbles))
	if err != nil {
		return nil, err
	}
	for i, v := range nibbles {
		if v > 15 {
			return nil, fmt.Errorf("tensor %s: quant %d is %d, beyond 4 bits", name, i, v)
		}
	}
	for b := range len(scales) {
		n := (*[qk]uint8)(nibbles[qk*b:])
		dst := (*[qk / 2]byte)(a.qs[qk/2*b:])
		for j := range dst {
			dst[j] = n[j] | n[j+qk/2]<<4
		}
	}
	return t, nil
}

// FromInterleaved builds a q8_0 or q4_0 [rows, cols] matrix from its
// blocks as ggml stores them: each block's f16 scale, then its quants (32
// signed bytes for q8_0; 16 bytes for q4_0, byte j holding element j in
// its low nibble and j+16 in its high one, as this package packs them).
// It lays them out as this package does, the scales then the quants, and
// gives what Q8_0FromBlocks and Q4_0FromBlocks give for the same blocks
// unpacked — including the refusal of a scale that is NaN or infinite —
// at the cost of a copy: a GGUF's quantised tensors need no unpacking.
func FromInterleaved(name string, d DType, rows, cols int, blocks []byte) (*Tensor, error) {
	qb := 0
	switch d {
	case Q8_0:
		qb = qk
	case Q4_0:
		qb = qk / 2
	default:
		return nil, fmt.Errorf("tensor %s: no interleaved blocks for %v", name, d)
	}
	size, err := ByteSize(d, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	nb := rows * cols / qk
	if len(blocks) != nb*(2+qb) {
		return nil, fmt.Errorf("tensor %s: %v %d×%d is %d bytes of blocks, have %d", name, d, rows, cols, nb*(2+qb), len(blocks))
	}
	t := &Tensor{Name: name, DType: d, Shape: []int{rows, cols}, Data: make([]byte, size)}
	a := splitArrays(d, t.Data, nb)
	for b := range nb {
		blk := blocks[(2+qb)*b : (2+qb)*(b+1)]
		if h := binary.LittleEndian.Uint16(blk); h&0x7c00 == 0x7c00 {
			return nil, fmt.Errorf("tensor %s: block %d scale %v is not a finite f16 value", name, b, F16ToF32(h))
		}
		copy(a.scales[2*b:2*b+2], blk[:2])
		copy(a.qs[qb*b:qb*(b+1)], blk[2:])
	}
	return t, nil
}

// fromBlocks checks the geometry of a q8_0 or q4_0 matrix built from
// nscales scales and nq quants, allocates it and stores the scales, leaving
// the quants for the caller.
func fromBlocks(name string, d DType, rows, cols int, scales []float32, nq int) (*Tensor, blockArrays, error) {
	size, err := ByteSize(d, rows, cols)
	if err != nil {
		return nil, blockArrays{}, fmt.Errorf("tensor %s: %w", name, err)
	}
	n := rows * cols
	if len(scales) != n/qk || nq != n {
		return nil, blockArrays{}, fmt.Errorf("tensor %s: %v %d×%d needs %d scales and %d quants, have %d and %d",
			name, d, rows, cols, n/qk, n, len(scales), nq)
	}
	t := &Tensor{Name: name, DType: d, Shape: []int{rows, cols}, Data: make([]byte, size)}
	a := splitArrays(d, t.Data, len(scales))
	for b, s := range scales {
		h := F32ToF16(s)
		// Comparing bits tells −0 from 0, so the stored block is the given
		// one exactly; NaN and Inf would round-trip but poison the block.
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) || math.Float32bits(F16ToF32(h)) != math.Float32bits(s) {
			return nil, blockArrays{}, fmt.Errorf("tensor %s: block %d scale %v is not a finite f16 value", name, b, s)
		}
		binary.LittleEndian.PutUint16(a.scales[2*b:], h)
	}
	return t, a, nil
}

// ggmlQ4_KBytes is the size of one of ggml's Q4_K super-blocks: f16 d,
// f16 dmin, twelve bytes of 6-bit sub-block scales and minimums, and 128
// bytes of nibbles.
const ggmlQ4_KBytes = 4 + 12 + qkK/2

// Q4_KFromGGML builds a q4_k [rows, cols] matrix (cols a multiple of 256)
// from super-blocks as ggml stores its Q4_K: f16 d and dmin, which are
// kept as they are (this package's dm word holds the same four bytes);
// eight 6-bit sub-block scales and eight 6-bit minimums packed into twelve
// bytes (ggml's get_scale_min_k4: pairs 0–3 in the low six bits of bytes
// 0–3 and 4–7, pairs 4–7 in the nibbles of bytes 8–11 with their top two
// bits in the spare bits of bytes 0–7), which become u8s; and 128 bytes of
// nibbles, each 32 holding sub-block 2c in their low nibbles and 2c+1 in
// their high ones, which are moved to this package's order. Every number
// is kept, so the matrix dequantises to ggml's values bit for bit; a d or
// dmin that is NaN or infinite is refused.
func Q4_KFromGGML(name string, rows, cols int, blocks []byte) (*Tensor, error) {
	size, err := ByteSize(Q4_K, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	nb := rows * cols / qkK
	if len(blocks) != nb*ggmlQ4_KBytes {
		return nil, fmt.Errorf("tensor %s: Q4_K %d×%d is %d bytes of blocks, have %d", name, rows, cols, nb*ggmlQ4_KBytes, len(blocks))
	}
	t := &Tensor{Name: name, DType: Q4_K, Shape: []int{rows, cols}, Data: make([]byte, size)}
	a := splitArrays(Q4_K, t.Data, nb)
	for b := range nb {
		blk := (*[ggmlQ4_KBytes]byte)(blocks[ggmlQ4_KBytes*b:])
		for i, what := range [2]string{"d", "dmin"} {
			if h := binary.LittleEndian.Uint16(blk[2*i:]); h&0x7c00 == 0x7c00 {
				return nil, fmt.Errorf("tensor %s: super-block %d %s %v is not a finite f16 value", name, b, what, F16ToF32(h))
			}
		}
		copy(a.scales[4*b:4*b+4], blk[:4])
		sm := (*[12]byte)(blk[4:])
		sc := (*[qkK / qk]byte)(a.sub[qkK/qk*b:])
		mn := (*[qkK / qk]byte)(a.mins[qkK/qk*b:])
		for j := range 4 {
			sc[j], mn[j] = sm[j]&63, sm[j+4]&63
			sc[j+4] = sm[j+8]&15 | sm[j]>>6<<4
			mn[j+4] = sm[j+8]>>4 | sm[j+4]>>6<<4
		}
		src := (*[qkK / 2]byte)(blk[16:])
		q := (*[qkK / 2]byte)(a.qs[qkK/2*b:])
		for s := range qkK / qk {
			// Sub-block s's element j: ggml's byte 32·(s/2) + j, low
			// nibble for even s; here byte 16s + j mod 16, low nibble
			// for j < 16.
			in := src[qk*(s/2) : qk*(s/2)+qk]
			shift := 4 * (s % 2)
			for j := range qk / 2 {
				q[qk/2*s+j] = in[j]>>shift&15 | (in[j+qk/2]>>shift&15)<<4
			}
		}
	}
	return t, nil
}
