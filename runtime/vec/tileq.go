package vec

// The tile kernels below are the matrix-matrix form of DotQ8_0 that
// prefill uses: two weight rows by four activation rows, each
// weight block unpacked once for the four activation rows (where a
// one-token kernel unpacks it once per token), with eight outputs' lanes
// in flight. Every output is summed in DotQ8_0's lanes and order, so it is
// bit for bit what the one-row kernel gives: how a product is tiled never
// changes its result.

// DotQ8_0x2x4 sets out[4r+t] to DotQ8_0 of weight row r (scales at
// wd[r·sd:], quants at wq[r·sq:]) and activation row t (scales at
// xd[t·xs:], quants at xq[32·t·xs:]) over n blocks, for r < 2 and t < 4.
func DotQ8_0x2x4(out *[8]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, xs, n int) {
	wd, wq, xd, xq = wd[:sd+2*n], wq[:sq+BlockSize*n], xd[:3*xs+n], xq[:BlockSize*(3*xs+n)]
	if n == 0 {
		*out = [8]float32{}
		return
	}
	dotQ8_0x2x4(out, wd, sd, wq, sq, xd, xq, xs, n)
}

// DupQ16 lays out the 16-bit activation blocks q (32 values each) for
// DotQ8_0x2x8Dup: each block's values 0..15 twice, then 16..31 twice, in
// dst[:2·len(q)]. Each half of a 512-bit register then holds what the
// kernel's two weight rows multiply, loaded as it is.
func DupQ16(dst, q []int16) {
	dst = dst[:2*len(q)]
	for b := 0; b+BlockSize <= len(q); b += BlockSize {
		// Whole-array assignments, which compile to a few vector moves;
		// copy of a 16-value slice was a memmove call each (70% of
		// DupQ16's time in a 128-token prefill's profile).
		lo, hi := [BlockSize / 2]int16(q[b:]), [BlockSize / 2]int16(q[b+BlockSize/2:])
		d := (*[2 * BlockSize]int16)(dst[2*b:])
		*(*[BlockSize / 2]int16)(d[0:]) = lo
		*(*[BlockSize / 2]int16)(d[16:]) = lo
		*(*[BlockSize / 2]int16)(d[32:]) = hi
		*(*[BlockSize / 2]int16)(d[48:]) = hi
	}
}

// TilesAnyTokens reports whether DotQ8_0x2x8Dup runs as one tile kernel
// on the DupQ16 layout rather than output by output.
func TilesAnyTokens() bool { return tilesAnyTokens() }

// dotQ8_0x2xNGo is DotQ8_0x2x8Dup's first nt tokens output by output, in
// the one-row kernel's lanes and order, reading the activations from
// their DupQ16 layout.
func dotQ8_0x2xNGo(out *[16]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, x2 []int16, xs, n, nt int) {
	*out = [16]float32{}
	var w [BlockSize]int32
	for r := range 2 {
		for t := range nt {
			var acc [8]float32
			for b := range n {
				d := float32(halfAt(wd[r*sd:], b) * xd[t*xs+b])
				for j, v := range (*[BlockSize]byte)(wq[r*sq+BlockSize*b:]) {
					w[j] = int32(int8(v))
				}
				x := (*[2 * BlockSize]int16)(x2[2*BlockSize*(t*xs+b):])
				for k := range acc {
					i, j := 2*k, 2*k+BlockSize/2
					s := w[i]*int32(x[i]) + w[i+1]*int32(x[i+1]) + w[j]*int32(x[j+BlockSize/2]) + w[j+1]*int32(x[j+1+BlockSize/2])
					acc[k] += float32(d * float32(s))
				}
			}
			out[8*r+t] = hsum8(&acc)
		}
	}
}

// DotQ8_0x2x8 is DotQ8_0x2x4 for eight activation rows (token t's blocks
// at t·xs blocks of xd and xq): out[8r+t] for weight row r and token t,
// each output the one-row kernel's bits.
func DotQ8_0x2x8(out *[16]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, xs, n int) {
	wd, wq, xd, xq = wd[:sd+2*n], wq[:sq+BlockSize*n], xd[:7*xs+n], xq[:BlockSize*(7*xs+n)]
	if n == 0 {
		*out = [16]float32{}
		return
	}
	dotQ8_0x2x8(out, wd, sd, wq, sq, xd, xq, xs, n)
}

