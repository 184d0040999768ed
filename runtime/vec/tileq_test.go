package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDotQTiles checks that the 2×4 tile kernels give every output the
// bits of the one-row kernels (and so, through TestDotQ, of the pure-Go
// sums), and that their pure-Go twins do too, for block counts around the
// groups of eight, weight rows and activation rows at strides longer than
// a row, and the extreme quants.
func TestDotQTiles(t *testing.T) { eachImpl(t, testDotQTiles) }

// eachImpl runs f with the AVX-512 kernels off, then on where the machine
// has them, so that the AVX2 ones are tested there too.
func eachImpl(t *testing.T, f func(t *testing.T)) {
	defer useAVX512(canAVX512)
	useAVX512(false)
	t.Run("base", f)
	if canAVX512 {
		useAVX512(true)
		t.Run("avx512", f)
	}
}

func testDotQTiles(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, nb := range []int{1, 2, 7, 8, 9, 16, 17, 23, 27, 44} {
		for trial := range 5 {
			sd, sq8 := 2*nb+6, BlockSize*nb+32
			xs := nb + 3 // activation row stride in blocks
			wd := make([]byte, 2*sd)
			for i := 0; i < len(wd); i += 2 {
				h := uint16(r.IntN(0x7800)) | uint16(r.IntN(2))<<15
				wd[i], wd[i+1] = byte(h), byte(h>>8)
			}
			wq := make([]byte, 2*sq8)
			for i := range wq {
				wq[i] = byte(r.IntN(256))
			}
			xd := make([]float32, 4*xs)
			xq := make([]int16, BlockSize*4*xs)
			for b := range xd {
				xd[b] = float32(math.Exp(3 * r.NormFloat64()))
			}
			for i := range xq {
				xq[i] = int16(r.IntN(65535) - 32767)
			}
			if trial == 0 {
				for i := range 4 {
					wq[i], wq[sq8+i] = 0x80, 0x7f
					xq[i], xq[BlockSize*xs+i] = 32767, -32767
				}
			}
			for _, k := range []struct {
				name      string
				sq        int
				tile, go_ func(*[8]float32, []byte, int, []byte, int, []float32, []int16, int, int)
				one       func(wd, wq []byte, xd []float32, xq []int16) float32
			}{
				{"q8_0", sq8, DotQ8_0x2x4, dotQ8_0x2x4Go, DotQ8_0},
			} {
				var got, goGot [8]float32
				k.tile(&got, wd, sd, wq, k.sq, xd, xq, xs, nb)
				k.go_(&goGot, wd, sd, wq, k.sq, xd, xq, xs, nb)
				for row := range 2 {
					for tok := range 4 {
						want := k.one(wd[row*sd:], wq[row*k.sq:], xd[tok*xs:tok*xs+nb], xq[BlockSize*tok*xs:])
						o := 4*row + tok
						if math.Float32bits(got[o]) != math.Float32bits(want) || math.Float32bits(goGot[o]) != math.Float32bits(want) {
							t.Fatalf("%s nb=%d trial %d row %d token %d: tile %v (pure Go %v), one row %v", k.name, nb, trial, row, tok, got[o], goGot[o], want)
						}
					}
				}
			}
		}
	}
}

func BenchmarkDotQTile(b *testing.B) {
	defer useAVX512(canAVX512)
	for _, on := range []bool{false, true} {
		useAVX512(on)
		b.Run(Impl(), benchDotQTile)
	}
}

