package wasmsimd

// Module returns the kernel module's binary. It imports its memory as
// (memModule, memField): the host hands it the Go instance's own memory,
// so the kernels compute on the engine's buffers in place.
//
// Each kernel is a whole matrix product over a range of weight rows,
// rather than one dot product, so that one call from Go (through the host)
// covers thousands of blocks and the cost of crossing instances vanishes.
func Module(memModule, memField string) []byte {
	m := &module{memImport: [2]string{memModule, memField}, funcs: kernels()}
	return m.encode()
}

// testModule is Module with a memory of its own, exported as "mem", for
// the tests to fill.
func testModule(pages uint32) []byte {
	m := &module{memPages: pages, funcs: kernels()}
	return m.encode()
}

// The kernels, by export name. Every kernel has the signature
//
//	(dst, ds, wd, wq, xd, xq, rows, nb, trows i32)
//
// and sets the f32 dst[t·ds + i] (dst a byte address, ds in elements) to
// weight row i times activation row t for i < rows, t < trows: weight row
// i's scales start at wd + 4·nb·i, as f32 (the f16 scales decoded once,
// exactly, by the caller: decoding four in the loop was some 20
// instructions, a seventh of the q4_0 kernel's), and its quants at wq + QB·nb·i (QB
// bytes per 32-element block: 32 for q8_0, 16 for q4_0); activation row
// t's f32 scales start at xd + 4·nb·t and its int16 quants at
// xq + 64·nb·t (tensor.Q16Rows' layout). Each result has the bits of
// vec.DotQ8_0 / vec.DotQ4_0 for that row pair (q4_0's given weight
// scales that are f16 values, as they are: q4Kernel's exactness rests on
// a nonzero one being at least 2^-24, q4ScaleOK). q4_0's kernel may read
// the byte after the weights' last, when it is in memory (q4Body).
const (
	KernelQ8_0 = "q8_0"
	KernelQ4_0 = "q4_0"
)

func kernels() []*fn {
	return []*fn{q8Kernel(), q4Kernel(), q4kKernel(),
		floatKernel(KernelF32, false), floatKernel(KernelF16, true), scoresKernel(), weightedSumKernel(), expKernels()[0], expKernels()[1], q16Kernel(),
		rmsnormKernel(false), rmsnormKernel(true), softmaxKernel()}
}

// KernelQ4_K has the signature
//
//	(dst, ds, dm, sc, mn, qs, xd, g, xq, rows, nb, trows i32)
//
// with nb 32-element sub-blocks per row (a multiple of 8: whole
// super-blocks) and sets dst[t·ds + i] as the others do, to the bits of
// vec.DotQ4_K: weight row i's f16 (d, dmin) pairs start at dm + 4·(nb/8)·i,
// its u8 sub-block scales and minimums at sc + nb·i and mn + nb·i, its
// nibbles at qs + 16·nb·i; activation row t's scales, sums d·Σq and quants
// at xd + 4·nb·t, g + 4·nb·t and xq + 64·nb·t.
const KernelQ4_K = "q4_k"

