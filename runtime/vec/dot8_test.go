package vec

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moderuntime/mode/internal/cputime"
)

// TestQuantizeQ8 checks the 8-bit activation quantiser's bound: per block,
// d = max|x|/127 and |x − d·q| ≤ d/2 (plus float32 rounding of x·(1/d),
// at most 2^-23·127·d), with ±127 reached and an all-zero block all 0;
// and that the assembly gives the pure-Go quantiser's bits.
func TestQuantizeQ8(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	const nb = 9
	x := make([]float32, BlockSize*nb)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Exp(3*r.NormFloat64()))
	}
	clear(x[BlockSize*4 : BlockSize*5])
	x[BlockSize*5], x[BlockSize*5+1] = 3, -3 // the extremes of their block
	q, d := make([]int8, len(x)), make([]float32, nb)
	QuantizeQ8(q, d, x)
	gq, gd := make([]int8, len(x)), make([]float32, nb)
	quantizeQ8Go(gq, gd, x)
	for i := range q {
		if q[i] != gq[i] || math.Float32bits(d[i/BlockSize]) != math.Float32bits(gd[i/BlockSize]) {
			t.Fatalf("q[%d] = %d (d %v), pure Go %d (%v); x %v", i, q[i], d[i/BlockSize], gq[i], gd[i/BlockSize], x[i])
		}
	}
	for b := range nb {
		var amax float32
		hit := false
		for j := range BlockSize {
			i := BlockSize*b + j
			amax = max(amax, float32(math.Abs(float64(x[i]))))
			if q[i] == 127 || q[i] == -127 {
				hit = true
			}
			if q[i] == -128 {
				t.Fatalf("block %d: −128", b)
			}
			if e := math.Abs(float64(x[i]) - float64(d[b])*float64(q[i])); e > float64(d[b])*(0.5+0x1p-16) {
				t.Fatalf("block %d elem %d: x %v, d·q %v: error %.3g > d/2", b, j, x[i], d[b]*float32(q[i]), e)
			}
		}
		if d[b] != amax/127 {
			t.Fatalf("block %d: d %v, want %v", b, d[b], amax/127)
		}
		if amax != 0 && !hit {
			t.Fatalf("block %d: no ±127", b)
		}
	}
}

// TestDotQ8Act checks that the 8-bit-activation kernels of four rows (one
// to three groups of them) give, for every row, the pure-Go one-row
// kernel's bits (AVX2 and VNNI assembly
// alike where the machine has them), over block counts around the groups
// of eight, rows at strides longer than a row, and the extremes: weights
// −128 and 127 against activations ±127.
func TestDotQ8Act(t *testing.T) { eachImpl(t, testDotQ8Act) }

func testDotQ8Act(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	for _, nb := range []int{1, 3, 7, 8, 9, 16, 17, 44} {
		for trial := range 4 {
			groups := 1 + trial%3
			rows := 4 * groups
			sd, sq8, sq4 := 2*nb+6, BlockSize*nb+32, BlockSize/2*nb+16
			wd := make([]byte, rows*sd)
			for i := 0; i < len(wd); i += 2 {
				h := uint16(r.IntN(0x7800)) | uint16(r.IntN(2))<<15
				wd[i], wd[i+1] = byte(h), byte(h>>8)
			}
			wq := make([]byte, rows*sq8)
			for i := range wq {
				wq[i] = byte(r.IntN(256))
			}
			xd := make([]float32, nb)
			xq := make([]int8, BlockSize*nb)
			for b := range xd {
				xd[b] = float32(math.Exp(2 * r.NormFloat64()))
			}
			for i := range xq {
				xq[i] = int8(r.IntN(255) - 127)
			}
			if trial == 0 {
				for i := range BlockSize {
					wq[i], xq[i] = 0x80, 127
					if i%2 == 1 {
						wq[i], xq[i] = 0x7f, -127
					}
					wq[sq8+i] = 0x80
				}
			}
			got := make([]float32, rows)
			DotQ8_0Q8x4N(got, wd, sd, wq, sq8, xd, xq, groups)
			for row := range rows {
				want := dotQ8_0Q8Go(wd[row*sd:row*sd+2*nb], wq[row*sq8:row*sq8+BlockSize*nb], xd, xq)
				if math.Float32bits(got[row]) != math.Float32bits(want) {
					t.Fatalf("q8_0 nb=%d trial %d row %d: %v, pure Go %v", nb, trial, row, got[row], want)
				}
				if one := DotQ8_0Q8(wd[row*sd:], wq[row*sq8:], xd, xq); math.Float32bits(one) != math.Float32bits(want) {
					t.Fatalf("q8_0 nb=%d row %d: one row %v, pure Go %v", nb, row, one, want)
				}
			}
			DotQ4_0Q8x4N(got, wd, sd, wq, sq4, xd, xq, groups)
			for row := range rows {
				want := dotQ4_0Q8Go(wd[row*sd:row*sd+2*nb], wq[row*sq4:row*sq4+BlockSize/2*nb], xd, xq)
				if math.Float32bits(got[row]) != math.Float32bits(want) {
					t.Fatalf("q4_0 nb=%d trial %d row %d: %v, pure Go %v", nb, trial, row, got[row], want)
				}
			}
		}
	}
}