func benchDotQTile(b *testing.B) {
	const nb, toks = 44, 64
	wd := make([]byte, 2*4*nb)
	wq := make([]byte, 4*BlockSize*nb)
	xd := make([]float32, toks*nb)
	xq := make([]int16, toks*BlockSize*nb)
	for i := range xd {
		xd[i] = 1
	}
	x2 := make([]int16, 2*len(xq)) // DupQ16's layout
	DupQ16(x2, xq)
	b.Run("q8_0/x4", func(b *testing.B) {
		var o [4]float32
		for b.Loop() {
			for t := range toks {
				DotQ8_0x4(&o, wd, 2*nb, wq, BlockSize*nb, xd[t*nb:(t+1)*nb], xq[t*BlockSize*nb:])
			}
		}
	})
	b.Run("q8_0/x2x4", func(b *testing.B) {
		var o [8]float32
		for b.Loop() {
			for t := 0; t < toks; t += 4 {
				DotQ8_0x2x4(&o, wd, 2*nb, wq, BlockSize*nb, xd[t*nb:], xq[t*BlockSize*nb:], nb, nb)
				DotQ8_0x2x4(&o, wd[4*nb:], 2*nb, wq[2*BlockSize*nb:], BlockSize*nb, xd[t*nb:], xq[t*BlockSize*nb:], nb, nb)
			}
		}
	})
	b.Run("q8_0/x2x8dup", func(b *testing.B) {
		var o [16]float32
		for b.Loop() {
			for t := 0; t < toks; t += 8 {
				DotQ8_0x2x8Dup(&o, wd, 2*nb, wq, BlockSize*nb, xd[t*nb:], x2[2*t*BlockSize*nb:], nb, nb)
				DotQ8_0x2x8Dup(&o, wd[4*nb:], 2*nb, wq[2*BlockSize*nb:], BlockSize*nb, xd[t*nb:], x2[2*t*BlockSize*nb:], nb, nb)
			}
		}
	})
	b.Run("q8_0/x2x8", func(b *testing.B) {
		var o [16]float32
		for b.Loop() {
			for t := 0; t < toks; t += 8 {
				DotQ8_0x2x8(&o, wd, 2*nb, wq, BlockSize*nb, xd[t*nb:], xq[t*BlockSize*nb:], nb, nb)
				DotQ8_0x2x8(&o, wd[4*nb:], 2*nb, wq[2*BlockSize*nb:], BlockSize*nb, xd[t*nb:], xq[t*BlockSize*nb:], nb, nb)
			}
		}
	})
}

// TestQuantizeQ16 compares the dispatched activation quantiser with the
// pure-Go one bit for bit, on blocks of wide dynamic range, an all-zero
// block, and values that round to ±32767 exactly.
func TestQuantizeQ16(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, nb := range []int{1, 2, 3, 17, 44} {
		x := make([]float32, BlockSize*nb)
		for i := range x {
			x[i] = float32(r.NormFloat64() * math.Exp(3*r.NormFloat64()))
		}
		if nb > 2 {
			clear(x[BlockSize : 2*BlockSize])
			x[2*BlockSize], x[2*BlockSize+1] = 3, -3 // the extremes of their block
		}
		q, d, g := make([]int16, len(x)), make([]float32, nb), make([]float32, nb)
		gq, gd, gg := make([]int16, len(x)), make([]float32, nb), make([]float32, nb)
		QuantizeQ16(q, d, g, x)
		quantizeQ16Go(gq, gd, gg, x)
		for b := range nb {
			if math.Float32bits(d[b]) != math.Float32bits(gd[b]) || math.Float32bits(g[b]) != math.Float32bits(gg[b]) {
				t.Fatalf("nb=%d block %d: d %v g %v, pure Go %v %v", nb, b, d[b], g[b], gd[b], gg[b])
			}
		}
		for i := range q {
			if q[i] != gq[i] {
				t.Fatalf("nb=%d: q[%d] = %d, pure Go %d (x %v)", nb, i, q[i], gq[i], x[i])
			}
		}
	}
}

// TestDotQ4_KTile checks the q4_k 2×4 tile (and its pure-Go twin) against
// the one-row kernel, bit for bit, with rows and tokens at longer strides.
func TestDotQ4_KTile(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	for _, nsb := range []int{1, 2, 3} {
		n := 8 * nsb
		sdm, ssc, sqs, xs := 4*nsb+4, n+8, BlockSize/2*n+16, n+8
		dm := make([]byte, 2*sdm)
		for i := 0; i < len(dm); i += 2 {
			h := uint16(r.IntN(0x7800))
			dm[i], dm[i+1] = byte(h), byte(h>>8)
		}
		sc, mn, qs := make([]byte, 2*ssc), make([]byte, 2*ssc), make([]byte, 2*sqs)
		for _, b := range [][]byte{sc, mn, qs} {
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
		}
		xd, g, xq := randQ16(r, 4*xs)
		var got, goGot [8]float32
		DotQ4_Kx2x4(&got, dm, sdm, sc, mn, ssc, qs, sqs, xd, g, xq, xs, n)
		dotQ4_Kx2x4Go(&goGot, dm, sdm, sc, mn, ssc, qs, sqs, xd, g, xq, xs, n)
		for row := range 2 {
			for tok := range 4 {
				want := DotQ4_K(dm[row*sdm:], sc[row*ssc:], mn[row*ssc:], qs[row*sqs:], xd[tok*xs:tok*xs+n], g[tok*xs:], xq[BlockSize*tok*xs:])
				o := 4*row + tok
				if math.Float32bits(got[o]) != math.Float32bits(want) || math.Float32bits(goGot[o]) != math.Float32bits(want) {
					t.Fatalf("n=%d row %d token %d: tile %v (pure Go %v), one row %v", n, row, tok, got[o], goGot[o], want)
				}
			}
		}
	}
}

