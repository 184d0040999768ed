package vec

import "math"

// The block dot products below multiply one row of q8_0 weights (and,
// in q4_0.go, q4_0) by one row of quantised activations: wd holds the
// weights' f16 scales, wq their quants, xd and xq the activations' f32
// scales and int16 quants (in −32767..32767), all for len(xd) blocks of 32
// elements.
//
// They sum the way the AVX2 assembly does, so that the two agree bit for
// bit: each block's 32 integer products are summed in eight lanes, lane k
// holding elements 2k, 2k+1, 2k+16 and 2k+17 (VPMADDWD's pairs from each
// half of the block), a sum below 4·128·32767 < 2^24 and so exact in
// float32; each lane's sum times the block's scale product wd·xd is added
// to that lane's float32 accumulator; and the eight accumulators are summed
// pairwise at the end (hsum8). q4_0 sums in lanes of its own (q4_0.go).

// DotQ8_0 is Σ w·x over len(xd) blocks of q8_0 weights.
func DotQ8_0(wd, wq []byte, xd []float32, xq []int16) float32 {
	n := len(xd)
	wd, wq, xq = wd[:2*n], wq[:BlockSize*n], xq[:BlockSize*n]
	if n == 0 {
		return 0
	}
	return dotQ8_0(wd, wq, xd, xq)
}

func dotQ8_0Go(wd, wq []byte, xd []float32, xq []int16) float32 {
	var acc [8]float32
	for b, dx := range xd {
		d := float32(halfAt(wd, b) * dx)
		w := (*[BlockSize]byte)(wq[BlockSize*b:])
		x := (*[BlockSize]int16)(xq[BlockSize*b:])
		for k := range acc {
			i, j := 2*k, 2*k+BlockSize/2
			s := int32(int8(w[i]))*int32(x[i]) + int32(int8(w[i+1]))*int32(x[i+1]) +
				int32(int8(w[j]))*int32(x[j]) + int32(int8(w[j+1]))*int32(x[j+1])
			acc[k] += float32(d * float32(s))
		}
	}
	return hsum8(&acc)
}

// hsum8 sums eight lanes as the assembly does: the upper four onto the
// lower four, then lanes two apart, then neighbours.
func hsum8(a *[8]float32) float32 {
	s0, s1, s2, s3 := a[0]+a[4], a[1]+a[5], a[2]+a[6], a[3]+a[7]
	return (s0 + s2) + (s1 + s3)
}

// HalfToFloat decodes the f16 values src (little-endian, two bytes each)
// into dst[:len(src)/2], exactly.
func HalfToFloat(dst []float32, src []byte) {
	n := len(src) / 2
	dst = dst[:n]
	if n == 0 {
		return
	}
	halfToFloat(dst, src[:2*n])
}

func halfToFloatGo(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = half(uint16(src[2*i]) | uint16(src[2*i+1])<<8)
	}
}

func halfAt(b []byte, i int) float32 { return half(uint16(b[2*i]) | uint16(b[2*i+1])<<8) }

// half converts binary16 to float32 exactly: tensor.F16ToF32, repeated
// here because tensor imports this package.
func half(h uint16) float32 {
	const expMask = 0x7c00 << 13
	u := uint32(h&0x7fff) << 13
	e := u & expMask
	u += (127 - 15) << 23
	switch e {
	case expMask:
		u += (128 - 16) << 23
	case 0:
		u = math.Float32bits(math.Float32frombits(u+1<<23) - 0x1p-14)
	}
	return math.Float32frombits(u | uint32(h&0x8000)<<16)
}

// DotQ8_0x4 is DotQ8_0 for four weight rows at once, row r's scales
// starting at wd[r·sd] and its quants at wq[r·sq], against one activation
// row: out[r] is bit for bit what DotQ8_0 gives for row r. Sharing the
// activation loads and keeping four independent sums in flight is what
// makes it faster.
func DotQ8_0x4(out *[4]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16) {
	n := len(xd)
	wd, wq, xq = wd[:3*sd+2*n], wq[:3*sq+BlockSize*n], xq[:BlockSize*n]
	if n == 0 {
		*out = [4]float32{}
		return
	}
	dotQ8_0x4(out, wd, sd, wq, sq, xd, xq)
}

