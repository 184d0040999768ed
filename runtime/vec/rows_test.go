package vec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDotQ4_0Rows checks the q4_0 kernels that read one row after another
// (their activations laid out by PrepQ4_0) against the pure-Go sums, bit
// for bit: every row count up to nine, block counts around a step of four
// and a group of eight (short last steps of one to three blocks), row
// strides longer than the rows, and the extreme nibbles (0 and 0xf: −8
// and 7) against ±32767 activations.
func TestDotQ4_0Rows(t *testing.T) { eachImpl(t, testDotQ4_0Rows) }

func testDotQ4_0Rows(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	for _, nb := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 32, 44} {
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
			xb, c := make([]byte, Q4_0LayoutBytes(nb)), make([]int32, Q4_0Lanes*nb)
			PrepQ4_0(xb, c, nb, xq, 0)
			DotQ4_0Rows(got, wd, sd, wq, sq, xd, xq, xb, c, rows)
			for i, v := range got {
				want := dotQ4_0Go(wd[i*sd:], wq[i*sq:], xd, xq)
				if math.Float32bits(v) != math.Float32bits(want) || math.Float32bits(DotQ4_0(wd[i*sd:], wq[i*sq:], xd, xq)) != math.Float32bits(want) {
					t.Fatalf("nb=%d rows=%d row %d: %v, pure Go %v", nb, rows, i, v, want)
				}
			}
		}
	}
}

// TestDotQ4_0Sums checks the pure-Go q4_0 sums, which every kernel
// reproduces, against the product of the dequantised weights and
// activations in float64: within a few float32 roundings of the terms'
// magnitudes.
func TestDotQ4_0Sums(t *testing.T) {
	r := rand.New(rand.NewPCG(49, 50))
	for _, nb := range []int{1, 3, 4, 5, 8, 9, 44} {
		for range 20 {
			wd, wq := make([]byte, 2*nb), make([]byte, BlockSize/2*nb)
			for i := 0; i < len(wd); i += 2 {
				h := uint16(0x2000+r.IntN(0x2000)) | uint16(r.IntN(2))<<15
				wd[i], wd[i+1] = byte(h), byte(h>>8)
			}
			for i := range wq {
				wq[i] = byte(r.IntN(256))
			}
			xd, xq := make([]float32, nb), make([]int16, BlockSize*nb)
			for i := range xd {
				xd[i] = float32(math.Exp(r.NormFloat64()))
			}
			for i := range xq {
				xq[i] = int16(r.IntN(65535) - 32767)
			}
			var want, mag float64
			for b := range nb {
				d := float64(halfAt(wd, b)) * float64(xd[b])
				for e := range BlockSize {
					q := wq[BlockSize/2*b+e%16]
					if e >= 16 {
						q >>= 4
					}
					w := float64(int(q&15) - 8)
					want += d * w * float64(xq[BlockSize*b+e])
					mag += math.Abs(d * w * float64(xq[BlockSize*b+e]))
				}
			}
			got := float64(DotQ4_0(wd, wq, xd, xq))
			if math.Abs(got-want) > 8*0x1p-24*mag*float64(nb) {
				t.Fatalf("nb=%d: %v, float64 %v (terms' magnitude %v)", nb, got, want, mag)
			}
		}
	}
}

