package vec

// q4_0 products: one row of q4_0 weights (f16 scales wd, 16 bytes of
// nibbles per 32-element block in wq: element i < 16 in the low nibble of
// byte i, i+16 in its high nibble, each stored +8) times one row of 16-bit
// activations (f32 scales xd, int16 quants xq).
//
// They sum in four lanes per block, lane k holding the eight products of
// the elements 4k..4k+3 and 4k+16..4k+19 — the low and the high nibbles
// of bytes 4k..4k+3 —, a sum below 8·8·32767 < 2^24 and so exact in
// float32; each lane's sum times the block's scale product d = f16(wd)·xd
// is added to one of sixteen float32 accumulators, block b's lane k to
// accumulator 4·(b mod 4)+k, in block order; at the end accumulator k+8 is
// added onto k (k < 8) and those eight summed as hsum8 does. Four blocks
// are then one 512-bit register of sixteen lanes: the AVX-512 kernel
// takes 64 bytes of nibbles, four blocks, per step and scales and adds
// their sixteen lanes at once, where the earlier order (eight lanes of
// four products, even and odd blocks apart) took two steps of ten
// instructions per pair of blocks (RATIONALE.md, "q4_0 in four lanes of
// eight products").
//
// With AVX2 or AVX-512 the kernels read the activations laid out by
// PrepQ4_0 rather than as they are: each value x split as 256·h + l, h its
// signed high byte and l its unsigned low byte, so that a byte
// multiply-add (VPDPBUSD, VPMADDUBSW) takes four products of a lane at a
// time, and −8 times each lane's activations (the nibbles' offset) summed
// ahead, so the nibbles are used as they are.

// Q4_0Lanes is how many lanes, and PrepQ4_0 offsets, a q4_0 block has.
const Q4_0Lanes = 4

// DotQ4_0 is Σ w·x over len(xd) blocks of q4_0 weights, summed as above.
func DotQ4_0(wd, wq []byte, xd []float32, xq []int16) float32 {
	n := len(xd)
	wd, wq, xq = wd[:2*n], wq[:BlockSize/2*n], xq[:BlockSize*n]
	if n == 0 {
		return 0
	}
	return dotQ4_0Go(wd, wq, xd, xq)
}

func dotQ4_0Go(wd, wq []byte, xd []float32, xq []int16) float32 {
	var acc [16]float32
	for b, dx := range xd {
		d := float32(halfAt(wd, b) * dx)
		q := (*[BlockSize / 2]byte)(wq[BlockSize/2*b:])
		x := (*[BlockSize]int16)(xq[BlockSize*b:])
		a := (*[Q4_0Lanes]float32)(acc[Q4_0Lanes*(b&3):])
		for k := range a {
			var s int32
			for i := 4 * k; i < 4*k+4; i++ {
				s += (int32(q[i]&15)-8)*int32(x[i]) + (int32(q[i]>>4)-8)*int32(x[i+16])
			}
			a[k] += float32(d * float32(s))
		}
	}
	return hsum16(&acc)
}

// hsum16 sums q4_0's sixteen accumulators: the upper eight onto the lower
// eight, then hsum8.
func hsum16(a *[16]float32) float32 {
	var s [8]float32
	for k := range s {
		s[k] = a[k] + a[k+8]
	}
	return hsum8(&s)
}

// Q4_0Layout reports whether DotQ4_0Rows reads activations laid out by
// PrepQ4_0 (amd64 with AVX2): where it does not, it reads them as they
// are, and nothing need be laid out.
func Q4_0Layout() bool { return q4_0Layout() }

// Q4_0LayoutBytes is how many bytes PrepQ4_0 lays a row of nb blocks out
// in: 64 a block, as many as the row's int16 values.
func Q4_0LayoutBytes(nb int) int { return 2 * BlockSize * nb }