// DotQ8_0x2x8Dup is DotQ8_0x2x8 with the activations laid out by DupQ16
// (x2: 64 values a block, token t's blocks at t·xs blocks): with AVX-512
// each activation half goes straight
// into its multiply-add where DotQ8_0x2x8 broadcasts it into both halves
// of a register first. The same bits. Elsewhere it is a pure-Go loop
// output by output (TilesAnyTokens says which).
func DotQ8_0x2x8Dup(out *[16]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, x2 []int16, xs, n int) {
	wd, wq, xd, x2 = wd[:sd+2*n], wq[:sq+BlockSize*n], xd[:7*xs+n], x2[:2*BlockSize*(7*xs+n)]
	if n == 0 {
		*out = [16]float32{}
		return
	}
	dotQ8_0x2x8Dup(out, wd, sd, wq, sq, xd, x2, xs, n)
}

// dotQ8_0x2x8Loop is DotQ8_0x2x8 as two 2×4 tiles.
func dotQ8_0x2x8Loop(out *[16]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, xs, n int) {
	var o [8]float32
	for h := range 2 {
		dotQ8_0x2x4(&o, wd, sd, wq, sq, xd[4*h*xs:], xq[BlockSize*4*h*xs:], xs, n)
		for r := range 2 {
			copy(out[8*r+4*h:8*r+4*h+4], o[4*r:4*r+4])
		}
	}
}

// dotQ8_0x2x4Go widens each weight block once and runs it against the four
// activation rows, lane by lane as dotQ8_0Go.
func dotQ8_0x2x4Go(out *[8]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, xs, n int) {
	var acc [8][8]float32
	var w [2][BlockSize]int32
	for b := range n {
		for r := range 2 {
			q := (*[BlockSize]byte)(wq[r*sq+BlockSize*b:])
			for j, v := range q {
				w[r][j] = int32(int8(v))
			}
		}
		tileBlock(&acc, &w, wd, sd, xd, xq, xs, b)
	}
	for o := range out {
		out[o] = hsum8(&acc[o])
	}
}

// tileBlock adds block b's products of the two unpacked weight rows w and
// the four activation rows to the outputs' lanes acc[4r+t].
func tileBlock(acc *[8][8]float32, w *[2][BlockSize]int32, wd []byte, sd int, xd []float32, xq []int16, xs, b int) {
	w0, w1 := halfAt(wd, b), halfAt(wd[sd:], b)
	for t := range 4 {
		dx := xd[t*xs+b]
		x := (*[BlockSize]int16)(xq[BlockSize*(t*xs+b):])
		for r, wr := range w {
			d := float32(w0 * dx)
			if r == 1 {
				d = float32(w1 * dx)
			}
			a := &acc[4*r+t]
			for k := range a {
				i, j := 2*k, 2*k+BlockSize/2
				s := wr[i]*int32(x[i]) + wr[i+1]*int32(x[i+1]) + wr[j]*int32(x[j]) + wr[j+1]*int32(x[j+1])
				a[k] += float32(d * float32(s))
			}
		}
	}
}

// DotQ4_Kx2x4 sets out[4r+t] to DotQ4_K of weight row r (dm[r·sdm:],
// sc[r·ssc:], mn[r·ssc:], qs[r·sqs:]) and activation row t (xd[t·xs:],
// g[t·xs:], xq[32·t·xs:]) over n sub-blocks (a multiple of 8), for r < 2
// and t < 4, bit for bit. Each weight sub-block is unpacked once for the
// four tokens (in AVX2 on amd64, as DotQ4_Kx2xNRows's kernel for one pair).
func DotQ4_Kx2x4(out *[8]float32, dm []byte, sdm int, sc, mn []byte, ssc int, qs []byte, sqs int, xd, g []float32, xq []int16, xs, n int) {
	n &^= 7
	dm, sc, mn, qs = dm[:sdm+n/2], sc[:ssc+n], mn[:ssc+n], qs[:sqs+BlockSize/2*n]
	xd, g, xq = xd[:3*xs+n], g[:3*xs+n], xq[:BlockSize*(3*xs+n)]
	if n == 0 {
		*out = [8]float32{}
		return
	}
	dotQ4_Kx2x4(out, dm, sdm, sc, mn, ssc, qs, sqs, xd, g, xq, xs, n)
}

