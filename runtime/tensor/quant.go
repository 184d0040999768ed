package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Storage layouts
//
// A matrix [rows, cols] is stored row-major; a tensor of more dimensions is
// the matrix [elems/cols, cols], a vector the matrix [1, n]. All values are
// little-endian; f16 is IEEE 754 binary16.
//
// f32, f16, bf16: rows·cols elements of 4, 2 and 2 bytes.
//
// The block formats quantise each row along cols in blocks of B consecutive
// elements, so cols must be a multiple of B. Blocks are numbered row by row:
// block b is block b mod (cols/B) of row b div (cols/B), and a tensor has
// nblocks = rows·cols/B of them. Data is the concatenation of the format's
// arrays in the order listed, each array covering every block of the tensor.
// Every array starts at a 4-byte-aligned offset (an array whose size is not
// a multiple of 4 is zero-padded), so a GPU kernel can bind Data as
// array<u32> and find each array at a fixed word offset.
//
// q8_0, B = 32:
//
//	scales  nblocks × f16, zero-padded to a multiple of 4 bytes
//	qs      nblocks × 32 int8: qs[32b+j] is element j of block b
//
//	value(b, j) = scales[b] × qs[32b+j]
//	size = align4(2·nblocks) + 32·nblocks
//
// The scale is amax/127 (amax the largest magnitude in the block) and
// q = round(x/scale), as llama.cpp's Q8_0.
//
// q4_0, B = 32:
//
//	scales  nblocks × f16, zero-padded to a multiple of 4 bytes
//	qs      nblocks × 16 bytes: for j < 16, byte qs[16b+j] holds element j
//	        of block b in its low nibble and element j+16 in its high nibble
//
//	value(b, j) = scales[b] × (nibble − 8)
//	size = align4(2·nblocks) + 16·nblocks
//
// The scale is max/−8 (max the element of largest magnitude, with its sign)
// and nibble = min(15, round(x/scale) + 8), as llama.cpp's Q4_0.
//
// q4_k, B = 256: a super-block of 8 sub-blocks of 32 elements, each
// sub-block with its own scale and minimum, both stored as u8 multiples of
// the super-block's f16 d and dmin. This is not llama.cpp's Q4_K bit
// packing: every field is a whole byte or nibble in its own array.
//
//	dm      nblocks × 4 bytes: f16 d, then f16 dmin (one u32 per
//	        super-block, d in the low half)
//	scales  nblocks × 8 u8: scales[8b+s] is sub-block s's scale
//	mins    nblocks × 8 u8: mins[8b+s] is sub-block s's minimum
//	qs      nblocks × 128 bytes: element j of sub-block s of super-block b
//	        is in byte qs[128b + 16s + j mod 16], in the low nibble for
//	        j < 16 and the high nibble for j ≥ 16 (q4_0's order)
//
//	value(b, s, j) = d × scales[8b+s] × nibble − dmin × mins[8b+s]
//	size = 148·nblocks
//
// Each sub-block is fitted as x ≈ scale·q − min with q in 0..15, scale ≥ 0
// and min ≥ 0: starting from the grid from min(0, min(x)) to max(x), it
// tries nearby grid spacings, refits scale and min to each by least squares
// and keeps the fit with the least squared error (llama.cpp's
// make_qkx2_quants with unit weights). Then d = max(scale)/255 and
// dmin = max(min)/255 over the super-block (rounded to the nearest f16, or
// up where f16 is too coarse for the largest to fit in 255 units), the u8
// sub-scales and sub-mins are round(scale/d) and round(min/dmin), and the
// nibbles are requantised against the values actually stored.

// qk is the number of elements that share a scale: a q8_0 or q4_0 block and
// a q4_k sub-block.
const qk = 32

// qkK is the number of elements in a q4_k super-block.
const qkK = 256

// q4kBytes is the size of one q4_k super-block across its four arrays.
const q4kBytes = 4 + 8 + 8 + qkK/2

// BlockSize is the number of consecutive elements of a row that are stored
// together: 1 for the plain formats, the (super-)block size for the block
// formats, 0 for an unknown format. The columns of a matrix stored in d must
// be a multiple of it.
func BlockSize(d DType) int {
	switch d {
	case F32, F16, BF16:
		return 1
	case Q8_0, Q4_0, MXFP4:
		return qk
	case Q4_K:
		return qkK
	}
	return 0
}

// CanQuantize reports whether a matrix with cols columns can be stored in
// format d. A pack writer falls back to another format when it cannot.
func CanQuantize(d DType, cols int) bool {
	bs := BlockSize(d)
	return bs > 0 && cols > 0 && cols%bs == 0
}

// ByteSize is the number of bytes a [rows, cols] matrix takes in format d,
// including the padding of the block formats' arrays.
func ByteSize(d DType, rows, cols int) (int, error) {
	if rows <= 0 || cols <= 0 {
		return 0, fmt.Errorf("bad matrix size %d×%d", rows, cols)
	}
	bs := BlockSize(d)
	if bs == 0 {
		return 0, fmt.Errorf("unknown dtype %d", uint8(d))
	}
	if cols%bs != 0 {
		return 0, fmt.Errorf("%v needs a multiple of %d columns, have %d", d, bs, cols)
	}
	n := rows * cols
	switch d {
	case F32:
		return 4 * n, nil
	case F16, BF16:
		return 2 * n, nil
	case Q8_0:
		return align4(2*(n/qk)) + qk*(n/qk), nil
	case Q4_0:
		return align4(2*(n/qk)) + qk/2*(n/qk), nil
	case MXFP4:
		return align4(n/qk) + qk/2*(n/qk), nil
	}
	return q4kBytes * (n / qkK), nil
}