// TestDotQ4_KTileRows checks the q4_k 2×n tile over pairs of rows, for
// one to four tokens, against the one-row kernel, bit for bit, outputs at
// a stride and from a row r0 > 0, with everything else in dst left alone;
// then the pure-Go loop the same.
func TestDotQ4_KTileRows(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, tc := range []struct{ nsb, rows, r0, r1 int }{{1, 4, 0, 4}, {2, 8, 2, 8}, {3, 7, 1, 7}} {
		n := 8 * tc.nsb
		sdm, ssc, sqs, xs := 4*tc.nsb+4, n+8, BlockSize/2*n+16, n+8
		dm := make([]byte, tc.rows*sdm)
		for i := 0; i < len(dm); i += 2 {
			h := uint16(r.IntN(0x7800))
			dm[i], dm[i+1] = byte(h), byte(h>>8)
		}
		sc, mn, qs := make([]byte, tc.rows*ssc), make([]byte, tc.rows*ssc), make([]byte, tc.rows*sqs)
		for _, b := range [][]byte{sc, mn, qs} {
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
		}
		xd, g, xq := randQ16(r, 4*xs)
		stride := tc.rows + 3
		for nt := 1; nt <= 4; nt++ {
			for _, pureGo := range []bool{false, true} {
				dst := make([]float32, 4*stride)
				for i := range dst {
					dst[i] = -7
				}
				if pureGo {
					dotQ4_Kx2xNRowsLoop(dst, stride, dm, sdm, sc, mn, ssc, qs, sqs, xd, g, xq, xs, n, nt, tc.r0, tc.r1)
				} else {
					DotQ4_Kx2xNRows(dst, stride, dm, sdm, sc, mn, ssc, qs, sqs, xd, g, xq, xs, n, nt, tc.r0, tc.r1)
				}
				for tok := range 4 {
					for row := range stride {
						got := dst[tok*stride+row]
						want := float32(-7)
						if row >= tc.r0 && row < tc.r1 && tok < nt {
							want = DotQ4_K(dm[row*sdm:], sc[row*ssc:], mn[row*ssc:], qs[row*sqs:], xd[tok*xs:tok*xs+n], g[tok*xs:], xq[BlockSize*tok*xs:])
						}
						if math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("%+v %d tokens, pure Go %v: token %d row %d: %v, want %v", tc, nt, pureGo, tok, row, got, want)
						}
					}
				}
			}
		}
	}
}

// TestDotQx4N checks the q8_0 many-group kernel against the four-row one
// and the pure-Go sums group by group, bit for bit, and the row-by-row
// kernel (DotQ8_0Rows) on the same rows and on every row count up to the
// groups' (so not only multiples of four), for block counts around its
// groups of eight and pairs, and the extreme quants.
func TestDotQx4N(t *testing.T) { eachImpl(t, testDotQx4N) }

