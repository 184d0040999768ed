package tensor

import (
	"github.com/moderuntime/mode/internal/wasmsimd"
	"github.com/moderuntime/mode/runtime/vec"
)

// Q16Rows holds rows of activations quantised as the fast matrix products
// read them: each 32 consecutive values x of a row become 32 int16 q and
// an f32 scale d = max|x|/32767 with q = round(x/d), so |x − d·q| ≤ d/2,
// and d·Σq, which q4_k's minimums multiply instead of being subtracted from
// every weight.
//
// A product then multiplies integers within a block and applies the two
// scales once per block: the weight is used exactly as stored, and the
// only approximation is the activations' rounding to 16 bits, a relative
// error of 2^-16 of the block's largest value, below f16's 2^-11. This is
// llama.cpp's scheme (vec_dot_q4_0_q8_0 and the like) with 16-bit rather
// than 8-bit activations: on AVX2, which has no 8-bit multiply-add without
// VNNI, widening the weights to int16 for VPMADDWD costs about what
// llama.cpp's sign tricks for VPMADDUBSW do, and the error is 256 times
// smaller (8 bits changed 0.1–4.6% of the teacher-forced greedy choices of
// the small random test models, TestFastAgreement; 16 bits none).
type Q16Rows struct {
	rows, cols int
	qs         []int16   // rows·cols
	d          []float32 // rows·cols/32 scales
	g          []float32 // rows·cols/32 products d·Σq
	// dup is qs laid out by vec.DupQ16 for q8_0's 2×8 tiles, kept when
	// dupOn: a q8_0 product of a whole tile's tokens or more on a machine
	// that has the tiles.
	dup   []int16
	dupOn bool
	// qsOn says qs is kept: always, but for rows for q4_0 products alone
	// (ResizeForOnly, Q16Arena) where q4 is (q4On): its kernels read q4
	// alone, and the blocks are quantised a few at a time into the stack
	// and laid out from there.
	qsOn bool
	// xp is vec.PrepRows of qs, kept for a q8_0 product of a single row
	// (decode) on a machine that has the tiles, for vec.DotQ8_0Rows'
	// one-row kernel.
	xp     []int16
	rowsOn bool
	// q4 and off are vec.PrepQ4_0 of each row (vec.Q4_0LayoutBytes and
	// vec.Q4_0Lanes per block), kept when q4On: for a q4_0 product on a
	// machine whose q4_0 kernels read that layout (vec.Q4_0Layout).
	q4   []byte
	off  []int32
	q4On bool
}

// Rows and Cols are the shape last quantised.
func (q *Q16Rows) Rows() int { return q.rows }
func (q *Q16Rows) Cols() int { return q.cols }

// Quantize sets q to the rows rows of x (row stride cols; cols a multiple
// of 32), reusing q's storage when it is large enough.
func (q *Q16Rows) Quantize(x []float32, rows, cols int) {
	q.Resize(rows, cols)
	q.QuantizeBlocks(x, 0, rows*cols/qk)
}

// Resize sets q's shape to rows×cols (cols a multiple of 32) for
// QuantizeBlocks to fill, reusing its storage when it is large enough.
func (q *Q16Rows) Resize(rows, cols int) { q.resize(rows, cols, Invalid, false) }

// ResizeFor is Resize for products with m: where m is q4_0 it also keeps
// the activations in the layout its kernels read (vec.PrepQ4_0), where
// the machine has them; where m is q8_0, in the layout of the one-row
// kernel for a lone token (decode), or of its whole 2×8 tiles for eight
// tokens or more. Other formats do not read those copies, so they do not
// pay for them.
func (q *Q16Rows) ResizeFor(m *Matrix, rows, cols int) { q.resize(rows, cols, dtypeOf(m), false) }

// ResizeForOnly is ResizeFor for products with matrices of m's format
// alone (MulQuantized of another format panics): a q4_0 product then
// keeps only the layout its kernels read, as Q16Arena rows do, and the
// blocks are quantised without the plain copy.
func (q *Q16Rows) ResizeForOnly(m *Matrix, rows, cols int) { q.resize(rows, cols, dtypeOf(m), true) }