// MatrixBytes is ByteSize under the name modelpack's writer and manifest
// use.
func MatrixBytes(d DType, rows, cols int) (int, error) { return ByteSize(d, rows, cols) }

func align4(n int) int { return (n + 3) &^ 3 }

// blockArrays is Data of a block-format tensor split into its arrays. For
// q8_0 and q4_0, scales holds the f16 block scales; for q4_k, it holds the
// (d, dmin) pairs and sub and mins the u8 sub-block scales and minimums.
type blockArrays struct {
	scales, sub, mins, qs []byte
}

// splitArrays splits data, which ByteSize has checked, for nblocks blocks
// (super-blocks for q4_k) of format d.
func splitArrays(d DType, data []byte, nblocks int) blockArrays {
	switch d {
	case Q8_0, Q4_0:
		s := align4(2 * nblocks)
		return blockArrays{scales: data[:2*nblocks], qs: data[s:]}
	case MXFP4:
		return blockArrays{scales: data[:nblocks], qs: data[align4(nblocks):]}
	case Q4_K:
		o1, o2, o3 := 4*nblocks, 12*nblocks, 20*nblocks
		return blockArrays{scales: data[:o1], sub: data[o1:o2], mins: data[o2:o3], qs: data[o3:]}
	}
	panic("tensor: splitArrays of " + d.String())
}

// Quantize converts an f32, f16 or bf16 tensor to format to (any format,
// plain or block), quantising each row along its columns. Block formats
// refuse NaN, Inf and magnitudes above maxQuantizable, which would poison
// or overflow a whole block's f16 scale.
func Quantize(t *Tensor, to DType) (*Tensor, error) {
	switch t.DType {
	case F32, F16, BF16:
	default:
		return nil, fmt.Errorf("tensor %s: cannot quantise from %v (only from f32, f16 or bf16)", t.Name, t.DType)
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	size, err := ByteSize(to, t.Rows(), t.Cols())
	if err != nil {
		return nil, fmt.Errorf("tensor %s: quantising to %v: %w", t.Name, to, err)
	}
	x, err := t.Float32s()
	if err != nil {
		return nil, err
	}
	out := &Tensor{Name: t.Name, DType: to, Shape: append([]int(nil), t.Shape...), Data: make([]byte, size)}
	switch to {
	case F32:
		for i, v := range x {
			binary.LittleEndian.PutUint32(out.Data[4*i:], math.Float32bits(v))
		}
		return out, nil
	case F16:
		for i, v := range x {
			binary.LittleEndian.PutUint16(out.Data[2*i:], F32ToF16(v))
		}
		return out, nil
	case BF16:
		for i, v := range x {
			binary.LittleEndian.PutUint16(out.Data[2*i:], F32ToBF16(v))
		}
		return out, nil
	}
	if err := checkQuantizable(t.Name, x); err != nil {
		return nil, fmt.Errorf("quantising to %v: %w", to, err)
	}
	nblocks := len(x) / BlockSize(to)
	a := splitArrays(to, out.Data, nblocks)
	// Blocks are independent, so the tensor's rows are one long row here.
	quantize := quantizeQ8_0
	switch to {
	case Q4_0:
		quantize = quantizeQ4_0
	case Q4_K:
		quantize = quantizeQ4_K
	case MXFP4:
		quantize = quantizeMXFP4
	}
	inParallel(nblocks, func(lo, hi int) { quantize(a, x, lo, hi) })
	return out, nil
}

// inParallel runs fn over [0, n) split across GOMAXPROCS goroutines. A
// large model's worth of q4_k takes minutes on one core; each goroutine
// writes only its own blocks' bytes, so the result does not depend on the
// split.
func inParallel(n int, fn func(lo, hi int)) {
	const minPer = 256 // blocks per goroutine worth starting one for
	g := min(runtime.GOMAXPROCS(0), n/minPer)
	if g <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + g - 1) / g
	for lo := 0; lo < n; lo += chunk {
		wg.Go(func() { fn(lo, min(lo+chunk, n)) })
	}
	wg.Wait()
}

// maxQuantizable is the largest magnitude every block format can store: a
// q4_0 scale of max/8 must fit in f16 (65504).
const maxQuantizable = 8 * 65504

// checkQuantizable reports the first element of x a block format cannot
// store, naming the tensor.
func checkQuantizable(name string, x []float32) error {
	if err := CheckFinite(name, x); err != nil {
		return err
	}
	for i, v := range x {
		if abs32(v) > maxQuantizable {
			return fmt.Errorf("tensor %s: element %d is %v, beyond the ±%d block formats can scale to", name, i, v, maxQuantizable)
		}
	}
	return nil
}

// RMSError is the root-mean-square difference between orig and q's
// dequantised elements, the measure `modelpack inspect` reports. It is NaN
// when q cannot be decoded or holds a different number of elements.
func RMSError(orig []float32, q *Tensor) float64 {
	deq, err := q.Float32s()
	if err != nil || len(deq) != len(orig) || len(orig) == 0 {
		return math.NaN()
	}
	var ss float64
	for i, v := range orig {
		d := float64(deq[i]) - float64(v)
		ss += d * d
	}
	return math.Sqrt(ss / float64(len(orig)))
}

// f16At is the f16 value i of b.
func f16At(b []byte, i int) float32 {
	return F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
}

// putF16 stores v rounded to f16 as value i of b and returns the rounded
// value.
func putF16(b []byte, i int, v float32) float32 {
	h := F32ToF16(v)
	binary.LittleEndian.PutUint16(b[2*i:], h)
	return F16ToF32(h)
}