func testDotQx4N(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, nb := range []int{1, 2, 3, 7, 8, 9, 16, 17, 32, 44} {
		for _, groups := range []int{1, 2, 3, 4, 5} {
			rows := 4 * groups
			sd, sq := 2*nb+2, BlockSize*nb+8
			wd, wq := make([]byte, rows*sd), make([]byte, rows*sq)
			for i := 0; i < len(wd); i += 2 {
				h := uint16(r.IntN(0x7800)) | uint16(r.IntN(2))<<15
				wd[i], wd[i+1] = byte(h), byte(h>>8)
			}
			for i := range wq {
				wq[i] = byte(r.IntN(256))
			}
			xd, xq := make([]float32, nb), make([]int16, BlockSize*nb)
			for i := range xd {
				xd[i] = float32(math.Exp(2 * r.NormFloat64()))
			}
			for i := range xq {
				xq[i] = int16(r.IntN(65535) - 32767)
			}
			if groups == 2 {
				// The extremes: -128 weights in the first row, 127 in
				// the last, against ±32767 activations.
				for i := range BlockSize {
					wq[i], wq[(rows-1)*sq+i] = 0x80, 0x7f
					xq[i] = int16(32767 * (1 - 2*(i&1)))
				}
			}
			got := make([]float32, rows)
			byRow := make([]float32, rows)
			var want [4]float32
			DotQ8_0x4N(got, wd, sd, wq, sq, xd, xq, groups)
			xp := make([]int16, len(xq))
			PrepRows(xp, xq, 0, nb)
			DotQ8_0Rows(byRow, wd, sd, wq, sq, xd, xq, xp, rows)
			for g := range groups {
				var goWant [4]float32
				DotQ8_0x4(&want, wd[4*g*sd:], sd, wq[4*g*sq:], sq, xd, xq)
				dotQ8_0x4Go(&goWant, wd[4*g*sd:], sd, wq[4*g*sq:], sq, xd, xq)
				for k := range 4 {
					r := 4*g + k
					if math.Float32bits(got[r]) != math.Float32bits(want[k]) || math.Float32bits(byRow[r]) != math.Float32bits(want[k]) || want[k] != goWant[k] {
						t.Fatalf("q8_0 nb=%d groups=%d row %d: %v, row by row %v, four rows %v, pure Go %v", nb, groups, r, got[r], byRow[r], want[k], goWant[k])
					}
				}
			}
			for n := 1; n < rows; n++ {
				part, plain := make([]float32, n), make([]float32, n)
				DotQ8_0Rows(part, wd[sd:], sd, wq[sq:], sq, xd, xq, xp, n)
				DotQ8_0Rows(plain, wd[sd:], sd, wq[sq:], sq, xd, xq, nil, n)
				for r, v := range part {
					if w := dotQ8_0Go(wd[(r+1)*sd:], wq[(r+1)*sq:], xd, xq); math.Float32bits(v) != math.Float32bits(w) || math.Float32bits(plain[r]) != math.Float32bits(w) {
						t.Fatalf("q8_0 nb=%d, %d rows by row from row 1: row %d %v (%v without PrepRows), pure Go %v", nb, n, r, v, plain[r], w)
					}
				}
			}
		}
	}
}

// tile2x8 is a 2×8 tile kernel and the one-row kernels it must equal, for
// one weight format: qb bytes of quants per block, lo and hi its extreme
// quant bytes.
type tile2x8 struct {
	name       string
	qb         int
	lo, hi     byte
	seed       uint64
	tile       func(out *[16]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, xs, n int)
	row, rowGo func(wd, wq []byte, xd []float32, xq []int16) float32
}

var tiles2x8 = []tile2x8{
	{"q8_0", BlockSize, 0x80, 0x7f, 27, DotQ8_0x2x8, DotQ8_0, dotQ8_0Go},
}

// TestDotQx2x8 checks that each 2×8 tile gives every output the bits of
// the one-row kernel and of the pure-Go sums, for block counts around the
// groups of eight, rows and tokens at strides longer than a row, and the
// extreme quants.
func TestDotQx2x8(t *testing.T) {
	for _, k := range tiles2x8 {
		t.Run(k.name, func(t *testing.T) { eachImpl(t, func(t *testing.T) { testDotQx2x8(t, k) }) })
	}
}

func testDotQx2x8(t *testing.T, k tile2x8) {
	r := rand.New(rand.NewPCG(k.seed, k.seed+1))
	for _, nb := range []int{1, 2, 7, 8, 9, 16, 17, 23, 27, 32, 44} {
		for trial := range 4 {
			sd, sq := 2*nb+6, k.qb*nb+16
			xs := nb + 3
			wd := make([]byte, 2*sd)
			for i := 0; i < len(wd); i += 2 {
				h := uint16(r.IntN(0x7800)) | uint16(r.IntN(2))<<15
				wd[i], wd[i+1] = byte(h), byte(h>>8)
			}
			wq := make([]byte, 2*sq)
			for i := range wq {
				wq[i] = byte(r.IntN(256))
			}
			xd := make([]float32, 8*xs)
			xq := make([]int16, BlockSize*8*xs)
			for b := range xd {
				xd[b] = float32(math.Exp(3 * r.NormFloat64()))
			}
			for i := range xq {
				xq[i] = int16(r.IntN(65535) - 32767)
			}
			if trial == 0 {
				for i := range k.qb {
					wq[i], wq[sq+i] = k.lo, k.hi
					xq[i], xq[BlockSize*7*xs+i] = 32767, -32767
				}
			}
			var got [16]float32
			k.tile(&got, wd, sd, wq, sq, xd, xq, xs, nb)
			for row := range 2 {
				for tok := range 8 {
					w, x := wq[row*sq:], xq[BlockSize*tok*xs:]
					want := k.row(wd[row*sd:], w, xd[tok*xs:tok*xs+nb], x)
					goWant := k.rowGo(wd[row*sd:row*sd+2*nb], w[:k.qb*nb], xd[tok*xs:tok*xs+nb], x[:BlockSize*nb])
					if o := got[8*row+tok]; math.Float32bits(o) != math.Float32bits(want) || want != goWant {
						t.Fatalf("nb=%d trial %d row %d token %d: 2×8 tile %v, one row %v, pure Go %v", nb, trial, row, tok, o, want, goWant)
					}
				}
			}
		}
	}
}

