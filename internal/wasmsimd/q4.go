package wasmsimd

// The q4_0 kernel (KernelQ4_0, the signature and layout of KernelQ8_0).
//
// It sums as runtime/vec's dotQ4_0Go, bit for bit: per block, four i32
// lanes, lane k the eight products of elements 4k..4k+3 and 4k+16..4k+19
// (exact: each below 2^24), converted to f32, times the block's scale
// product d = f16(wd)·xd (a rounded multiply, then a rounded add: SIMD128
// has no fused multiply-add) into accumulator A_(b mod 4); at the end
// (A_0+A_2) + (A_1+A_3) lane by lane, then (w0+w2) + (w1+w3): vec's hsum16
// (sumAcc with the four accumulators in that order).
//
// A block's sixteen nibble bytes, read as eight i16 words, hold in word w
// elements 2w (bits 0..3), 2w+16 (4..7), 2w+1 (8..11) and 2w+17 (12..15);
// i32x4.dot_i16x8_s of one such field, one i16 per word, with the
// activations of those elements, deinterleaved ([x0, x2, …, x14] for
// the first field), puts the products of elements 4k and 4k+2 (4k+1,
// 4k+3; +16) into lane k: four dots and three adds give a block's four
// lanes in one vector, then one convert, one multiply and one add. (Dots
// of natural-order nibbles and activations, as q8_0's, pair elements 2k
// and 2k+1, so each lane would be the sum of two neighbours: some 14
// more instructions per block and row in wazero, against the
// deinterleaving's 40 per block shared by four rows.) The fields come out
// of two loads with masks alone, each scaled by 16: the word load's bits
// 4..7 (y & 0x00f0) and its bits 0..3 times 16 ((y·16) & 0x00f0, one
// pmullw: wazero emits no immediate shift, and a shift by a constant is
// four instructions), and the same of a load one byte on, whose low bytes
// are the block's odd bytes (which reads the byte after the block: see
// q4Body). The nibbles are unsigned there; the 8 they are stored above
// their values comes off as c = 128·Σx per lane, once per activation
// block, not per weight row. The sums are 16 times vec's, exactly
// (|16·s| < 2^25 and every i32 is exact; 16·s converts exactly), and the
// scale product is taken over 16: see q4ScaleOK. A block and row is some
// 27 instructions: two loads, two copies, two pmullw, four pand, four
// dots, four integer adds (c's subtraction among them), the convert, the
// multiply and the add into the accumulator with its load and store, and
// the scale: a load, a multiply by xd's and a splat (two).
//
// The activations arrive natural, so each activation block is
// deinterleaved (masks or dots with [0, 1] and a narrow per vector: no
// i8x16.shuffle, which wazero makes two pshufb, two constant loads and a
// por), and that, c and the block's scale are shared by q4Rows weight
// rows at a time, M = rows/q4Rows apart: each row of a group streams on
// into the next group's, so that a decode reads q4Rows long sequential
// streams of weights rather than starting q4Rows short ones per group,
// which the prefetcher follows poorly (RATIONALE.md, "q8_0 decode reads
// one row after another"): adjacent rows side by side took a decode of a
// 8192×8192 matrix, its weights from memory, 7.2 ms or more against 6.0
// to 6.3 for rows M apart, and 6.4 for the one-row kernel of the old lane
// order. Four rows' sixteen accumulators live on wazero's stack (a load
// and a store per block and row): eight rows, with twice the code, were
// no faster (BenchmarkMatVec within a few percent either way, the larger
// loop sometimes slower), and two share each deinterleaving between too
// few rows. The rows left over go one at a time.
//
// Per group and activation row, runs of q4Run blocks (then four, then up
// to three alone) bounds-check each pointer once per run, as rowRuns does
// (see tile), their blocks' classes b mod 4 known statically. Runs of 16
// halve the checks but made the loop too large to run faster.

// q4Rows is how many weight rows share a deinterleaved activation block;
// q4Run how many blocks a run takes.
const (
	q4Rows = 4
	q4Run  = 8
)

// q4Kernel assembles KernelQ4_0.
func q4Kernel() *fn {
	f := &fn{name: KernelQ4_0, params: []valType{i32, i32, i32, i32, i32, i32, i32, i32, i32}}
	i, t, b := f.local(i32), f.local(i32), f.local(i32)
	zero, p, u, v, bad := f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32)
	q4ScaleOK(f, zero, p, u, v, bad)
	f.op(0x04, 0x40) // if
	q4Body(f, true, i, t, b)
	f.op(0x05) // else
	q4Body(f, false, i, t, b)
	f.end()
	return f
}