// q4kKernel assembles KernelQ4_K, summing as vec's dotQ4_KGo: per
// super-block, each sub-block's eight integer lanes (q8_0's lanes, of
// q4_0's nibbles unsigned) times xd·sc into eight f32 lane sums sq; then d·sq
// into the row's lanes and dmin·(mn·g), lane s for sub-block s, into a
// second set; the result hsum8 of the first less hsum8 of the second.
// A super-block's eight sub-blocks are straight-line code, for tile's
// reasons: one bounds check per pointer, xd·sc for four sub-blocks in one
// f32x4.mul (the same rounded products).
func q4kKernel() *fn {
	f := &fn{name: KernelQ4_K, params: []valType{i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32}}
	const (
		dst, ds, dm, sc, mn, qs, xd, g, xq, rows, nb, trows = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
	)
	i, t, b, nbs := f.local(i32), f.local(i32), f.local(i32), f.local(i32)
	pdm, psc, pmn, pqs, pxd, pg, pxq := f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32)
	h, u := f.local(i32), f.local(i32)
	lo, hi, mlo, mhi, sqlo, sqhi, w0, w1, m8 := f.local(v128), f.local(v128), f.local(v128), f.local(v128),
		f.local(v128), f.local(v128), f.local(v128), f.local(v128), f.local(v128)
	fs0, fs1, fv := f.local(v128), f.local(v128), f.local(v128)

	f.get(nb)
	f.i32Const(3)
	f.i32ShrU()
	f.set(nbs)

	forLoop := func(ctr, limit uint32, body func()) {
		f.i32Const(0)
		f.set(ctr)
		f.block()
		f.loop()
		f.get(ctr)
		f.get(limit)
		f.i32GeU()
		f.brIf(1)
		body()
		f.inc(ctr, 1)
		f.br(0)
		f.end()
		f.end()
	}
	// to = base + (nb·idx·num) >> shift
	rowPtr := func(base uint32, num int32, shift int32, idx uint32, to uint32) {
		f.get(base)
		f.get(nb)
		f.get(idx)
		f.i32Mul()
		f.i32Const(num)
		f.i32Mul()
		if shift != 0 {
			f.i32Const(shift)
			f.i32ShrU()
		}
		f.i32Add()
		f.set(to)
	}

	forLoop(i, rows, func() {
		forLoop(t, trows, func() {
			rowPtr(dm, 4, 3, i, pdm)
			rowPtr(sc, 1, 0, i, psc)
			rowPtr(mn, 1, 0, i, pmn)
			rowPtr(qs, 16, 0, i, pqs)
			rowPtr(xd, 4, 0, t, pxd)
			rowPtr(g, 4, 0, t, pg)
			rowPtr(xq, 64, 0, t, pxq)
			for _, l := range []uint32{lo, hi, mlo, mhi} {
				f.v128Zero()
				f.set(l)
			}
			forLoop(b, nbs, func() {
				f.v128Zero()
				f.set(sqlo)
				f.v128Zero()
				f.set(sqhi)
				// lanes l < 8 of the minimums, before the sub-block
				// loop moves the pointers: mn[l] as f32 times g[l]
				f.get(pmn)
				f.v128Load64Zero(0)
				f.i16x8ExtendLowI8x16U()
				f.set(m8)
				minLanes := func(acc uint32, high bool, goff uint32) {
					f.get(acc)
					f.get(m8)
					if high {
						f.simd(0xaa) // i32x4.extend_high_i16x8_u
					} else {
						f.simd(0xa9) // i32x4.extend_low_i16x8_u
					}
					f.f32x4ConvertI32x4S()
					f.get(pg)
					f.v128Load(goff)
					f.f32x4Mul()
					f.get(pdm)
					f.i32Load16U(2)
					f.set(h)
					f.half(h, u)
					f.f32x4Splat()
					f.f32x4Mul()
					f.f32x4Add()
					f.set(acc)
				}
				minLanes(mlo, false, 0)
				minLanes(mhi, true, 16)

				// the bounds checks of the super-block's loads, one per
				// pointer (see tile)
				for _, g := range []struct {
					p   uint32
					end uint32
				}{{pxq, 8 * 64}, {pqs, 8 * 16}, {psc, 8}, {pxd, 8 * 4}} {
					f.get(g.p)
					f.i32Load8U(g.end - 1)
					f.drop()
				}
				// fs = xd[k]·sc[k] for the eight sub-blocks, four to a vector
				f.get(psc)
				f.v128Load64Zero(0)
				f.i16x8ExtendLowI8x16U()
				f.set(w1)
				for k, v := range []uint32{fs0, fs1} {
					f.get(w1)
					if k == 0 {
						f.i32x4ExtendLowI16x8U()
					} else {
						f.i32x4ExtendHighI16x8U()
					}
					f.f32x4ConvertI32x4S()
					f.get(pxd)
					f.v128Load(uint32(16 * k))
					f.f32x4Mul()
					f.set(v)
				}
				for s := range 8 {
					f.get([]uint32{fs0, fs1}[s/4])
					f.f32x4ExtractLane(byte(s % 4))
					f.f32x4Splat()
					f.set(fv)
					// the sub-block's nibbles, unsigned: low in w0, high
					// in w1 (i16x8.shr_u then a mask, as blockQuantsAt)
					f.get(pqs)
					f.v128Load(uint32(16 * s))
					f.tee(w1)
					f.v128Splat8(0x0f)
					f.v128And()
					f.set(w0)
					f.get(w1)
					f.i32Const(4)
					f.i16x8ShrU()
					f.v128Splat8(0x0f)
					f.v128And()
					f.set(w1)
					lanes := func(acc uint32, high bool, xoff uint32) {
						f.get(acc)
						f.quantDot(w0, w1, high, f.loadAt(pxq, xoff), f.loadAt(pxq, xoff+32))
						f.get(fv)
						f.f32x4Mul()
						f.f32x4Add()
						f.set(acc)
					}
					lanes(sqlo, false, uint32(64*s))
					lanes(sqhi, true, uint32(64*s+16))
				}
				f.inc(pxd, 32)
				f.inc(psc, 8)
				f.inc(pqs, 128)
				f.inc(pxq, 512)
				// acc += d·sq
				f.get(pdm)
				f.i32Load16U(0)
				f.set(h)
				f.half(h, u)
				f.f32x4Splat()
				f.set(w0)
				f.get(lo)
				f.get(w0)
				f.get(sqlo)
				f.f32x4Mul()
				f.f32x4Add()
				f.set(lo)
				f.get(hi)
				f.get(w0)
				f.get(sqhi)
				f.f32x4Mul()
				f.f32x4Add()
				f.set(hi)
				f.inc(pdm, 4)
				f.inc(pmn, 8)
				f.inc(pg, 32)
			})
			// dst[t·ds + i] = hsum8(lo‖hi) − hsum8(mlo‖mhi)
			f.dstAddr(dst, ds, t, i)
			f.get(lo)
			f.get(hi)
			f.f32x4Add()
			f.set(lo)
			f.hsum4(lo)
			f.get(mlo)
			f.get(mhi)
			f.f32x4Add()
			f.set(mlo)
			f.hsum4(mlo)
			f.f32Sub()
			f.f32Store(0)
		})
	})
	return f
}