func dotQ8_0x4Go(out *[4]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16) {
	for r := range out {
		out[r] = dotQ8_0Go(wd[r*sd:], wq[r*sq:], xd, xq)
	}
}

// DotQ4_K is Σ w·x for one row of q4_k weights over len(xd)/8 super-blocks
// (dm: f16 d and dmin per super-block; sc, mn: u8 scale and minimum per
// 32-element sub-block; qs: 16 bytes of nibbles per sub-block, q4_0's
// order) against activations quantised per sub-block (xd, xq) with
// g[k] = xd[k]·Σ xq over sub-block k.
//
// Per super-block, each sub-block's lanes (as DotQ8_0's) times xd·sc are
// summed in eight lane accumulators, which are then scaled by d into the
// row's lane sums; the minimums, min·g per sub-block (lane s holding
// sub-block s), scaled by dmin into a second set of lane sums; the result
// is hsum8 of the first less hsum8 of the second.
func DotQ4_K(dm, sc, mn, qs []byte, xd, g []float32, xq []int16) float32 {
	n := len(xd) &^ 7
	nb := n / 8
	dm, sc, mn, qs, g, xq = dm[:4*nb], sc[:n], mn[:n], qs[:BlockSize/2*n], g[:n], xq[:BlockSize*n]
	if n == 0 {
		return 0
	}
	return dotQ4_K(dm, sc, mn, qs, xd[:n], g, xq)
}

// DotQ4_KRows is DotQ4_K for rows consecutive rows of a q4_k matrix, out[r]
// for each, in one call: row r's super-block scales at dm[4·(n/8)·r:], its
// sub-block scales and minimums at sc[n·r:] and mn[n·r:], its nibbles at
// qs[16·n·r:], for n = len(xd) blocks of 32 (whole super-blocks, as
// DotQ4_K). With AVX2 the rows go through one kernel call, one stream of
// weights, where a call per row cost decode a fifth of its time in the
// calls and their slicing (RATIONALE.md, "q4_k decode in one call per
// matrix"); each row's bits are DotQ4_K's.
func DotQ4_KRows(out []float32, dm, sc, mn, qs []byte, xd, g []float32, xq []int16, rows int) {
	n := len(xd) &^ 7
	if rows <= 0 {
		return
	}
	out, dm, sc, mn, qs, xd, g, xq = out[:rows], dm[:n/2*rows], sc[:n*rows], mn[:n*rows], qs[:BlockSize/2*n*rows], xd[:n], g[:n], xq[:BlockSize*n]
	if n == 0 {
		clear(out)
		return
	}
	dotQ4_KRows(out, dm, sc, mn, qs, xd, g, xq, rows)
}

func dotQ4_KRowsLoop(out []float32, dm, sc, mn, qs []byte, xd, g []float32, xq []int16, rows int) {
	n := len(xd)
	for r := range rows {
		out[r] = dotQ4_K(dm[n/2*r:], sc[n*r:], mn[n*r:], qs[BlockSize/2*n*r:], xd, g, xq)
	}
}

func dotQ4_KGo(dm, sc, mn, qs []byte, xd, g []float32, xq []int16) float32 {
	var acc, accm [8]float32
	var w [BlockSize]int32
	for b := range len(xd) / 8 {
		d, dmin := halfAt(dm, 2*b), halfAt(dm, 2*b+1)
		var sq [8]float32
		for s := range 8 {
			k := 8*b + s
			f := float32(xd[k] * float32(sc[k]))
			q := (*[BlockSize / 2]byte)(qs[BlockSize/2*k:])
			for j, v := range q {
				w[j], w[j+BlockSize/2] = int32(v&15), int32(v>>4)
			}
			x := (*[BlockSize]int16)(xq[BlockSize*k:])
			for l := range sq {
				i, j := 2*l, 2*l+BlockSize/2
				L := w[i]*int32(x[i]) + w[i+1]*int32(x[i+1]) + w[j]*int32(x[j]) + w[j+1]*int32(x[j+1])
				sq[l] += float32(f * float32(L))
			}
		}
		for l := range acc {
			acc[l] += float32(d * sq[l])
			accm[l] += float32(dmin * float32(float32(mn[8*b+l])*g[8*b+l]))
		}
	}
	return hsum8(&acc) - hsum8(&accm)
}