// PrepQ4_0 lays out the blocks b0 ≤ b < b0 + len(q)/32 of a row of nb
// blocks of activations, given their values q, into the row's xb
// (Q4_0LayoutBytes(nb) bytes) and c (Q4_0Lanes·nb offsets) for
// DotQ4_0Rows. The row goes in steps of four blocks, 256 bytes each: the
// high bytes h of the four blocks' values 0..15 (16 bytes a block, the
// step's block j at 16·j), of their values 16..31, then the low bytes l
// likewise; a last step of r < 4 blocks is laid out alike in 64·r bytes
// (its four parts 16·r apart). c[4b+k] is −8 times the sum of the values
// lane k of block b multiplies. Each block writes only its own bytes, so
// ranges may be laid out concurrently.
func PrepQ4_0(xb []byte, c []int32, nb int, q []int16, b0 int) {
	n := len(q) / BlockSize
	if b0 < 0 || b0+n > nb {
		panic("vec: PrepQ4_0 blocks past the row")
	}
	xb, c, q = xb[:Q4_0LayoutBytes(nb)], c[:Q4_0Lanes*nb], q[:BlockSize*n]
	if n == 0 {
		return
	}
	prepQ4_0(xb, c, nb, q, b0)
}

func prepQ4_0Go(xb []byte, c []int32, nb int, q []int16, b0 int) {
	for i := range len(q) / BlockSize {
		b := b0 + i
		x := (*[BlockSize]int16)(q[BlockSize*i:])
		at, part := q4_0Place(nb, b)
		for e := range BlockSize / 2 {
			lo, hi := x[e], x[e+BlockSize/2]
			xb[at+e] = byte(lo >> 8)
			xb[at+part+e] = byte(hi >> 8)
			xb[at+2*part+e] = byte(lo)
			xb[at+3*part+e] = byte(hi)
		}
		o := (*[Q4_0Lanes]int32)(c[Q4_0Lanes*b:])
		for k := range o {
			var s int32
			for e := 4 * k; e < 4*k+4; e++ {
				s += int32(x[e]) + int32(x[e+BlockSize/2])
			}
			o[k] = -8 * s
		}
	}
}

// q4_0Place is where PrepQ4_0 puts block b of a row of nb blocks: the
// offset of its high bytes of values 0..15, and the distance between its
// four parts.
func q4_0Place(nb, b int) (at, part int) {
	s, j := b/4, b%4
	part = 64
	if 4*s+4 > nb {
		part = 16 * (nb - 4*s)
	}
	return 256*s + 16*j, part
}

// DotQ4_0Rows is DotQ4_0 for rows consecutive rows of a q4_0 matrix (row r
// at wd[r·sd:], wq[r·sq:]), out[r] for each, in one call: one stream of
// weights, which the hardware prefetcher follows (RATIONALE.md, "q4_0
// decode reads one row after another"). Where Q4_0Layout is true it reads
// xb and c, PrepQ4_0 of the activations, else xq as it is; each row's bits
// are DotQ4_0's.
func DotQ4_0Rows(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, xb []byte, c []int32, rows int) {
	DotQ4_0RowsTokens(out, 0, wd, sd, wq, sq, xd, xq, xb, c, 1, rows)
}

// DotQ4_0RowsTokens is DotQ4_0Rows for nt tokens: dst[t·ds + r] for row r
// < rows and token t < nt, token t's activations at xd[t·n:], xq[32·t·n:]
// or, where Q4_0Layout is true, xb[t·Q4_0LayoutBytes(n):] and
// c[Q4_0Lanes·t·n:], for n = len(xd)/nt blocks a row: the rows one after
// another for each token in turn (prefill gives it row blocks small
// enough to stay in L2 as the tokens go past). Each output has DotQ4_0's
// bits.
func DotQ4_0RowsTokens(dst []float32, ds int, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, xb []byte, c []int32, nt, rows int) {
	if rows <= 0 || nt <= 0 {
		return
	}
	n := len(xd) / nt
	dst, wd, wq, xd = dst[:(nt-1)*ds+rows], wd[:(rows-1)*sd+2*n], wq[:(rows-1)*sq+BlockSize/2*n], xd[:nt*n]
	if n == 0 {
		for t := range nt {
			clear(dst[t*ds : t*ds+rows])
		}
		return
	}
	lb, lc := Q4_0LayoutBytes(n), Q4_0Lanes*n
	if !q4_0Layout() {
		xq = xq[:BlockSize*n*nt]
		for t := range nt {
			for r := range rows {
				dst[t*ds+r] = dotQ4_0Go(wd[r*sd:], wq[r*sq:], xd[t*n:(t+1)*n], xq[BlockSize*n*t:BlockSize*n*(t+1)])
			}
		}
		return
	}
	xb, c = xb[:lb*nt], c[:lc*nt]
	dotQ4_0RowsTokens(dst, ds, wd, sd, wq, sq, xd, xb, c, n, nt, rows)
}
