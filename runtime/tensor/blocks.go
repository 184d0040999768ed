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