// TestPrepQ4_0 checks the layout and the offsets against their
// definitions, and the assembly against the pure-Go twin byte for byte,
// laid out whole and in ranges of every length that split the steps
// anywhere (as the engine's goroutines quantise parts of a row).
func TestPrepQ4_0(t *testing.T) {
	r := rand.New(rand.NewPCG(47, 48))
	for _, nb := range []int{1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 19} {
		q := make([]int16, BlockSize*nb)
		for i := range q {
			q[i] = int16(r.IntN(65535) - 32767)
		}
		q[0], q[1], q[BlockSize*nb-1] = 32767, -32767, -32768
		for step := 1; step <= nb; step++ {
			xb, c := make([]byte, Q4_0LayoutBytes(nb)), make([]int32, Q4_0Lanes*nb)
			xg, cg := make([]byte, len(xb)), make([]int32, len(c))
			for b0 := 0; b0 < nb; b0 += step {
				b1 := min(b0+step, nb)
				PrepQ4_0(xb, c, nb, q[BlockSize*b0:BlockSize*b1], b0)
				prepQ4_0Go(xg, cg, nb, q[BlockSize*b0:BlockSize*b1], b0)
			}
			if !slices.Equal(xb, xg) || !slices.Equal(c, cg) {
				t.Fatalf("nb=%d in ranges of %d: the kernel's layout differs from pure Go's", nb, step)
			}
			for b := range nb {
				s, j := b/4, b%4
				part := 64
				if 4*s+4 > nb {
					part = 16 * (nb - 4*s)
				}
				for e := range BlockSize {
					at := 256*s + 16*j + e%16
					if e >= 16 {
						at += part
					}
					x := int(int8(xb[at]))*256 + int(xb[at+2*part])
					if x != int(q[BlockSize*b+e]) {
						t.Fatalf("nb=%d in ranges of %d: block %d value %d: laid out as %d, want %d", nb, step, b, e, x, q[BlockSize*b+e])
					}
				}
				for k := range Q4_0Lanes {
					var want int32
					for e := 4 * k; e < 4*k+4; e++ {
						want -= 8 * (int32(q[BlockSize*b+e]) + int32(q[BlockSize*b+e+16]))
					}
					if got := c[Q4_0Lanes*b+k]; got != want {
						t.Fatalf("nb=%d block %d lane %d: offset %d, want %d", nb, b, k, got, want)
					}
				}
			}
		}
	}
}

// TestDotQ4_0RowsTokens checks the q4_0 kernel for several tokens (up to
// eight at once, more in turns) against the pure-Go sums, bit for bit:
// token counts 1..11, block counts around a step (short last steps of one
// to three blocks), row counts up to nine, and a dst stride longer than
// the rows, whose elements past them stay untouched.
func TestDotQ4_0RowsTokens(t *testing.T) { eachImpl(t, testDotQ4_0RowsTokens) }

func testDotQ4_0RowsTokens(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	for _, nb := range []int{1, 2, 3, 4, 5, 6, 7, 9, 13, 16, 44} {
		for _, rows := range []int{1, 2, 5, 9} {
			for nt := 1; nt <= 11; nt++ {
				sd, sq, ds := 2*nb+2, BlockSize/2*nb+8, rows+3
				wd, wq := randScales(r, rows*sd), randBytes(r, rows*sq)
				xd, xq := randActs(r, nt*nb)
				if nt == 3 {
					for i := range BlockSize / 2 * nb {
						wq[i] = 0
					}
					for i := range BlockSize * nb {
						xq[i] = 32767
					}
				}
				lb, lc := Q4_0LayoutBytes(nb), Q4_0Lanes*nb
				xb, c := make([]byte, nt*lb), make([]int32, nt*lc)
				for k := range nt {
					PrepQ4_0(xb[k*lb:(k+1)*lb], c[k*lc:(k+1)*lc], nb, xq[BlockSize*nb*k:BlockSize*nb*(k+1)], 0)
				}
				dst := make([]float32, nt*ds)
				for i := range dst {
					dst[i] = float32(-i - 1)
				}
				DotQ4_0RowsTokens(dst, ds, wd, sd, wq, sq, xd, xq, xb, c, nt, rows)
				for i, v := range dst {
					k, row := i/ds, i%ds
					if row >= rows {
						if v != float32(-i-1) {
							t.Fatalf("nb=%d rows=%d tokens=%d: dst[%d] past the rows written: %v", nb, rows, nt, i, v)
						}
						continue
					}
					want := dotQ4_0Go(wd[row*sd:], wq[row*sq:], xd[k*nb:(k+1)*nb], xq[BlockSize*nb*k:])
					if math.Float32bits(v) != math.Float32bits(want) {
						t.Fatalf("nb=%d rows=%d tokens=%d: token %d row %d: %v, pure Go %v", nb, rows, nt, k, row, v, want)
					}
				}
			}
		}
	}
}