// QuantizeFor is Quantize for products with m (ResizeFor).
func (q *Q16Rows) QuantizeFor(m *Matrix, x []float32, rows, cols int) {
	q.ResizeFor(m, rows, cols)
	q.QuantizeBlocks(x, 0, rows*cols/qk)
}

// resize is Resize for products with a matrix of type dt, and with no
// other type when alone.
func (q *Q16Rows) resize(rows, cols int, dt DType, alone bool) {
	nb := rows * cols / qk
	q.rows, q.cols = rows, cols
	q.qsOn, q.dupOn, q.rowsOn, q.q4On = layouts(rows, dt, alone)
	q.qs = q.qs[:0]
	if q.qsOn {
		q.qs = grow(q.qs, rows*cols)
	}
	q.d = grow(q.d, nb)
	q.g = grow(q.g, nb)
	if q.rowsOn {
		q.xp = grow(q.xp, rows*cols)
	}
	if q.q4On {
		q.q4 = grow(q.q4, rows*vec.Q4_0LayoutBytes(cols/qk))
		q.off = grow(q.off, vec.Q4_0Lanes*nb)
	}
	if q.dupOn {
		q.dup = grow(q.dup, 2*rows*cols)
	}
}

// layouts says which copies of the activations a product of rows rows
// with a matrix of type dt reads (see Q16Rows' fields); alone says no
// matrix of another type will read them.
func layouts(rows int, dt DType, alone bool) (qs, dup, xp, q4 bool) {
	tiles := vec.TilesAnyTokens()
	// A single row goes through vec.DotQ8_0Rows, which reads xp instead
	// of dup: it has no dup.
	dup = tiles && dt == Q8_0 && rows >= 8
	xp = tiles && dt == Q8_0 && rows == 1
	q4 = dt == Q4_0 && vec.Q4_0Layout()
	// MulQuantized gives every token of a q4_0 product with q4 to the
	// kernels that read q4 alone.
	qs = !(alone && q4)
	return qs, dup, xp, q4
}

// Q16Arena is storage that several Q16Rows take their arrays from, one
// after another, so that a batch's experts, each with its own number of
// tokens, quantise their activations into one allocation of the batch's
// size. With storage of their own, each expert's rows grew whenever a
// layer routed it more tokens than any layer before, leaving the old
// arrays to the garbage collector and the largest share ever seen held by
// every expert: a 128-token prefill of the Mixtral-shaped test model held
// 3.6 MB of quantised activations, and left more to the collector, where
// one allocation of the batch's size is 2.9 MB. Its rows are for
// products with matrices of one format (the one given to Plan and
// ResizeIn), which lets q4_0's rows keep only the layout its kernels read
// (vec.PrepQ4_0's), where Q16Rows of their own keep the plain one too
// (ResizeFor).
//
// A round is Plan for every Q16Rows, Reset, then ResizeIn for the same
// ones, in any order (each takes the next free part of each array); the
// Q16Rows of the previous round must no longer be read by then.
type Q16Arena struct {
	qs, dup, xp []int16
	q4          []byte
	d, g        []float32
	off         []int32
	// the round's planned sizes, then the sizes handed out
	plan, used q16Sizes
}

type q16Sizes struct{ qs, dup, xp, q4, blocks, off int }

// add adds what a product of rows×cols activations with a matrix of type
// dt takes.
func (z *q16Sizes) add(rows, cols int, dt DType) {
	qs, dup, xp, q4 := layouts(rows, dt, true)
	n := rows * cols
	if qs {
		z.qs += n
	}
	z.blocks += n / qk
	if dup {
		z.dup += 2 * n
	}
	if xp {
		z.xp += n
	}
	if q4 {
		z.q4 += rows * vec.Q4_0LayoutBytes(cols/qk)
		z.off += vec.Q4_0Lanes * n / qk
	}
}

// Plan counts a Q16Rows of rows×cols for products with matrices of m's
// format alone into the round.
func (a *Q16Arena) Plan(m *Matrix, rows, cols int) { a.plan.add(rows, cols, dtypeOf(m)) }