// TestDotQ8_0x2x8Dup checks that the q8_0 2×8 tile on activations laid out
// by DupQ16 gives every output the bits of the one-row kernel, of the
// pure-Go sums and of the 2×8 tile on the plain layout, for block counts
// around the groups of eight, strides longer than a row and the extreme
// quants.
func TestDotQ8_0x2x8Dup(t *testing.T) { eachImpl(t, testDotQ8_0x2x8Dup) }

func testDotQ8_0x2x8Dup(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, nb := range []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 32, 44} {
		sd, sq := 2*nb+6, BlockSize*nb+16
		xs := nb + 3
		wd, wq := randScales(r, 2*sd), randBytes(r, 2*sq)
		xd, xq := randActs(r, 7*xs+nb)
		if nb%2 == 1 {
			for i := range BlockSize {
				wq[i], wq[sq+i] = 0x80, 0x7f
				xq[i], xq[BlockSize*7*xs+i] = 32767, -32767
			}
		}
		x2 := make([]int16, 2*len(xq))
		DupQ16(x2, xq)
		var got, plain [16]float32
		for i := range got {
			got[i] = float32(i + 1) // must be overwritten
		}
		DotQ8_0x2x8Dup(&got, wd, sd, wq, sq, xd, x2, xs, nb)
		DotQ8_0x2x8(&plain, wd, sd, wq, sq, xd, xq, xs, nb)
		for row := range 2 {
			for tok := range 8 {
				o := got[8*row+tok]
				w, x := wq[row*sq:], xq[BlockSize*tok*xs:]
				want := DotQ8_0(wd[row*sd:], w, xd[tok*xs:tok*xs+nb], x)
				goWant := dotQ8_0Go(wd[row*sd:row*sd+2*nb], w[:BlockSize*nb], xd[tok*xs:tok*xs+nb], x[:BlockSize*nb])
				p := plain[8*row+tok]
				if math.Float32bits(o) != math.Float32bits(want) || want != goWant || math.Float32bits(p) != math.Float32bits(want) {
					t.Fatalf("nb=%d row %d token %d: 2×8 tile on DupQ16 %v, on the plain layout %v, one row %v, pure Go %v", nb, row, tok, o, p, want, goWant)
				}
			}
		}
	}
}

// randScales is n bytes of f16 block scales, random in sign and in
// magnitude up to 2^15 (no infinities or NaNs).
func randScales(r *rand.Rand, n int) []byte {
	wd := make([]byte, n)
	for i := 0; i+1 < n; i += 2 {
		h := uint16(r.IntN(0x7800)) | uint16(r.IntN(2))<<15
		wd[i], wd[i+1] = byte(h), byte(h>>8)
	}
	return wd
}

// randBytes is n random bytes: q8_0 or q4_0 quants.
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

// randActs is nb blocks of 16-bit activations: scales of wide dynamic
// range and quants over the whole of ±32767.
func randActs(r *rand.Rand, nb int) ([]float32, []int16) {
	xd, xq := make([]float32, nb), make([]int16, BlockSize*nb)
	for b := range xd {
		xd[b] = float32(math.Exp(3 * r.NormFloat64()))
	}
	for i := range xq {
		xq[i] = int16(r.IntN(65535) - 32767)
	}
	return xd, xq
}

// BenchmarkDupQ16 lays out a 32-token prefill's activations for a
// 1408-column product.
func BenchmarkDupQ16(b *testing.B) {
	q := make([]int16, 32*1408)
	for i := range q {
		q[i] = int16(i)
	}
	dst := make([]int16, 2*len(q))
	for b.Loop() {
		DupQ16(dst, q)
	}
}
