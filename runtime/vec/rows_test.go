package vec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDotQ4_0Rows checks the q4_0 kernel that reads one row after another
// (its activations laid out by PrepQ4_0Rows) against the 2×n tile for one
// token, the four-row kernel and the pure-Go sums, bit for bit: every row count up to nine (odd ones included), block counts around
// its groups of eight and pairs of blocks (tails of 0 to 7 blocks), row
// strides longer than the rows, and the extreme nibbles (0 and 0xf: −8 and
// 7) against ±32767 activations.
func TestDotQ4_0Rows(t *testing.T) { eachImpl(t, testDotQ4_0Rows) }

func testDotQ4_0Rows(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	for _, nb := range []int{1, 2, 3, 7, 8, 9, 10, 15, 16, 17, 32, 44} {
		for _, rows := range []int{1, 2, 3, 4, 5, 7, 8, 9, 12, 13} {
			sd, sq := 2*nb+2, BlockSize/2*nb+8
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
			if rows == 4 {
				for i := range BlockSize / 2 * nb {
					wq[i], wq[(rows-1)*sq+i] = 0, 0xff
				}
				for i := range xq {
					xq[i] = int16(32767 * (1 - 2*(i&1)))
				}
			}
			got := make([]float32, rows)
			xp, c := make([]int16, len(xq)), make([]int32, Q4_0Lanes*nb)
			PrepQ4_0Rows(xp, c, xq, 0, nb)
			DotQ4_0Rows(got, wd, sd, wq, sq, xd, xq, xp, c, rows)
			pairs := make([]float32, rows)
			x2 := make([]int16, 2*len(xq))
			DupQ16(x2, xq)
			DotQ4_0x2xNRows(pairs, 0, wd, sd, wq, sq, xd, x2, nb, nb, 1, 0, 2*(rows/2))
			fours := make([]float32, rows)
			DotQ4_0x4N(fours, wd, sd, wq, sq, xd, xq, rows/4)
			// The natural layout (xp nil) with the offsets alone, as
			// Q16Rows keeps them where Q4_0RowOffsets: the AVX2 kernel
			// (dotQ4_0x1NAVX2), whatever the machine has beside.
			c2 := make([]int32, len(c))
			Q4_0Offsets(c2, xq, 0, nb)
			natural := make([]float32, rows)
			DotQ4_0Rows(natural, wd, sd, wq, sq, xd, xq, nil, c2, rows)
			for i, v := range got {
				want := dotQ4_0Go(wd[i*sd:], wq[i*sq:], xd, xq)
				if math.Float32bits(v) != math.Float32bits(want) ||
					math.Float32bits(natural[i]) != math.Float32bits(want) ||
					i < rows&^1 && math.Float32bits(v) != math.Float32bits(pairs[i]) ||
					i < rows&^3 && math.Float32bits(v) != math.Float32bits(fours[i]) {
					t.Fatalf("nb=%d rows=%d row %d: %v, natural layout %v, pure Go %v, in pairs %v, four rows %v", nb, rows, i, v, natural[i], want, pairs[i], fours[i])
				}
			}
		}
	}
}

// TestPrepQ4_0Rows checks the layout and the offsets against their
// definitions, laid out whole and in ranges of every length that split the
// pairs and groups anywhere (as the engine's goroutines quantise parts of
// a row).
func TestPrepQ4_0Rows(t *testing.T) {
	r := rand.New(rand.NewPCG(47, 48))
	for _, nb := range []int{0, 1, 2, 7, 8, 9, 12, 16, 19} {
		q := make([]int16, BlockSize*nb)
		for i := range q {
			q[i] = int16(r.IntN(65535) - 32767)
		}
		for step := 1; step <= max(nb, 1); step++ {
			xp, c, c2 := make([]int16, len(q)), make([]int32, Q4_0Lanes*nb), make([]int32, Q4_0Lanes*nb)
			for b0 := 0; b0 < nb; b0 += step {
				PrepQ4_0Rows(xp, c, q, b0, min(b0+step, nb))
				Q4_0Offsets(c2, q, b0, min(b0+step, nb))
			}
			if !slices.Equal(c, c2) {
				t.Fatalf("nb=%d in ranges of %d: Q4_0Offsets %v, PrepQ4_0Rows' %v", nb, step, c2, c)
			}
			for b := range nb {
				for j := range BlockSize {
					// where value j of block b goes: every whole pair (the
					// last group's partial one too) in the pair layout
					at := BlockSize*b + j
					if b < nb&^1 {
						p, odd := b&^1, b&1
						at = BlockSize*p + 32*(j/16) + 16*odd + j%16
					}
					if xp[at] != q[BlockSize*b+j] {
						t.Fatalf("nb=%d in ranges of %d: block %d value %d: xp[%d] = %d, want %d", nb, step, b, j, at, xp[at], q[BlockSize*b+j])
					}
				}
				for i := range Q4_0Lanes {
					var want int32
					for _, j := range []int{2 * i, 2*i + 1, 16 + 2*i, 17 + 2*i} {
						want -= 8 * int32(q[BlockSize*b+j])
					}
					if got := c[Q4_0Lanes*b+i]; got != want {
						t.Fatalf("nb=%d block %d lane %d: offset %d, want %d", nb, b, i, got, want)
					}
				}
			}
		}
	}
}