// q8Kernel assembles KernelQ8_0.
//
// It sums as runtime/vec's Go twin does, bit for bit: each block's 32
// integer products go into eight i32 lanes, lane k holding elements 2k,
// 2k+1, 2k+16 and 2k+17 — i32x4.dot_i16x8_s of elements 0..7 plus that
// of 16..23 gives lanes 0..3, of 8..15 plus 24..31 lanes 4..7 —, exact
// since each is below 2^24; each lane converted to f32, multiplied by the
// block's scale product d = f16(wd)·xd and added to its f32 accumulator
// (a rounded multiply, then a rounded add: SIMD128 has no fused
// multiply-add); at the end the upper four accumulators are added onto
// the lower four and those summed as (s0+s2)+(s1+s3): vec's hsum8.
// (q4_0 sums its own lanes: q4Kernel.)
//
// Whole tiles of four activation rows (a prefill's tokens) go one weight
// row at a time (tile: the weight block widened once for the tile's
// rows); the activation rows left (a decode's one) against one weight row
// at a time (rowRuns), which measured faster for one activation row than
// tile's code does.
func q8Kernel() *fn {
	const qb = 32
	f := &fn{name: KernelQ8_0, params: []valType{i32, i32, i32, i32, i32, i32, i32, i32, i32}}
	const rows, trows = 6, 8
	i, t, b, tlim := f.local(i32), f.local(i32), f.local(i32), f.local(i32)
	// whole tiles, then the activation rows left (all of a decode's one)
	// in rowRuns, one weight row at a time
	f.get(trows)
	f.i32Const(-q8Tile)
	f.i32And()
	f.set(tlim)
	f.forLoop(i, rows, func() {
		f.i32Const(0)
		f.set(t)
		tile(f, qb, q8Tile, i, t, b, tlim)
	})
	f.i32Const(0)
	f.set(i)
	rowRuns(f, qb, 1, i, t, b, rows, tlim)
	return f
}