// Reset starts handing out the storage Plan asked for, allocating what
// the arena lacks (exactly that: a round of the same sizes as the last
// allocates nothing), and starts the next round's plan.
func (a *Q16Arena) Reset() {
	p := a.plan
	a.qs, a.dup, a.xp, a.q4 = atLeast(a.qs, p.qs), atLeast(a.dup, p.dup), atLeast(a.xp, p.xp), atLeast(a.q4, p.q4)
	a.d, a.g, a.off = atLeast(a.d, p.blocks), atLeast(a.g, p.blocks), atLeast(a.off, p.off)
	a.plan, a.used = q16Sizes{}, q16Sizes{}
}

// ResizeIn is ResizeFor with q's arrays taken from a, as planned, for
// products with matrices of m's format alone (MulQuantized of a matrix
// of another format may panic); q's own storage is dropped. It panics
// when the round hands out more than was planned.
func (q *Q16Rows) ResizeIn(a *Q16Arena, m *Matrix, rows, cols int) {
	n, nb := rows*cols, rows*cols/qk
	u := &a.used
	q.rows, q.cols = rows, cols
	q.qsOn, q.dupOn, q.rowsOn, q.q4On = layouts(rows, dtypeOf(m), true)
	q.d, _ = take(a.d, u.blocks, nb) // d and g are as long: one count serves both
	q.g, u.blocks = take(a.g, u.blocks, nb)
	q.qs, q.dup, q.xp, q.q4, q.off = nil, nil, nil, nil, nil
	if q.qsOn {
		q.qs, u.qs = take(a.qs, u.qs, n)
	}
	if q.dupOn {
		q.dup, u.dup = take(a.dup, u.dup, 2*n)
	}
	if q.rowsOn {
		q.xp, u.xp = take(a.xp, u.xp, n)
	}
	if q.q4On {
		q.q4, u.q4 = take(a.q4, u.q4, rows*vec.Q4_0LayoutBytes(cols/qk))
		q.off, u.off = take(a.off, u.off, vec.Q4_0Lanes*nb)
	}
}

// take returns s[at:at+n], capped there, and at+n.
func take[T any](s []T, at, n int) ([]T, int) { return s[at : at+n : at+n], at + n }

// atLeast returns s, or a new slice of length n when s holds fewer.
func atLeast[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:cap(s)]
}

func dtypeOf(m *Matrix) DType {
	if m == nil {
		return Invalid
	}
	return m.dtype
}

// QuantizeBlocks quantises the 32-element blocks b0 ≤ b < b1 of x (the
// whole matrix, as given to Resize) into q. Blocks are independent, so
// ranges may be quantised concurrently.
func (q *Q16Rows) QuantizeBlocks(x []float32, b0, b1 int) { q.QuantizeBlocksFrom(x[qk*b0:qk*b1], b0) }

// QuantizeBlocksFrom is QuantizeBlocks for the blocks b0 ≤ b < b1 =
// b0 + len(x)/32 with x holding just them (len(x) a multiple of 32): for
// values computed elsewhere than in the matrix's own layout.
func (q *Q16Rows) QuantizeBlocksFrom(x []float32, b0 int) {
	b1 := b0 + len(x)/qk
	if !q.qsOn {
		// Straight into q4, through the stack: the blocks' qs would be
		// written once, to memory no cache holds yet, and read once.
		var tmp [q4Chunk * qk]int16
		for b := b0; b < b1; b += q4Chunk {
			e := min(b+q4Chunk, b1)
			t := tmp[:qk*(e-b)]
			vec.QuantizeQ16(t, q.d[b:e], q.g[b:e], x[qk*(b-b0):qk*(e-b0)])
			q.prepQ4(t, b)
		}
		return
	}
	if ok, _ := wasmsimd.Ready(); ok {
		wasmsimd.QuantizeQ16(q.qs[qk*b0:qk*b1], q.d[b0:b1], q.g[b0:b1], x)
	} else {
		vec.QuantizeQ16(q.qs[qk*b0:qk*b1], q.d[b0:b1], q.g[b0:b1], x)
	}
	switch {
	case q.q4On:
		q.prepQ4(q.qs[qk*b0:qk*b1], b0)
	case q.rowsOn:
		vec.PrepRows(q.xp, q.qs, b0, b1)
	case q.dupOn:
		vec.DupQ16(q.dup[2*qk*b0:2*qk*b1], q.qs[qk*b0:qk*b1])
	}
}

