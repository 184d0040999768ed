package wasmsimd

// The q8_0 and q4_0 kernels' decode path (activation rows left over from
// whole tiles, one at a time, against one weight row at a time; q4_0's
// prefill too),
// restructured for the machine code wazero emits for it (read with
// ./asmdump). In the general rowGroups a q4_0 block and row took some 45
// instructions, of which only twelve are the arithmetic the exact sum
// needs (four pmaddwd, two paddd, two cvtdq2ps, two mulps, two addps):
//
//   - unpacking the nibbles to the four i16x8 vectors took sixteen: a load
//     and a copy, pand and psubb per half, the high half's i16x8.shr_u
//     (wazero emits no immediate shift: mov, and, movd, psrlw), then
//     pmovsxbw for the low eight bytes of each and palignr+pmovsxbw for
//     the high eight;
//   - every block reloaded its activation quants for each weight row;
//   - each run of four blocks paid some 45 instructions of bounds checks
//     (one per pointer, each reloading the memory's length through the
//     imported memory's instance), pointer increments and reloads of
//     spilled loop locals.
//
// rowRuns instead widens each eight bytes of q4_0 nibbles as it loads
// them (v128.load8x8_u: one pmovzxbw from memory) and takes both nibbles
// of each 16-bit lane with masks alone, scaled by 16: the high nibble is
// already 16·hi in y & 0x00f0, and the low one 16·lo in (y·16) & 0x00f0
// (i16x8.mul, one pmullw, in place of a shift); less 128 each, the
// weights are 16·(q−8). Fourteen instructions, no shift. The integer sums
// are then exactly 16 times vec's (|16·s| < 2^24, and every i32 is
// exact), and so is their conversion to f32; each block's scale product
// d = wd·xd, rounded as vec rounds it, is divided by 16 before it
// multiplies, which is exact unless d/16 falls below the smallest normal
// f32: then (d/16)·(16·s) is d·s exactly, and rounds as vec's d·s. The
// scales are f16 values (|wd| ≥ 2^-24 unless zero), so d/16 is exact
// whenever every nonzero activation scale is at least 2^-98 (d ≥ 2^-122);
// the kernel checks that once per call (q4ScaleOK) and otherwise takes
// rowGroups. q8_0's quants are widened as they load (v128.load8x8_s).
// A block's activation quants are loaded once for the group's rows, and
// runs are eight blocks long (then one of four, then single blocks),
// halving the checks and loop overhead per block; q4_0's one row at a
// time takes runs of sixteen first (BenchmarkMatVec medians 76 µs
// against 82 with eight).
//
// q8_0 goes one weight row at a time: a decode reads its weights from
// memory, not cache, and this machine's prefetcher follows one stream
// well and rows side by side poorly (RATIONALE.md, "q8_0 decode reads one
// row after another"): one row at a time took 6.6 ms of the guest's CPU
// a decoded token against four rows' 10.6, though four are ~5% faster in
// cache.
// q4_0 went two rows at a time (it is bound by its operations rather
// than by memory: one row measured 8% slower in cache) until it summed
// even and odd blocks apart: two rows' eight accumulators, the four
// activation vectors and the constants are more than wazero's sixteen
// v128 registers, and spilling measured BenchmarkMatVec's median 100 µs
// against one row's 78 (the old order's two rows: 74).

// q4ScaleOK leaves 1 on the stack if every activation scale of rows
// tstart ≤ t < trows is zero, at least 2^-98 in magnitude, Inf or NaN
// (rowRuns' condition for q4_0), else 0. p and u are i32 scratch locals.
func q4ScaleOK(f *fn, tstart, p, u, bad uint32) {
	const xd, nb, trows = 4, 7, 8
	f.i32Const(0)
	f.set(bad)
	// p runs over the scales' byte addresses, u is their end
	f.rowPtr(p, xd, nb, tstart, 4, 0)
	f.rowPtr(u, xd, nb, trows, 4, 0)
	f.whileLt(p, u, func() {
		// bad |= 1 ≤ |bits| < bits(2^-98), as (|bits|−1) <u 29<<23 − 1
		f.get(bad)
		f.get(p)
		f.op(0x28) // i32.load
		f.memarg(2, 0)
		f.i32Const(0x7fffffff)
		f.i32And()
		f.i32Const(1)
		f.i32Sub()
		f.i32Const(29<<23 - 1)
		f.i32LtU()
		f.i32Or()
		f.set(bad)
		f.inc(p, 4)
	})
	f.get(bad)
	f.i32Eqz()
}

