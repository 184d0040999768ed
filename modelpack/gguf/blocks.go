package gguf

import "fmt"

// Q8_0Blocks splits a Q8_0 tensor into its per-block scales (one per 32
// elements, the f16 scale widened exactly to float32) and its quants in
// element order, so that element i is q[i]*scales[i/32]. Nothing is
// requantised: re-packing these loses nothing.
func Q8_0Blocks(raw RawTensor) (scales []float32, q []int8, err error) {
	n, err := blocksOf(raw, TypeQ8_0)
	if err != nil {
		return nil, nil, err
	}
	scales, q = make([]float32, n/32), make([]int8, n)
	for b := range scales {
		blk := raw.Data[34*b : 34*b+34]
		scales[b] = half(blk)
		for j := range 32 {
			q[32*b+j] = int8(blk[2+j])
		}
	}
	return scales, q, nil
}

// Q4_0Blocks splits a Q4_0 tensor into its per-block scales and its 4-bit
// quants (0..15) in element order, so that element i is
// (q[i]-8)*scales[i/32]. ggml packs element j of a block with element j+16
// in one byte; the returned quants are unpacked.
func Q4_0Blocks(raw RawTensor) (scales []float32, q []uint8, err error) {
	n, err := blocksOf(raw, TypeQ4_0)
	if err != nil {
		return nil, nil, err
	}
	scales, q = make([]float32, n/32), make([]uint8, n)
	for b := range scales {
		blk := raw.Data[18*b : 18*b+18]
		scales[b] = half(blk)
		for j := range 16 {
			q[32*b+j] = blk[2+j] & 0xF
			q[32*b+16+j] = blk[2+j] >> 4
		}
	}
	return scales, q, nil
}

// CheckBlocks checks that raw is a whole tensor of type want, its bytes
// what its dims need, and returns its element count: what a caller that
// takes a block format's bytes as they are checks first.
func CheckBlocks(raw RawTensor, want GGMLType) (int, error) { return blocksOf(raw, want) }

func blocksOf(raw RawTensor, want GGMLType) (int, error) {
	if raw.Type != want {
		return 0, fmt.Errorf("gguf: tensor %q is %s, not %s", raw.Name, raw.Type, want)
	}
	n, err := raw.check()
	if err != nil {
		return 0, fmt.Errorf("gguf: %w", err)
	}
	return n, nil
}

// ExpertSlice returns expert e's matrix from a stacked-experts tensor with
// Dims {cols, rows, experts}: Dims {cols, rows} and the e-th of the equal
// byte runs. Rows are whole blocks, so this is a byte slice of raw.Data and
// shares its memory.
func ExpertSlice(raw RawTensor, e int) (RawTensor, error) {
	if len(raw.Dims) != 3 {
		return RawTensor{}, fmt.Errorf("gguf: tensor %q has dimensions %v; stacked experts have three", raw.Name, raw.Dims)
	}
	if _, err := raw.check(); err != nil {
		return RawTensor{}, fmt.Errorf("gguf: %w", err)
	}
	n := raw.Dims[2]
	if e < 0 || e >= n {
		return RawTensor{}, fmt.Errorf("gguf: tensor %q: expert %d out of range 0..%d", raw.Name, e, n-1)
	}
	per := len(raw.Data) / n
	return RawTensor{
		Name: fmt.Sprintf("%s[%d]", raw.Name, e),
		Type: raw.Type,
		Dims: []int{raw.Dims[0], raw.Dims[1]},
		Data: raw.Data[e*per : (e+1)*per : (e+1)*per],
	}, nil
}