// q4Chunk is how many blocks QuantizeBlocksFrom quantises into the stack
// at a time when qs is not kept: 4 KB, in L1.
const q4Chunk = 64

// prepQ4 lays out the blocks b0 ≤ b < b0 + len(v)/32 of the rows, given
// their values v, into q4 and off, row by row (vec.PrepQ4_0 lays out a
// row).
func (q *Q16Rows) prepQ4(v []int16, b0 int) {
	nb := q.cols / qk
	lb := vec.Q4_0LayoutBytes(nb)
	for len(v) > 0 {
		t, b := b0/nb, b0%nb
		n := min(nb-b, len(v)/qk)
		vec.PrepQ4_0(q.q4[t*lb:(t+1)*lb], q.off[vec.Q4_0Lanes*nb*t:vec.Q4_0Lanes*nb*(t+1)], nb, v[:qk*n], b)
		v, b0 = v[qk*n:], b0+n
	}
}

// rowsXP is the single row's xp for the one-row kernels, or nil when it is
// not kept (rowsOn).
func (q *Q16Rows) rowsXP() []int16 {
	if !q.rowsOn {
		return nil
	}
	return q.xp[:q.cols]
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// MulQuantized sets dst[t·stride+i] to row i of m times row t of x for the rows
// i0 ≤ i < i1 of m and every row t of x, from the integer products of each
// 32-element block: the fast counterpart of Dot. m must be q8_0, q4_0 or
// q4_k, and x quantised with m's Cols.
//
// Each weight row is read once for all rows of x (it stays in L1 while
// they stream past), and each result is summed in the same order whatever
// the range and however many rows x has, so a product does not depend on
// how it is split across goroutines or batched.
func (m *Matrix) MulQuantized(dst []float32, stride int, x *Q16Rows, i0, i1 int) {
	n := m.cols / qk // 32-element blocks per row
	if i0 < i1 && x.rows > 0 && n > 0 && (m.dtype == Q8_0 || m.dtype == Q4_0 || m.dtype == Q4_K && n%8 == 0) {
		// In a wasm build whose host loaded internal/wasmsimd's SIMD128
		// kernels, one call computes the whole range with the bits of the
		// kernels below.
		if ok, _ := wasmsimd.Ready(); ok {
			d, xd, xq := dst[i0:], x.d[:x.rows*n], x.qs[:x.rows*m.cols]
			switch m.dtype {
			case Q8_0:
				wasmsimd.MulQ8_0(d, stride, m.scales32[i0*n:i1*n], m.a.qs[qk*i0*n:qk*i1*n], xd, xq, i1-i0, n, x.rows)
			case Q4_0:
				wasmsimd.MulQ4_0(d, stride, m.scales32[i0*n:i1*n], m.a.qs[qk/2*i0*n:qk/2*i1*n], xd, xq, i1-i0, n, x.rows)
			default:
				wasmsimd.MulQ4_K(d, stride, m.a.scales[4*i0*m.nb:4*i1*m.nb], m.a.sub[i0*n:i1*n], m.a.mins[i0*n:i1*n],
					m.a.qs[qk/2*i0*n:qk/2*i1*n], xd, x.g[:x.rows*n], xq, i1-i0, n, x.rows)
			}
			return
		}
	}
	if x.rows > 0 && !x.qsOn && (m.dtype != Q4_0 || !x.q4On) {
		panic("tensor: MulQuantized of " + m.dtype.String() + " with activations laid out for q4_0 products alone (Q16Arena)")
	}
	i := i0
	if m.dtype == Q4_0 && x.q4On {
		// Rows one after another, one stream of weights, in blocks of
		// up to 64 for prefill, whose weights stay in L2 while the
		// tokens go past (on AVX-512 two at a time, each step unpacked
		// once for both); a lone token's (decode's) in one call.
		block := 64
		if x.rows == 1 {
			block = i1 - i0
		}
		for rb := i0; rb < i1; rb += block {
			re := min(rb+block, i1)
			vec.DotQ4_0RowsTokens(dst[rb:], stride, m.a.scales[2*rb*n:], 2*n, m.a.qs[qk/2*rb*n:], qk/2*n,
				x.d[:x.rows*n], nil, x.q4, x.off, x.rows, re-rb)
		}
		return
	}
	if m.dtype == Q4_0 && x.qsOn && vec.Q4_0Layout() {
		// Activations quantised for another format (an MoE layer
		// quantises its input once, for its first expert): each token
		// laid out here, then as above.
		var xb [q4Chunk * 2 * qk]byte
		var c [q4Chunk * vec.Q4_0Lanes]int32
		lb, lc := vec.Q4_0LayoutBytes(n), vec.Q4_0Lanes*n
		b, o := xb[:], c[:]
		if lb > len(b) {
			b, o = make([]byte, lb), make([]int32, lc)
		}
		b, o = b[:lb], o[:lc]
		for t := range x.rows {
			vec.PrepQ4_0(b, o, n, x.qs[t*m.cols:(t+1)*m.cols], 0)
			vec.DotQ4_0Rows(dst[t*stride+i0:t*stride+i1], m.a.scales[2*i0*n:], 2*n, m.a.qs[qk/2*i0*n:], qk/2*n, x.d[t*n:(t+1)*n], nil, b, o, i1-i0)
		}
		return
	}
	// Whole groups of four rows go through the four-row kernels, which
	// give each row the one-row kernel's bits.
	if m.dtype == Q8_0 {
		// Rows in blocks of up to 64, whose weights stay in L2 while the
		// tokens go past four at a time (their activations in L1) through
		// the 2×4 tiles, which unpack each weight block once for the four;
		// the tokens left over go through the four-row kernels. All give
		// the same bits.
		var o8 [8]float32
		var o16 [16]float32
		end := i0 + (i1-i0)&^3
		// A lone token (decode) has no tokens to keep the rows in L2 for:
		// its rows go through in one call, one stream.
		block := 64
		if x.rows == 1 {
			block = max(end-i0, 1)
		}
		for rb := i0; rb < end; rb += block {
			re := min(rb+block, end)
			t := 0
			// Eight tokens at a time: the 2×8 tiles unpack each weight
			// block once for the eight. On the DupQ16 layout they read
			// each half straight into its multiply-add where the plain
			// 2×8 tiles broadcast it first: a sixth to a fifth less time
			// per tile.
			for ; t+8 <= x.rows; t += 8 {
				xq, xd := x.qs[t*m.cols:], x.d[t*n:]
				for r := rb; r < re; r += 2 {
					if x.dupOn {
						vec.DotQ8_0x2x8Dup(&o16, m.a.scales[2*r*n:], 2*n, m.a.qs[qk*r*n:], qk*n, xd, x.dup[2*t*m.cols:], n, n)
					} else {
						vec.DotQ8_0x2x8(&o16, m.a.scales[2*r*n:], 2*n, m.a.qs[qk*r*n:], qk*n, xd, xq, n, n)
					}
					for k := range 8 {
						dst[(t+k)*stride+r] = o16[k]
						dst[(t+k)*stride+r+1] = o16[8+k]
					}
				}
			}
			for ; t+4 <= x.rows; t += 4 {
				xq, xd := x.qs[t*m.cols:], x.d[t*n:]
				for r := rb; r < re; r += 2 {
					vec.DotQ8_0x2x4(&o8, m.a.scales[2*r*n:], 2*n, m.a.qs[qk*r*n:], qk*n, xd, xq, n, n)
					for k := range 4 {
						dst[(t+k)*stride+r] = o8[k]
						dst[(t+k)*stride+r+1] = o8[4+k]
					}
				}
			}
			for ; t < x.rows; t++ {
				xq, xd := x.qs[t*m.cols:(t+1)*m.cols], x.d[t*n:(t+1)*n]
				o := dst[t*stride+rb : t*stride+re]
				if t == 0 {
					// No tile has read these rows yet (decode, or an
					// expert with fewer than four tokens): they come from
					// memory, which one row after another streams faster.
					vec.DotQ8_0Rows(o, m.a.scales[2*rb*n:], 2*n, m.a.qs[qk*rb*n:], qk*n, xd, xq, x.rowsXP(), re-rb)
				} else {
					vec.DotQ8_0x4N(o, m.a.scales[2*rb*n:], 2*n, m.a.qs[qk*rb*n:], qk*n, xd, xq, (re-rb)/4)
				}
			}
		}
		i = end
	}
	if m.dtype == Q4_K && x.rows >= 2 {
		// The same blocking for q4_k, in pairs of rows, tokens four at a
		// time and then the two or three left over through the same tile;
		// a lone token left over goes through the one-row kernel.
		end := i0 + (i1-i0)&^1
		for rb := i0; rb < end; rb += 64 {
			re := min(rb+64, end)
			t := 0
			for ; t+2 <= x.rows; t += 4 {
				vec.DotQ4_Kx2xNRows(dst[t*stride:], stride, m.a.scales, 4*m.nb, m.a.sub, m.a.mins, n, m.a.qs, qk/2*n,
					x.d[t*n:], x.g[t*n:], x.qs[t*m.cols:], n, n, min(4, x.rows-t), rb, re)
			}
			for ; t < x.rows; t++ {
				vec.DotQ4_KRows(dst[t*stride+rb:t*stride+re], m.a.scales[4*rb*m.nb:], m.a.sub[rb*n:], m.a.mins[rb*n:], m.a.qs[qk/2*rb*n:],
					x.d[t*n:(t+1)*n], x.g[t*n:(t+1)*n], x.qs[t*m.cols:(t+1)*m.cols], re-rb)
			}
		}
		i = end
	}
	if m.dtype == Q4_K && n%8 == 0 {
		// The rest (every row of a decode): one call per token for the
		// whole range.
		for t := range x.rows {
			vec.DotQ4_KRows(dst[t*stride+i:t*stride+i1], m.a.scales[4*i*m.nb:], m.a.sub[i*n:], m.a.mins[i*n:], m.a.qs[qk/2*i*n:],
				x.d[t*n:(t+1)*n], x.g[t*n:(t+1)*n], x.qs[t*m.cols:(t+1)*m.cols], i1-i)
		}
		i = i1
	}
	for ; i < i1; i++ {
		for t := range x.rows {
			xq, xd := x.qs[t*m.cols:(t+1)*m.cols], x.d[t*n:(t+1)*n]
			var acc float32
			switch m.dtype {
			case Q8_0:
				acc = vec.DotQ8_0(m.a.scales[2*i*n:], m.a.qs[qk*i*n:], xd, xq)
			case Q4_0:
				acc = vec.DotQ4_0(m.a.scales[2*i*n:], m.a.qs[qk/2*i*n:], xd, xq)
			case MXFP4:
				acc = dotMXFP4Q16(m.a.scales[i*n:], m.a.qs[qk/2*i*n:], xd, xq)
			case Q4_K:
				acc = vec.DotQ4_K(m.a.scales[4*i*m.nb:], m.a.sub[i*n:], m.a.mins[i*n:], m.a.qs[qk/2*i*n:], xd, x.g[t*n:(t+1)*n], xq)
			default:
				panic("tensor: MulQuantized of " + m.dtype.String())
			}
			dst[t*stride+i] = acc
		}
	}
}

// dotMXFP4Q16 is the fast mxfp4 product of one row with 16-bit activations:
// per block, the integer Σ (2·e2m1)·q, then times the weight scale / 2 and
// the activation scale. Pure Go (no assembly yet): e2m1 codes become
// integers through a table, the products are exact in int32.
func dotMXFP4Q16(wd, wq []byte, xd []float32, xq []int16) float32 {
	var acc float32
	for b, dx := range xd {
		q := (*[qk / 2]byte)(wq[qk/2*b:])
		x := (*[qk]int16)(xq[qk*b:])
		var s int32
		for j, v := range q {
			s += e2m1x2[v&15]*int32(x[2*j]) + e2m1x2[v>>4]*int32(x[2*j+1])
		}
		acc += float32(float32(E8M0(wd[b])*0.5*dx) * float32(s))
	}
	return acc
}