// q4ScaleOK leaves 1 on the stack if every activation scale of rows
// tstart ≤ t < trows is zero, Inf, NaN or of magnitude in [2^-98, 2^112),
// else 0 (p, u, v and bad are i32 scratch locals). Then taking the scale
// product over 16 is exact: a nonzero f16 scale is at least 2^-24, so
// d = wd·xd is at least 2^-122 and d/16 a normal f32, and wd·(xd/16) (xd/16
// exact) rounds as d does, over 16, since |wd·xd| < 2^128·(1−2^-11) cannot
// overflow; then (d/16)·(16·s) is the real d·s and rounds as vec's. Other
// scales (some activation row all but zero, or of magnitude 2^112 and
// more) take the kernel's unscaled copy: the sums shifted back by 4, d
// unscaled.
func q4ScaleOK(f *fn, tstart, p, u, v, bad uint32) {
	const xd, nb, trows = 4, 7, 8
	f.i32Const(0)
	f.set(bad)
	// p runs over the scales' byte addresses, u is their end
	f.rowPtr(p, xd, nb, tstart, 4, 0)
	f.rowPtr(u, xd, nb, trows, 4, 0)
	f.whileLt(p, u, func() {
		// bad |= 1 ≤ |bits| < bits(2^-98), as (|bits|−1) <u 29<<23 − 1,
		// or bits(2^112) ≤ |bits| < bits(Inf)
		f.get(bad)
		f.get(p)
		f.op(0x28) // i32.load
		f.memarg(2, 0)
		f.i32Const(0x7fffffff)
		f.i32And()
		f.tee(v)
		f.i32Const(1)
		f.i32Sub()
		f.i32Const(29<<23 - 1)
		f.i32LtU()
		f.i32Or()
		f.get(v)
		f.i32Const((127 + 112) << 23)
		f.i32Sub()
		f.i32Const(0x7f800000 - (127+112)<<23)
		f.i32LtU()
		f.i32Or()
		f.set(bad)
		f.inc(p, 4)
	})
	f.get(bad)
	f.i32Eqz()
}

// q4Body emits the kernel's loops, scaled (q4ScaleOK holds) or not: the
// groups of q4Rows rows M apart, each against every activation row, then
// the rows left one at a time. The groups read the byte after each
// block's sixteen, after the weights' last for the last row: when that
// byte is past the memory's end, the last row goes with the rows left,
// which shift the odd bytes down instead.
func q4Body(f *fn, scaled bool, i, t, b uint32) {
	const wq, rows, nb, trows = 3, 6, 7, 8
	e := &q4Emitter{f: f, scaled: scaled, i: i, t: t, b: b}
	e.consts = f.localsOf(v128, len(q4Consts))
	// Group i takes rows i, i+M, i+2M, i+3M. Unscaled, every row goes
	// alone: that copy is for activation scales no model gives
	// (q4ScaleOK), and one row at a time keeps it small.
	e.M = f.local(i32)
	f.i32Const(0)
	f.set(e.M)
	if scaled {
		// M = lim / q4Rows, lim = rows less the last row when the byte
		// past the weights is not in memory: the groups read one byte
		// past each block (the rows left take the last row, without).
		// The byte's page, (wq + 16·nb·rows) >> 16, is
		// ((wq>>4) + nb·rows) >> 12, which cannot overflow (checkMul:
		// 16·nb·rows < 2^31).
		f.get(rows)
		f.get(wq)
		f.i32Const(4)
		f.i32ShrU()
		f.get(nb)
		f.get(rows)
		f.i32Mul()
		f.i32Add()
		f.i32Const(12)
		f.i32ShrU()
		f.op(0x3f, 0x00) // memory.size
		f.i32GeU()
		f.get(rows)
		f.i32Const(0)
		f.op(0x47) // i32.ne
		f.i32And()
		f.i32Sub()
		f.i32Const(q4Rows)
		f.op(0x6e) // i32.div_u
		f.set(e.M)
		f.i32Const(0)
		f.set(i)
		f.whileLt(i, e.M, func() {
			f.forLoop(t, trows, func() { e.group(q4Rows, true) })
			f.inc(i, 1)
		})
	}
	// the rows left, from q4Rows·M, one at a time
	f.get(e.M)
	f.i32Const(q4Rows)
	f.i32Mul()
	f.set(i)
	f.whileLt(i, rows, func() {
		f.forLoop(t, trows, func() { e.group(1, false) })
		f.inc(i, 1)
	})
}