// q8Tile is how many activation rows q8Kernel's tile takes at once.
const q8Tile = 4

// tile emits the loop over weight row i and T activation rows from t at
// a time while t < lim (lim a multiple of T past t), leaving t at lim.
// Each product is summed as q8Kernel says, but in runs of four blocks,
// for what wazero makes of them:
//
//   - a run's four scales are one load, each multiplied by the
//     activation's in f32x4 lanes: the same rounded products as one by
//     one;
//   - wazero bounds-checks a load unless one from the same pointer local
//     at as high an offset has been checked earlier in the same basic
//     block, so each run first touches the last byte of the run at each
//     pointer (one check), after which the run's many loads from them at
//     static offsets go unchecked; per-row pointers are locals for that
//     reason, not sums;
//   - a block's quants are widened to i16x8 once for the T activation
//     rows (wv), and the activation's quants loaded where used, not held:
//     with 2T accumulators held through the loop, wazero's register
//     allocator spills once more than 16 v128 values are live.
//
// The blocks left past the last whole run go one at a time.
func tile(f *fn, qb int32, T int, i, t, b, lim uint32) {
	const dst, ds, wd, wq, xd, xq, rows, nb, trows = 0, 1, 2, 3, 4, 5, 6, 7, 8
	nb4, pw, pq := f.local(i32), f.local(i32), f.local(i32)
	hf := f.local(f32)
	pxd, pxq := make([]uint32, T), make([]uint32, T)
	for k := range T {
		pxd[k], pxq[k] = f.local(i32), f.local(i32)
	}
	acc := f.localsOf(v128, 2*T)
	wv := f.localsOf(v128, 4)
	hv, hs, dr := f.local(v128), f.local(v128), f.local(v128)
	f.get(nb)
	f.i32Const(^3)
	f.i32And()
	f.set(nb4)
	// wv = the block's quants at pq+qoff as i16x8: elements 0..7, 16..23,
	// 8..15, 24..31, widened as they load (wazero extends a high half
	// with palignr+pmovsxbw)
	widen := func(qoff uint32) {
		for k, off := range []uint32{0, 16, 8, 24} {
			f.get(pq)
			f.simd(0x01) // v128.load8x8_s
			f.memarg(3, qoff+off)
			f.set(wv[k])
		}
	}
	// activation row k's accumulators += wv's lanes against its block at
	// pxq[k]+xoff, times the scale in every lane of dr
	lanes := func(k int, xoff uint32) {
		for half := range 2 {
			a := acc[2*k+half]
			f.get(a)
			f.quantDotWide(func() { f.get(wv[2*half]) }, func() { f.get(wv[2*half+1]) },
				f.loadAt(pxq[k], xoff+uint32(16*half)), f.loadAt(pxq[k], xoff+uint32(16*half)+32))
			f.get(dr)
			f.f32x4Mul()
			f.f32x4Add()
			f.set(a)
		}
	}
	f.whileLt(t, lim, func() {
		f.rowPtr(pw, wd, nb, i, 4, 0)
		f.rowPtr(pq, wq, nb, i, qb, 0)
		for k := range T {
			f.rowPtr(pxd[k], xd, nb, t, 4, k)
			f.rowPtr(pxq[k], xq, nb, t, 64, k)
		}
		for _, a := range acc {
			f.v128Zero()
			f.set(a)
		}
		f.i32Const(0)
		f.set(b)
		f.whileLt(b, nb4, func() {
			// the bounds checks of the run's loads, one per pointer
			for k := range T {
				f.get(pxq[k])
				f.i32Load8U(4*64 - 1)
				f.drop()
				f.get(pxd[k])
				f.i32Load8U(4*4 - 1)
				f.drop()
			}
			f.get(pq)
			f.i32Load8U(uint32(4*qb - 1))
			f.drop()
			// hv = the row's four scales
			f.get(pw)
			f.v128Load(0)
			f.set(hv)
			if T == 1 {
				// all four products with xd[b..b+3] at once
				f.get(hv)
				f.get(pxd[0])
				f.v128Load(0)
				f.f32x4Mul()
				f.set(hv)
			}
			for j := range 4 {
				f.get(hv)
				f.f32x4ExtractLane(byte(j))
				f.f32x4Splat()
				if T == 1 {
					f.set(dr)
				} else {
					f.set(hs)
				}
				widen(uint32(j * int(qb)))
				for k := range T {
					if T > 1 {
						f.get(hs)
						f.get(pxd[k])
						f.simd(0x09) // v128.load32_splat
						f.memarg(2, uint32(4*j))
						f.f32x4Mul()
						f.set(dr)
					}
					lanes(k, uint32(64*j))
				}
			}
			f.inc(pw, 16)
			f.inc(pq, 4*qb)
			for k := range T {
				f.inc(pxd[k], 16)
				f.inc(pxq[k], 4*64)
			}
			f.inc(b, 4)
		})
		f.whileLt(b, nb, func() {
			f.get(pw)
			f.f32Load(0)
			f.set(hf)
			widen(0)
			for k := range T {
				// dr = wd[b] · xd[b] in every lane
				f.get(hf)
				f.get(pxd[k])
				f.f32Load(0)
				f.f32Mul()
				f.f32x4Splat()
				f.set(dr)
				lanes(k, 0)
				f.inc(pxd[k], 4)
				f.inc(pxq[k], 64)
			}
			f.inc(pw, 4)
			f.inc(pq, qb)
			f.inc(b, 1)
		})
		// dst[(t+k)·ds + i] = the sum of row k's accumulators
		for k := range T {
			f.dstAddrAt(dst, ds, t, int32(k), i)
			f.sumAcc(acc[2*k : 2*(k+1)])
			f.f32Store(0)
		}
		f.inc(t, int32(T))
	})
}

