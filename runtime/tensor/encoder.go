package tensor

import "fmt"

// An Encoder writes a block-format matrix one element at a time, for
// quantisers that decide later elements after seeing the rounding error of
// earlier ones (GPTQ's error feedback). For each group of FitSize columns
// of a row the caller first calls Fit with the group's current values,
// which fixes the group's parameters (scales, minimums) by the same rule
// Quantize uses, then Set for each element, which stores the nearest value
// those parameters can represent. Quantize(t) and an Encoder fed t's own
// values column by column give the same bytes.
//
// Different goroutines may encode different rows at once: a row's blocks
// occupy bytes no other row touches.
type Encoder struct {
	t     *Tensor
	a     blockArrays
	cols  int
	nrow  int // blocks (q4_k: super-blocks) per row
	block int // elements per block
	// id8 is each q8_0 block's 1/(amax/127): q8_0 rounds against the
	// unrounded scale, as Quantize does, and stores its f16.
	id8 []float32
}

// FitSize is the number of consecutive columns of a row that Encoder.Fit
// fixes the parameters of: a q8_0 or q4_0 block, a q4_k sub-block.
const FitSize = qk

// NewEncoder returns an Encoder for a [rows, cols] matrix named name in the
// block format d.
func NewEncoder(name string, d DType, rows, cols int) (*Encoder, error) {
	if d != Q8_0 && d != Q4_0 && d != Q4_K {
		return nil, fmt.Errorf("tensor %s: an encoder writes q8_0, q4_0 or q4_k, not %v", name, d)
	}
	size, err := ByteSize(d, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	t := &Tensor{Name: name, DType: d, Shape: []int{rows, cols}, Data: make([]byte, size)}
	bs := BlockSize(d)
	e := &Encoder{t: t, a: splitArrays(d, t.Data, rows*cols/bs), cols: cols, nrow: cols / bs, block: bs}
	if d == Q8_0 {
		e.id8 = make([]float32, rows*cols/bs)
	}
	return e, nil
}

// Fit fixes the parameters of the group of row that starts at column col
// (a multiple of FitSize) from rest, the row's current values from col to
// its end. For q4_k, a group at the start of a super-block also fixes the
// super-block's f16 units from the first 256 values of rest; every
// sub-block's scale and minimum are then refitted from its own current
// values within those units (clamped to 255 of them), so the error
// feedback that moved them since is taken into account.
func (e *Encoder) Fit(row, col int, rest []float32) {
	b := row*e.nrow + col/e.block
	switch e.t.DType {
	case Q8_0:
		quantizeQ8_0(blockArrays{scales: e.a.scales[2*b:], qs: e.a.qs[qk*b:]}, rest[:qk], 0, 1)
		var amax float32
		for _, v := range rest[:qk] {
			amax = max(amax, abs32(v))
		}
		e.id8[b] = 0
		if d := amax / 127; d != 0 {
			e.id8[b] = 1 / d
		}
	case Q4_0:
		quantizeQ4_0(blockArrays{scales: e.a.scales[2*b:], qs: e.a.qs[qk/2*b:]}, rest[:qk], 0, 1)
	case Q4_K:
		s := col % qkK / qk
		if s == 0 {
			quantizeQ4_K(blockArrays{scales: e.a.scales[4*b:], sub: e.a.sub[8*b:], mins: e.a.mins[8*b:], qs: e.a.qs[qkK/2*b:]}, rest[:qkK], 0, 1)
		}
		d, dmin := f16At(e.a.scales, 2*b), f16At(e.a.scales, 2*b+1)
		scale, mn := fitSubBlock((*[qk]float32)(rest[:qk]))
		e.a.sub[8*b+s] = byte(steps(scale, d, 255))
		e.a.mins[8*b+s] = byte(steps(mn, dmin, 255))
	}
}

// Set stores v at (row, col) as the nearest value its group's parameters
// represent, with Quantize's rounding, and returns that value. Fit must
// have been called for the group.
func (e *Encoder) Set(row, col int, v float32) float32 {
	b, j := row*e.nrow+col/e.block, col%e.block
	switch e.t.DType {
	case Q8_0:
		q := clampRound(v*e.id8[b], -127, 127)
		e.a.qs[qk*b+j] = byte(int8(q))
		return f16At(e.a.scales, b) * float32(q)
	case Q4_0:
		d := f16At(e.a.scales, b)
		var id float32
		if d != 0 {
			id = 1 / d
		}
		n := nibble4_0(v * id)
		setNibble(e.a.qs[qk/2*b:], j, n)
		return d * float32(int(n)-8)
	}
	s := j / qk
	d, dmin := f16At(e.a.scales, 2*b), f16At(e.a.scales, 2*b+1)
	ds := d * float32(e.a.sub[8*b+s])
	ms := dmin * float32(e.a.mins[8*b+s])
	var id float32
	if ds != 0 {
		id = 1 / ds
	}
	l := clampRound((v+ms)*id, 0, 15)
	setNibble(e.a.qs[qkK/2*b+qk/2*s:], j%qk, byte(l))
	return ds*float32(l) - ms
}

// setNibble stores n as element j of a 32-element nibble group starting at
// q: q4_0's order, elements j and j+16 sharing byte j.
func setNibble(q []byte, j int, n byte) {
	if j < qk/2 {
		q[j] = q[j]&0xf0 | n
	} else {
		q[j-qk/2] = q[j-qk/2]&0x0f | n<<4
	}
}

// Tensor returns the matrix written so far.
func (e *Encoder) Tensor() *Tensor { return e.t }