// rowRuns emits blockKernel's loop over groups of R (1 or 2) weight rows
// from i while i < lim (lim a multiple of R past i), leaving i at lim,
// each group against the activation rows from tstart on, one at a time;
// see the top of the file. Its sums are rowGroups', lane for lane (for
// q4_0 where q4ScaleOK holds).
func rowRuns(f *fn, qb int32, R int, i, t, b, lim, tstart uint32) {
	const dst, ds, wd, wq, xd, xq, rows, nb, trows = 0, 1, 2, 3, 4, 5, 6, 7, 8
	pxd, pxq, end := f.local(i32), f.local(i32), f.local(i32)
	pw, pq := make([]uint32, R), make([]uint32, R)
	for r := range R {
		pw[r], pq[r] = f.local(i32), f.local(i32)
	}
	na := accPer(qb)
	acc := f.localsOf(v128, na*R)
	x := f.localsOf(v128, 4)
	dv := f.localsOf(v128, R)
	dr, y := f.local(v128), f.local(v128)
	// the constants, in locals: wazero does not fold a v128.const into
	// its use but reloads it each time
	mask, bias, c16 := f.local(v128), f.local(v128), f.local(v128)
	for _, c := range []struct {
		l uint32
		v uint32
	}{{mask, 0x00f000f0}, {bias, 0x00800080}, {c16, 0x00100010}} {
		f.v128Splat32(c.v)
		f.set(c.l)
	}

	// half pushes the four i32 lanes of one half block: the eight bytes
	// at pq[r]+off widened (y), their low nibbles against xlo and their
	// high ones against xhi, each 16·(q−8)
	half := func(r int, off uint32, xlo, xhi uint32) {
		if qb == 32 {
			// q8_0: the block's bytes off..off+7 and off+16..off+23,
			// widened as they load
			f.get(pq[r])
			f.simd(0x01) // v128.load8x8_s
			f.memarg(3, off)
			f.get(xlo)
			f.i32x4DotI16x8S()
			f.get(pq[r])
			f.simd(0x01) // v128.load8x8_s
			f.memarg(3, off+16)
			f.get(xhi)
			f.i32x4DotI16x8S()
			f.i32x4Add()
			f.f32x4ConvertI32x4S()
			return
		}
		f.get(pq[r])
		f.simd(0x02) // v128.load8x8_u
		f.memarg(3, off)
		f.tee(y)
		f.get(c16)
		f.simd(0x95) // i16x8.mul
		f.get(mask)
		f.v128And()
		f.get(bias)
		f.simd(0x91) // i16x8.sub
		f.get(xlo)
		f.i32x4DotI16x8S()
		f.get(y)
		f.get(mask)
		f.v128And()
		f.get(bias)
		f.simd(0x91) // i16x8.sub
		f.get(xhi)
		f.i32x4DotI16x8S()
		f.i32x4Add()
		f.f32x4ConvertI32x4S()
	}
	// run emits n blocks (1, 4, 8 or 16) at the pointers, then moves them on;
	// a lone block is odd (for q4_0's accumulators) when odd, a run's
	// block j when j is
	run := func(n int, odd bool) {
		// the bounds checks of the run's loads, one per pointer
		checks := []struct {
			p   uint32
			end int
		}{{pxq, 64 * n}, {pxd, 4 * n}}
		for r := range R {
			checks = append(checks, struct {
				p   uint32
				end int
			}{pq[r], int(qb) * n}, struct {
				p   uint32
				end int
			}{pw[r], 4 * n})
		}
		for _, c := range checks {
			f.get(c.p)
			f.i32Load8U(uint32(c.end - 1))
			f.drop()
		}
		for j := range n {
			if n > 1 && j%4 == 0 {
				// dv[r] = (wd·xd)/16 for the four blocks j..j+3
				for r := range R {
					f.get(pw[r])
					f.v128Load(uint32(4 * j))
					f.get(pxd)
					f.v128Load(uint32(4 * j))
					f.f32x4Mul()
					if qb == 16 {
						f.splatF32(1.0 / 16)
						f.f32x4Mul()
					}
					f.set(dv[r])
				}
			}
			for k := range x {
				f.get(pxq)
				f.v128Load(uint32(64*j + 16*k))
				f.set(x[k])
			}
			for r := range R {
				if n > 1 {
					f.get(dv[r])
					f.f32x4ExtractLane(byte(j % 4))
				} else {
					f.get(pw[r])
					f.f32Load(0)
					f.get(pxd)
					f.f32Load(0)
					f.f32Mul()
					if qb == 16 {
						f.f32Const(1.0 / 16)
						f.f32Mul()
					}
				}
				f.f32x4Splat()
				f.set(dr)
				// lanes 0..3: elements 0..7 and 16..23; 4..7: 8..15 and 24..31
				for h := range 2 {
					a := accFor(acc[na*r:na*(r+1)], h, odd || n > 1 && j%2 == 1)
					f.get(a)
					half(r, uint32(int(qb)*j+8*h), x[h], x[h+2])
					f.get(dr)
					f.f32x4Mul()
					f.f32x4Add()
					f.set(a)
				}
			}
		}
		for r := range R {
			f.inc(pw[r], int32(4*n))
			f.inc(pq[r], qb*int32(n))
		}
		f.inc(pxd, int32(4*n))
		f.inc(pxq, int32(64*n))
		f.inc(b, int32(n))
	}
	f.whileLt(i, lim, func() {
		f.get(tstart)
		f.set(t)
		f.whileLt(t, trows, func() {
			f.groupStart(qb, i, t, b, pw, pq, pxd, pxq, acc)
			ns := []int{8, 4, 1}
			if qb == 16 {
				ns = []int{16, 8, 4, 1}
			}
			for _, n := range ns {
				if n == 1 && qb == 16 {
					f.tailBlocks(qb, b, func(odd bool) { run(1, odd) })
					break
				}
				f.get(nb)
				f.i32Const(int32(-n))
				f.i32And()
				f.set(end)
				f.whileLt(b, end, func() { run(n, false) })
			}
			f.storeSums(qb, dst, ds, t, i, acc)
			f.inc(t, 1)
		})
		f.inc(i, int32(R))
	})
}
