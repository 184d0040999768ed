package tensor

import "fmt"

// Sub copies rows [r0, r1) and columns [c0, c1) of matrix t into a tensor
// of its own memory, in t's format. For a block format c0 and c1 must be
// multiples of its block size, so that whole blocks are copied and every
// value keeps its stored form: a product over the sub-matrix's blocks is
// the same integer arithmetic as over the same blocks of t. It splits a
// routed expert between engine instances (runtime/cpu's peers), rows of
// gate and up and the matching columns of down.
func Sub(t *Tensor, r0, r1, c0, c1 int) (*Tensor, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	rows, cols := t.Rows(), t.Cols()
	bs := BlockSize(t.DType)
	if r0 < 0 || r1 > rows || r0 >= r1 || c0 < 0 || c1 > cols || c0 >= c1 {
		return nil, fmt.Errorf("tensor %s: rows [%d, %d) and columns [%d, %d) of a %d×%d matrix", t.Name, r0, r1, c0, c1, rows, cols)
	}
	if c0%bs != 0 || c1%bs != 0 {
		return nil, fmt.Errorf("tensor %s: columns [%d, %d) are not on %v's blocks of %d", t.Name, c0, c1, t.DType, bs)
	}
	n, m := r1-r0, c1-c0
	size, err := ByteSize(t.DType, n, m)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	out := &Tensor{Name: t.Name, DType: t.DType, Shape: []int{n, m}, Data: make([]byte, size)}
	if bs == 1 {
		es := len(t.Data) / (rows * cols) // 4 or 2 bytes a value
		if m == cols {
			copy(out.Data, t.Data[r0*cols*es:r1*cols*es])
			return out, nil
		}
		for r := r0; r < r1; r++ {
			copy(out.Data[(r-r0)*m*es:], t.Data[(r*cols+c0)*es:(r*cols+c1)*es])
		}
		return out, nil
	}
	nb, sb := cols/bs, m/bs
	src, dst := splitArrays(t.DType, t.Data, rows*nb), splitArrays(t.DType, out.Data, n*sb)
	// Each array holds a fixed number of bytes per block, blocks in row
	// order: copy each row's run of blocks, array by array.
	for _, a := range [][2][]byte{{src.scales, dst.scales}, {src.sub, dst.sub}, {src.mins, dst.mins}, {src.qs, dst.qs}} {
		s, d := a[0], a[1]
		if s == nil {
			continue
		}
		per := len(s) / (rows * nb)
		if sb == nb { // whole rows: one run (a wasm build's copy is a call)
			copy(d, s[r0*nb*per:r1*nb*per])
			continue
		}
		for r := r0; r < r1; r++ {
			copy(d[(r-r0)*sb*per:], s[(r*nb+c0/bs)*per:(r*nb+c1/bs)*per])
		}
	}
	return out, nil
}