// BenchmarkDotQAct compares, in one run, the decode kernels with 16-bit
// activations (DotQ8_0x4N, DotQ4_0Rows, and q8_0's rows one after
// another, DotQ8_0Rows) and with 8-bit ones, on a
// 512×1408 matrix (the Mixtral-shaped down projection, in L2), one of
// 24576×1408 (in memory) and 32 expert-sized ones in turn against one
// token,
// on every kernel set the machine has, in wall and CPU time. Run with
// -count to interleave.
func BenchmarkDotQAct(b *testing.B) {
	b.Run("512x1408", func(b *testing.B) { benchDotQAct(b, 1, 512, 44) })
	// 24576 rows: 36 MB of q8_0, 19 MB of q4_0, streamed from memory
	// rather than L2, as decode's weights are.
	b.Run("24576x1408", func(b *testing.B) { benchDotQAct(b, 1, 24576, 44) })
	// 32 expert-sized matrices in turn, as decode switches experts: each
	// op is all of them.
	b.Run("32x1408x512", func(b *testing.B) { benchDotQAct(b, 32, 1408, 16) })
	b.Run("32x512x1408", func(b *testing.B) { benchDotQAct(b, 32, 512, 44) })
}

// benchDotQAct runs mats matrices of rows×nb blocks, one after another.
func benchDotQAct(b *testing.B, mats, rows, nb int) {
	defer useAVX512(canAVX512)
	r := rand.New(rand.NewPCG(1, 2))
	wd := make([]byte, 2*mats*rows*nb)
	for i := 0; i < len(wd); i += 2 {
		wd[i], wd[i+1] = 0, 0x3c // 1.0
	}
	wq := make([]byte, BlockSize*mats*rows*nb)
	for i := range wq {
		wq[i] = byte(r.IntN(256))
	}
	x := make([]float32, BlockSize*nb)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	// Matrix m's scales and q8_0 or q4_0 quants.
	sd, s8, s4 := 2*rows*nb, BlockSize*rows*nb, BlockSize/2*rows*nb
	xd16, g, xq16 := make([]float32, nb), make([]float32, nb), make([]int16, BlockSize*nb)
	QuantizeQ16(xq16, xd16, g, x)
	xp16 := make([]int16, len(xq16))
	PrepRows(xp16, xq16, 0, nb)
	xb16, c16 := make([]byte, Q4_0LayoutBytes(nb)), make([]int32, Q4_0Lanes*nb)
	PrepQ4_0(xb16, c16, nb, xq16, 0)
	xd8, xq8 := make([]float32, nb), make([]int8, BlockSize*nb)
	QuantizeQ8(xq8, xd8, x)
	for _, on := range []bool{false, true} {
		if on && !canAVX512 {
			continue
		}
		useAVX512(on)
		o := make([]float32, rows)
		for _, f := range []struct {
			name string
			wb   int // weight bytes per block
			run  func(m int)
		}{
			{"q8_0/act16", 34, func(m int) { DotQ8_0x4N(o, wd[m*sd:], 2*nb, wq[m*s8:], BlockSize*nb, xd16, xq16, rows/4) }},
			{"q8_0/act8", 34, func(m int) { DotQ8_0Q8x4N(o, wd[m*sd:], 2*nb, wq[m*s8:], BlockSize*nb, xd8, xq8, rows/4) }},
			{"q4_0/act16", 18, func(m int) {
				DotQ4_0Rows(o, wd[m*sd:], 2*nb, wq[m*s4:], BlockSize/2*nb, xd16, xq16, xb16, c16, rows)
			}},
			{"q4_0/act8", 18, func(m int) { DotQ4_0Q8x4N(o, wd[m*sd:], 2*nb, wq[m*s4:], BlockSize/2*nb, xd8, xq8, rows/4) }},
			// q8_0's rows one after another rather than four side by side.
			{"q8_0/act16rows", 34, func(m int) { DotQ8_0Rows(o, wd[m*sd:], 2*nb, wq[m*s8:], BlockSize*nb, xd16, xq16, xp16, rows) }},
		} {
			b.Run(Impl()+"/"+f.name, func(b *testing.B) {
				b.SetBytes(int64(mats * rows * nb * f.wb))
				c0 := cputime.Now()
				for b.Loop() {
					for m := range mats {
						f.run(m)
					}
				}
				// CPU time per op, which a loaded machine disturbs less
				// than the wall clock.
				b.ReportMetric(float64(cputime.Now()-c0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// BenchmarkQuantizeAct compares the 16-bit and 8-bit activation quantisers
// on one 1408-wide token (decode's down projection input).
func BenchmarkQuantizeAct(b *testing.B) {
	const nb = 44
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, BlockSize*nb)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	d, g, q16, q8 := make([]float32, nb), make([]float32, nb), make([]int16, BlockSize*nb), make([]int8, BlockSize*nb)
	b.Run("q16", func(b *testing.B) {
		for b.Loop() {
			QuantizeQ16(q16, d, g, x)
		}
	})
	b.Run("q8", func(b *testing.B) {
		for b.Loop() {
			QuantizeQ8(q8, d, x)
		}
	})
}
