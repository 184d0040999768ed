package tensor

import "fmt"

// ConcatRows joins row chunks of one matrix, all of the same format and
// width, into a single tensor. Block formats are re-laid out array by array
// (each chunk's scales, then each chunk's quants, ...), which is how a pack
// stores a matrix too large for one shard and how a loader rebuilds it.
func ConcatRows(parts []*Tensor) (*Tensor, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("tensor: ConcatRows of nothing")
	}
	first := parts[0]
	d, cols := first.DType, first.Cols()
	rows := 0
	for _, p := range parts {
		if p.DType != d || p.Cols() != cols {
			return nil, fmt.Errorf("tensor %s: chunks differ (%v×%d and %v×%d)", first.Name, d, cols, p.DType, p.Cols())
		}
		want, err := ByteSize(d, p.Rows(), cols)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", first.Name, err)
		}
		if len(p.Data) != want {
			return nil, fmt.Errorf("tensor %s: chunk of %d rows has %d bytes, want %d", first.Name, p.Rows(), len(p.Data), want)
		}
		rows += p.Rows()
	}
	size, err := ByteSize(d, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", first.Name, err)
	}
	out := &Tensor{Name: first.Name, DType: d, Shape: []int{rows, cols}, Data: make([]byte, 0, size)}
	if BlockSize(d) == 1 {
		for _, p := range parts {
			out.Data = append(out.Data, p.Data...)
		}
		return out, nil
	}
	bs := BlockSize(d)
	arrays := make([]blockArrays, len(parts))
	for i, p := range parts {
		arrays[i] = splitArrays(d, p.Data, p.Rows()*cols/bs)
	}
	field := func(get func(a blockArrays) []byte) {
		for _, a := range arrays {
			out.Data = append(out.Data, get(a)...)
		}
		for len(out.Data)%4 != 0 {
			out.Data = append(out.Data, 0)
		}
	}
	field(func(a blockArrays) []byte { return a.scales })
	if d == Q4_K {
		field(func(a blockArrays) []byte { return a.sub })
		field(func(a blockArrays) []byte { return a.mins })
	}
	field(func(a blockArrays) []byte { return a.qs })
	if len(out.Data) != size {
		return nil, fmt.Errorf("tensor %s: internal error: concatenation is %d bytes, want %d", first.Name, len(out.Data), size)
	}
	return out, nil
}