// quantDot pushes four f32 lanes: lane k is the sum of the products of
// w0's and w1's signed quants (elements 2k, 2k+1 of the low eight, or of
// the high eight when high) with the 16-bit activation quants xa and xb
// push, the pairing of blocks.go's lanes.
func (f *fn) quantDot(w0, w1 uint32, high bool, xa, xb func()) {
	ext := func(w uint32) func() {
		return func() {
			f.get(w)
			if high {
				f.i16x8ExtendHighI8x16S()
			} else {
				f.i16x8ExtendLowI8x16S()
			}
		}
	}
	f.quantDotWide(ext(w0), ext(w1), xa, xb)
}

// quantDotWide is quantDot with the weights' eight quants pushed as
// i16x8 by wa and wb.
func (f *fn) quantDotWide(wa, wb, xa, xb func()) {
	wa()
	xa()
	f.i32x4DotI16x8S()
	wb()
	xb()
	f.i32x4DotI16x8S()
	f.i32x4Add()
	f.f32x4ConvertI32x4S()
}

// loadAt returns what pushes the v128 at offset off from the address in
// local p.
func (f *fn) loadAt(p, off uint32) func() {
	return func() {
		f.get(p)
		f.v128Load(off)
	}
}

// inc adds c to local l.
func (f *fn) inc(l uint32, c int32) {
	f.get(l)
	f.i32Const(c)
	f.i32Add()
	f.set(l)
}

// groupStart points the weight scale and quant pointers pw[r], pq[r] at
// rows i+r and the activation ones pxd, pxq at row t (q8Kernel's
// parameters), zeroes the accumulators and the block counter b: the start
// of a group of weight rows against one activation row, in rowRuns.
func (f *fn) groupStart(qb int32, i, t, b uint32, pw, pq []uint32, pxd, pxq uint32, acc []uint32) {
	const wd, wq, xd, xq, nb = 2, 3, 4, 5, 7
	for r := range pw {
		f.rowPtr(pw[r], wd, nb, i, 4, r)
		f.rowPtr(pq[r], wq, nb, i, qb, r)
	}
	f.rowPtr(pxd, xd, nb, t, 4, 0)
	f.rowPtr(pxq, xq, nb, t, 64, 0)
	for _, a := range acc {
		f.v128Zero()
		f.set(a)
	}
	f.i32Const(0)
	f.set(b)
}

