package wasmsimd

// The q8_0 kernel's decode path (activation rows left over from whole
// tiles, one at a time, against one weight row at a time), restructured
// for the machine code wazero emits for it (read with ./asmdump): the
// general loop's blocks each paid, besides the arithmetic the exact sum
// needs, a reload of the activation quants per weight row and, per run of
// four blocks, some 45 instructions of bounds checks (one per pointer,
// each reloading the memory's length through the imported memory's
// instance), pointer increments and reloads of spilled loop locals.
//
// rowRuns widens q8_0's quants as they load (v128.load8x8_s: one
// pmovsxbw from memory), loads a block's activation quants once for the
// group's rows, and takes runs of eight blocks (then one of four, then
// single blocks), halving the checks and loop overhead per block.
//
// q8_0 goes one weight row at a time: a decode reads its weights from
// memory, not cache, and this machine's prefetcher follows one stream
// well and rows side by side poorly (RATIONALE.md, "q8_0 decode reads one
// row after another"): one row at a time took 6.6 ms of the guest's CPU
// a decoded token against four rows' 10.6, though four are ~5% faster in
// cache. (q4_0's kernel, q4.go, shares its activation work between rows
// far apart, each a stream of its own.)

// rowRuns emits q8Kernel's loop over groups of R weight rows from i while
// i < lim (lim a multiple of R past i), leaving i at lim, each group
// against the activation rows from tstart on, one at a time; see the top
// of the file. Its sums are q8Kernel's, lane for lane.
func rowRuns(f *fn, qb int32, R int, i, t, b, lim, tstart uint32) {
	const dst, ds, wd, wq, xd, xq, rows, nb, trows = 0, 1, 2, 3, 4, 5, 6, 7, 8
	pxd, pxq, end := f.local(i32), f.local(i32), f.local(i32)
	pw, pq := make([]uint32, R), make([]uint32, R)
	for r := range R {
		pw[r], pq[r] = f.local(i32), f.local(i32)
	}
	acc := f.localsOf(v128, 2*R)
	x := f.localsOf(v128, 4)
	dv := f.localsOf(v128, R)
	dr := f.local(v128)

	// half pushes the four f32 lanes of one half block: the block's bytes
	// off..off+7 against xlo and off+16..off+23 against xhi, widened as
	// they load
	half := func(r int, off uint32, xlo, xhi uint32) {
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
	}
	// run emits n blocks (1, 4 or 8) at the pointers, then moves them on
	run := func(n int) {
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
				// dv[r] = wd·xd for the four blocks j..j+3
				for r := range R {
					f.get(pw[r])
					f.v128Load(uint32(4 * j))
					f.get(pxd)
					f.v128Load(uint32(4 * j))
					f.f32x4Mul()
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
				}
				f.f32x4Splat()
				f.set(dr)
				// lanes 0..3: elements 0..7 and 16..23; 4..7: 8..15 and 24..31
				for h := range 2 {
					a := acc[2*r+h]
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
			for _, n := range []int{8, 4, 1} {
				f.get(nb)
				f.i32Const(int32(-n))
				f.i32And()
				f.set(end)
				f.whileLt(b, end, func() { run(n) })
			}
			f.storeSums(dst, ds, t, i, acc)
			f.inc(t, 1)
		})
		f.inc(i, int32(R))
	})
}