// DotQ8_0x4N is DotQ8_0x4 for groups consecutive groups of four rows (row
// r of the whole run at wd[r·sd:], wq[r·sq:]), out[r] for each: a whole
// matrix-vector product in one call.
func DotQ8_0x4N(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, groups int) {
	rowsX4(dotQ8_0x4N, out, wd, sd, wq, sq, xd, xq, groups, BlockSize)
}

// DotQ8_0Rows is DotQ8_0x4N for rows rows, any number, read one after
// another rather than four side by side: the same bits, for weights
// streamed from memory, which the hardware prefetcher follows as one
// stream far better than as four (RATIONALE.md, "q8_0 decode reads one
// row after another"). In cache, where the kernels are bound by what they
// issue, DotQ8_0x4N costs less. xp is nil or PrepRows of the activations
// xq: with AVX-512 and xp, each pair of blocks' activations goes straight
// from xp into its multiply-adds; otherwise it is the one-row kernel row
// by row, which reads xq alone.
func DotQ8_0Rows(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq, xp []int16, rows int) {
	n := len(xd)
	if rows <= 0 {
		return
	}
	out, wd, wq, xq = out[:rows], wd[:(rows-1)*sd+2*n], wq[:(rows-1)*sq+BlockSize*n], xq[:BlockSize*n]
	if xp != nil {
		xp = xp[:BlockSize*n]
	}
	if n == 0 {
		clear(out)
		return
	}
	dotQ8_0Rows(out, wd, sd, wq, sq, xd, xq, xp, rows)
}

func dotQ8_0RowsLoop(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, rows int) {
	for r := range rows {
		out[r] = dotQ8_0(wd[r*sd:], wq[r*sq:], xd, xq)
	}
}

// PrepRows lays out blocks b0 ≤ b < b1 of the 16-bit activations q (one
// row of 32-value blocks) for the one-row AVX-512 kernels of DotQ8_0Rows
// and DotQ4_0Rows, in xp (as long as q): each pair b, b+1 (b even) as
// values 0..15 of b, 0..15 of b+1, 16..31 of b, 16..31 of b+1 (what one
// 512-bit register of two consecutive weight blocks multiplies), the
// pairs past the row's last whole group of eight too (the kernels take
// them as a partial group); a row's odd last block as it is. Each block
// writes only its own values, so ranges may be laid out concurrently.
func PrepRows(xp, q []int16, b0, b1 int) {
	nb := len(q) / BlockSize
	xp = xp[:BlockSize*nb]
	for b := b0; b < b1; b++ {
		prepBlock(xp, q, b, nb&^1)
	}
}

// prepBlock lays out block b of PrepRows, g its blocks in whole pairs.
func prepBlock(xp, q []int16, b, g int) {
	x := (*[BlockSize]int16)(q[BlockSize*b:])
	if b < g {
		at := BlockSize*(b&^1) + 16*(b&1)
		copy(xp[at:at+16], x[:16])
		copy(xp[at+32:at+48], x[16:])
	} else {
		copy(xp[BlockSize*b:BlockSize*(b+1)], x[:])
	}
}

// rowsX4 checks the arguments of a four-rows-at-a-time matrix-vector
// kernel k (qbytes quant bytes a weight block), slicing each to what k
// reads so that k needs no bounds checks, and calls it; with no blocks the
// products are zero.
func rowsX4[Q int8 | int16](k func([]float32, []byte, int, []byte, int, []float32, []Q, int), out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []Q, groups, qbytes int) {
	n := len(xd)
	if groups <= 0 {
		return
	}
	r := 4 * groups
	out, wd, wq, xq = out[:r], wd[:(r-1)*sd+2*n], wq[:(r-1)*sq+qbytes*n], xq[:BlockSize*n]
	if n == 0 {
		clear(out)
		return
	}
	k(out, wd, sd, wq, sq, xd, xq, groups)
}

func dotQ8_0x4NLoop(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, groups int) {
	for g := range groups {
		dotQ8_0x4((*[4]float32)(out[4*g:]), wd[4*g*sd:], sd, wq[4*g*sq:], sq, xd, xq)
	}
}