// dstAddr pushes the byte address of the f32 dst[t·ds + i] (dst a byte
// address, ds in elements; all four locals).
func (f *fn) dstAddr(dst, ds, t, i uint32) { f.dstAddrAt(dst, ds, t, 0, i) }

// dstAddrAt is dstAddr for activation row t+k, k a constant (tile's k-th
// row of a tile); k = 0 emits no addition.
func (f *fn) dstAddrAt(dst, ds, t uint32, k int32, i uint32) {
	f.get(dst)
	f.get(t)
	if k != 0 {
		f.i32Const(k)
		f.i32Add()
	}
	f.get(ds)
	f.i32Mul()
	f.get(i)
	f.i32Add()
	f.i32Const(2)
	f.i32Shl()
	f.i32Add()
}

// storeSums sets dst[t·ds + i + r] to the sum of row r's two
// accumulators (see sumAcc) for each row r of a group, as rowRuns ends
// each activation row.
func (f *fn) storeSums(dst, ds, t, i uint32, acc []uint32) {
	for r := range len(acc) / 2 {
		f.dstAddr(dst, ds, t, i)
		f.sumAcc(acc[2*r : 2*(r+1)])
		f.f32Store(uint32(4 * r))
	}
}

// sumAcc pushes the sum of one output's accumulators a as vec sums its
// lanes: for q4_0's four (the blocks b mod 4 = 0, 1, 2, 3) the third
// added onto the first and the fourth onto the second (hsum16's upper
// eight lanes onto the lower eight), then, as for q8_0's two, the second
// onto the first and its lanes as (s0+s2)+(s1+s3) (hsum8). a[0] (and a[1]
// for q4_0) are overwritten.
func (f *fn) sumAcc(a []uint32) {
	if len(a) == 4 {
		for h := range 2 {
			f.get(a[h])
			f.get(a[h+2])
			f.f32x4Add()
			f.set(a[h])
		}
	}
	f.get(a[0])
	f.get(a[1])
	f.f32x4Add()
	f.set(a[0])
	f.hsum4(a[0])
}

// hsum4 pushes (s0+s2)+(s1+s3) of the f32x4 in local s.
func (f *fn) hsum4(s uint32) {
	f.get(s)
	f.f32x4ExtractLane(0)
	f.get(s)
	f.f32x4ExtractLane(2)
	f.f32Add()
	f.get(s)
	f.f32x4ExtractLane(1)
	f.get(s)
	f.f32x4ExtractLane(3)
	f.f32Add()
	f.f32Add()
}

// half pushes the f32 value of the binary16 bits in local h, with the
// bits runtime/vec's half gives (u scratch). A finite f16 is its bits
// moved into an f32's places (magnitude shifted up 13, the sign to bit
// 31), which reads as the value times 2^-112, times 2^112: exact for
// normals, subnormals (an f32 subnormal times a power of two, which
// WebAssembly computes exactly: it never flushes them) and zeros. An
// all-ones exponent (Inf, NaN) takes vec's bits directly: the magnitude
// rebased by 224<<23.
func (f *fn) half(h, u uint32) {
	// u = (h&0x7fff)<<13 | (h&0x8000)<<16
	f.get(h)
	f.i32Const(0x7fff)
	f.i32And()
	f.i32Const(13)
	f.i32Shl()
	f.get(h)
	f.i32Const(0x8000)
	f.i32And()
	f.i32Const(16)
	f.i32Shl()
	f.i32Or()
	f.tee(u)
	// Inf/NaN: u + 224<<23 (the sign bit is untouched: no carry reaches it)
	f.i32Const(224 << 23)
	f.i32Add()
	// finite: bits(f32(u) · 2^112)
	f.get(u)
	f.f32ReinterpretI32()
	f.f32Const(0x1p112)
	f.f32Mul()
	f.i32ReinterpretF32()
	f.get(h)
	f.i32Const(0x7c00)
	f.i32And()
	f.i32Const(0x7c00)
	f.i32Eq()
	f.sel()
	f.f32ReinterpretI32()
}