// q4Consts are the kernel's vector constants, every i32 lane: the nibble
// mask (0x00f0 per i16), 16 (per i16), the low i16 of each i32, [0, 1]
// per i32 (a dot that takes the high i16) and 128 (per i16).
var q4Consts = [...]uint32{0x00f000f0, 0x00100010, 0x0000ffff, 0x00010000, 0x00800080}

const (
	q4Mask = iota
	q4Times16
	q4Low16
	q4High16
	q4Bias
)

// q4Emitter emits q4_0's loops: scaled or not, over the kernel's locals
// i (the group's first row), t (the activation row), b (the block) and M
// (the rows' distance within a group).
type q4Emitter struct {
	f          *fn
	scaled     bool
	i, t, b, M uint32
	consts     []uint32
}

// group emits weight rows i, i+M, … (R of them; just i when R is 1)
// against activation row t, the weights' odd bytes loaded one byte on
// when plusOne, else shifted down from the word load.
func (e *q4Emitter) group(R int, plusOne bool) {
	f := e.f
	const dst, ds, wd, wq, xd, xq, nb = 0, 1, 2, 3, 4, 5, 7
	pxd, pxq, end, ri := f.local(i32), f.local(i32), f.local(i32), f.local(i32)
	pw, pq := f.localsOf(i32, R), f.localsOf(i32, R)
	acc := f.localsOf(v128, 4*R)
	// x: the block's activations deinterleaved, [x0, x2, …, x14],
	// [x16, …, x30], [x1, …, x15], [x17, …, x31]: the partners of the
	// words' fields 0..3
	x := f.localsOf(v128, 4)
	xa, xb, y, dr, c, xd4 := f.local(v128), f.local(v128), f.local(v128), f.local(v128), f.local(v128), f.local(v128)
	xds := f.local(f32)
	for r := range R {
		// ri = i + r·M
		f.get(e.i)
		if r > 0 {
			f.get(e.M)
			f.i32Const(int32(r))
			f.i32Mul()
			f.i32Add()
		}
		f.set(ri)
		f.rowPtr(pw[r], wd, nb, ri, 4, 0)
		f.rowPtr(pq[r], wq, nb, ri, 16, 0)
	}
	f.rowPtr(pxd, xd, nb, e.t, 4, 0)
	f.rowPtr(pxq, xq, nb, e.t, 64, 0)
	for _, a := range acc {
		f.v128Zero()
		f.set(a)
	}
	f.i32Const(0)
	f.set(e.b)

	cst := func(k int) { f.get(e.consts[k]) }
	// prep sets x and c for the activation block at pxq+off. The
	// constants are set again for every block, from wazero's constant
	// pool: set once, they were spilled and reloaded where used (wazero's
	// allocator evicts the value used last, and loop-invariant ones look
	// used last), while values set in the block are kept over the
	// accumulators, which the next block reads.
	prep := func(off uint32) {
		for k, v := range q4Consts {
			f.v128Splat32(v)
			f.set(e.consts[k])
		}
		for h := range 2 {
			// the even elements: the low i16 of each i32, narrowed
			// (unsigned, so the bits pass as they are)
			f.get(pxq)
			f.v128Load(off + uint32(32*h))
			f.tee(xa)
			cst(q4Low16)
			f.v128And()
			f.get(pxq)
			f.v128Load(off + uint32(32*h) + 16)
			f.tee(xb)
			cst(q4Low16)
			f.v128And()
			f.simd(0x86) // i16x8.narrow_i32x4_u
			f.set(x[h])
			// the odd ones: the high i16 of each i32, by a dot with [0, 1]
			f.get(xa)
			cst(q4High16)
			f.i32x4DotI16x8S()
			f.get(xb)
			cst(q4High16)
			f.i32x4DotI16x8S()
			f.simd(0x85) // i16x8.narrow_i32x4_s
			f.set(x[2+h])
		}
		// c = 128·Σx over each lane's eight elements
		for k := range x {
			f.get(x[k])
			cst(q4Bias)
			f.i32x4DotI16x8S()
			if k > 0 {
				f.i32x4Add()
			}
		}
		f.set(c)
	}
	// field pushes 16·(one nibble field of the words on the stack): bits
	// 0..3 when low, else 4..7
	field := func(low bool) {
		if low {
			cst(q4Times16)
			f.simd(0x95) // i16x8.mul
		}
		cst(q4Mask)
		f.v128And()
	}
	// blockRow adds row r's block at pq[r]+qoff, against x, times the
	// scale in every lane of dr, into accumulator a
	blockRow := func(r int, qoff, a uint32, plusOne bool) {
		f.get(a)
		f.get(pq[r])
		f.v128Load(qoff)
		f.tee(y)
		field(true)
		f.get(x[0])
		f.i32x4DotI16x8S()
		f.get(y)
		field(false)
		f.get(x[1])
		f.i32x4DotI16x8S()
		f.i32x4Add()
		// the odd bytes in the words' low bytes
		if plusOne {
			f.get(pq[r])
			f.v128Load(qoff + 1)
		} else {
			f.get(y)
			f.i32Const(8)
			f.i16x8ShrU()
		}
		f.tee(y)
		field(true)
		f.get(x[2])
		f.i32x4DotI16x8S()
		f.i32x4Add()
		f.get(y)
		field(false)
		f.get(x[3])
		f.i32x4DotI16x8S()
		f.i32x4Add()
		f.get(c)
		f.simd(0xb1) // i32x4.sub
		if !e.scaled {
			f.i32Const(4)
			f.simd(0xac) // i32x4.shr_s
		}
		f.f32x4ConvertI32x4S()
		f.get(dr)
		f.f32x4Mul()
		f.f32x4Add()
		f.set(a)
	}
	// scale sets dr to row r's block scale at pw[r]+off times xds in
	// every lane: wd·xd, over 16 when scaled (xds is)
	scale := func(r int, off uint32) {
		f.get(pw[r])
		f.f32Load(off)
		f.get(xds)
		f.f32Mul()
		f.f32x4Splat()
		f.set(dr)
	}
	// run emits n blocks (a multiple of four) at the pointers, then
	// moves them on
	run := func(n int) {
		// the bounds checks of the run's loads, one per pointer (the
		// weights' one byte past the run: see plusOne)
		f.get(pxq)
		f.i32Load8U(uint32(64*n - 1))
		f.drop()
		f.get(pxd)
		f.i32Load8U(uint32(4*n - 1))
		f.drop()
		for r := range R {
			last := 16*n - 1
			if plusOne {
				last++
			}
			f.get(pq[r])
			f.i32Load8U(uint32(last))
			f.drop()
			f.get(pw[r])
			f.i32Load8U(uint32(4*n - 1))
			f.drop()
		}
		for j := range n {
			if j%4 == 0 {
				// the next four activation scales, over 16 when scaled
				f.get(pxd)
				f.v128Load(uint32(4 * j))
				if e.scaled {
					f.splatF32(1.0 / 16)
					f.f32x4Mul()
				}
				f.set(xd4)
			}
			prep(uint32(64 * j))
			f.get(xd4)
			f.f32x4ExtractLane(byte(j % 4))
			f.set(xds)
			for r := range R {
				scale(r, uint32(4*j))
				blockRow(r, uint32(16*j), acc[4*r+j%4], plusOne)
			}
		}
		for r := range R {
			f.inc(pw[r], int32(4*n))
			f.inc(pq[r], int32(16*n))
		}
		f.inc(pxd, int32(4*n))
		f.inc(pxq, int32(64*n))
		f.inc(e.b, int32(n))
	}
	// single emits one block, of class j, and moves the pointers on
	single := func(j int) {
		prep(0)
		f.get(pxd)
		f.f32Load(0)
		if e.scaled {
			f.f32Const(1.0 / 16)
			f.f32Mul()
		}
		f.set(xds)
		for r := range R {
			scale(r, 0)
			blockRow(r, 0, acc[4*r+j], false)
			f.inc(pw[r], 4)
			f.inc(pq[r], 16)
		}
		f.inc(pxd, 4)
		f.inc(pxq, 64)
		f.inc(e.b, 1)
	}
	for n := q4Run; n >= 4; n /= 2 {
		f.get(nb)
		f.i32Const(int32(-n))
		f.i32And()
		f.set(end)
		f.whileLt(e.b, end, func() { run(n) })
	}
	// up to three blocks left, of classes 0, 1, 2
	var tail func(j int)
	tail = func(j int) {
		if j == 3 {
			return
		}
		f.get(e.b)
		f.get(nb)
		f.i32LtU()
		f.op(0x04, 0x40) // if
		single(j)
		tail(j + 1)
		f.end()
	}
	tail(0)
	// dst[t·ds + i + r·M] = the sum of row r's accumulators
	for r := range R {
		f.get(dst)
		f.get(e.t)
		f.get(ds)
		f.i32Mul()
		f.get(e.i)
		f.i32Add()
		if r > 0 {
			f.get(e.M)
			f.i32Const(int32(r))
			f.i32Mul()
			f.i32Add()
		}
		f.i32Const(2)
		f.i32Shl()
		f.i32Add()
		f.sumAcc(acc[4*r : 4*r+4])
		f.f32Store(0)
	}
}