// DotQ4_Kx2xNRows is DotQ4_Kx2x4 for the first nt activation rows, 1 ≤ nt
// ≤ 4, and each pair of weight rows r, r+1 from r0 up to r1 (r1 − r0
// even; weight row r at dm[r·sdm:], sc[r·ssc:], mn[r·ssc:], qs[r·sqs:]):
// it sets dst[t·stride+r] and dst[t·stride+r+1] for the tokens t < nt and
// leaves the rest of dst alone, the one-row kernel's bits. Prefill runs it
// over a block of rows per four tokens and for the two or three an expert
// has past its fours: on amd64 one kernel loops over the pairs and
// stores the sums itself, where a call per pair and its copy into dst
// cost a tenth of a q4_k prefill's time, and the tokens short of a four
// went through the one-row kernel, which unpacks each weight block per
// token.
func DotQ4_Kx2xNRows(dst []float32, stride int, dm []byte, sdm int, sc, mn []byte, ssc int, qs []byte, sqs int, xd, g []float32, xq []int16, xs, n, nt, r0, r1 int) {
	if nt < 1 || nt > 4 {
		panic("vec: DotQ4_Kx2xNRows takes 1 to 4 tokens")
	}
	if r0 < 0 || r1 < r0 || (r1-r0)%2 != 0 {
		panic("vec: DotQ4_Kx2xNRows takes whole pairs of rows")
	}
	n &^= 7
	if r0 == r1 {
		return
	}
	dm, sc, mn, qs = dm[:(r1-1)*sdm+n/2], sc[:(r1-1)*ssc+n], mn[:(r1-1)*ssc+n], qs[:(r1-1)*sqs+BlockSize/2*n]
	xd, g, xq = xd[:(nt-1)*xs+n], g[:(nt-1)*xs+n], xq[:BlockSize*((nt-1)*xs+n)]
	dst = dst[:(nt-1)*stride+r1]
	if n == 0 {
		for t := range nt {
			clear(dst[t*stride+r0 : t*stride+r1])
		}
		return
	}
	dotQ4_Kx2xNRows(dst, stride, dm, sdm, sc, mn, ssc, qs, sqs, xd, g, xq, xs, n, nt, r0, r1)
}

// dotQ4_Kx2xNRowsLoop is DotQ4_Kx2xNRows a pair at a time: the 2×4 tile
// for four tokens, the one-row kernel for each output otherwise.
func dotQ4_Kx2xNRowsLoop(dst []float32, stride int, dm []byte, sdm int, sc, mn []byte, ssc int, qs []byte, sqs int, xd, g []float32, xq []int16, xs, n, nt, r0, r1 int) {
	var out [8]float32
	for r := r0; r < r1; r += 2 {
		if nt == 4 {
			dotQ4_Kx2x4(&out, dm[r*sdm:], sdm, sc[r*ssc:], mn[r*ssc:], ssc, qs[r*sqs:], sqs, xd, g, xq, xs, n)
			for t := range 4 {
				dst[t*stride+r], dst[t*stride+r+1] = out[t], out[4+t]
			}
			continue
		}
		for k := range 2 {
			for t := range nt {
				dst[t*stride+r+k] = dotQ4_K(dm[(r+k)*sdm:], sc[(r+k)*ssc:], mn[(r+k)*ssc:], qs[(r+k)*sqs:], xd[t*xs:t*xs+n], g[t*xs:], xq[BlockSize*t*xs:])
			}
		}
	}
}

func dotQ4_Kx2x4Go(out *[8]float32, dm []byte, sdm int, sc, mn []byte, ssc int, qs []byte, sqs int, xd, g []float32, xq []int16, xs, n int) {
	var acc, accm [8][8]float32
	var w [2][BlockSize]int32
	for b := range n / 8 {
		var sq [8][8]float32
		for s := range 8 {
			k := 8*b + s
			for r := range 2 {
				q := (*[BlockSize / 2]byte)(qs[r*sqs+BlockSize/2*k:])
				for j, v := range q {
					w[r][j], w[r][j+BlockSize/2] = int32(v&15), int32(v>>4)
				}
			}
			for t := range 4 {
				x := (*[BlockSize]int16)(xq[BlockSize*(t*xs+k):])
				for r := range 2 {
					f := float32(xd[t*xs+k] * float32(sc[r*ssc+k]))
					wr, a := &w[r], &sq[4*r+t]
					for l := range a {
						i, j := 2*l, 2*l+BlockSize/2
						L := wr[i]*int32(x[i]) + wr[i+1]*int32(x[i+1]) + wr[j]*int32(x[j]) + wr[j+1]*int32(x[j+1])
						a[l] += float32(f * float32(L))
					}
				}
			}
		}
		for r := range 2 {
			d, dmin := halfAt(dm[r*sdm:], 2*b), halfAt(dm[r*sdm:], 2*b+1)
			for t := range 4 {
				o := 4*r + t
				for l := range 8 {
					acc[o][l] += float32(d * sq[o][l])
					accm[o][l] += float32(dmin * float32(float32(mn[r*ssc+8*b+l])*g[t*xs+8*b+l]))
				}
			}
		}
	}
	for o := range out {
		out[o] = hsum8(&acc[o]) - hsum8(&accm[o])
	}
}
