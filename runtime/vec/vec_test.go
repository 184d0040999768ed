package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDot checks Dot and Axpy against float64 sums over lengths that are
// not multiples of the vector width. The reassociated float32 sum of n
// products differs from the exact sum by at most about n·u·Σ|a·b|
// (u = 2^-24, the unit roundoff; γ_n bound of a summation tree of depth
// ≤ n, with one more rounding per product).
func TestDot(t *testing.T) {
	t.Logf("kernels: %s", Impl())
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 5, 8, 31, 33, 64, 100, 257} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
		}
		var want, mag float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
			mag += math.Abs(float64(a[i]) * float64(b[i]))
		}
		bound := float64(n+1) * 0x1p-24 * mag
		for name, got := range map[string]float32{"Dot": Dot(a, b), "dotGo": dotGo(a, b)} {
			if d := math.Abs(float64(got) - want); d > bound {
				t.Errorf("%s n=%d: %v, want %v (diff %.3g > bound %.3g)", name, n, got, want, d, bound)
			}
		}
		y := make([]float32, n)
		copy(y, b)
		Axpy(y, 0.5, a)
		for i := range y {
			w := float64(b[i]) + 0.5*float64(a[i])
			if d := math.Abs(float64(y[i]) - w); d > 0x1p-23*(math.Abs(float64(b[i]))+math.Abs(0.5*float64(a[i]))) {
				t.Fatalf("Axpy n=%d: y[%d] = %v, want %v", n, i, y[i], w)
			}
		}
	}
}

// TestDotQ compares the dispatched q8_0 and q4_0 row kernels with the
// pure-Go ones, which sum in the assembly's lanes: they must agree bit for
// bit, for block counts around any unrolling and with random f16 weight
// scales over a wide range. (Their accuracy against the exact kernels is
// tested in runtime/tensor, on the same Go code under -tags purego.)
func TestDotQ(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, nb := range []int{1, 2, 3, 5, 16, 44} {
		for trial := range 20 {
			wd := make([]byte, 2*nb)
			xd := make([]float32, nb)
			for b := range nb {
				h := uint16(r.IntN(0x7800)) | uint16(r.IntN(2))<<15 // finite f16, either sign
				wd[2*b], wd[2*b+1] = byte(h), byte(h>>8)
				xd[b] = float32(math.Exp(4 * r.NormFloat64()))
			}
			wq := make([]byte, BlockSize*nb)
			xq := make([]int16, BlockSize*nb)
			for i := range wq {
				wq[i] = byte(r.IntN(256))
				xq[i] = int16(r.IntN(65535) - 32767)
			}
			if trial == 0 { // the extremes: −128 and 127 against ±32767
				wq[0], wq[1], wq[2], wq[3] = 0x80, 0x80, 0x7f, 0x7f
				xq[0], xq[1], xq[2], xq[3] = 32767, -32767, 32767, -32767
			}
			if g, w := DotQ8_0(wd, wq, xd, xq), dotQ8_0Go(wd, wq, xd, xq); math.Float32bits(g) != math.Float32bits(w) {
				t.Fatalf("q8_0 nb=%d trial %d: %v, pure Go %v", nb, trial, g, w)
			}
			if g, w := DotQ4_0(wd, wq, xd, xq), dotQ4_0Go(wd, wq, xd, xq); math.Float32bits(g) != math.Float32bits(w) {
				t.Fatalf("q4_0 nb=%d trial %d: %v, pure Go %v", nb, trial, g, w)
			}
		}
	}
}

// TestHalfToFloat decodes every f16 value, in runs of lengths that leave
// tails, and compares with the scalar conversion (NaNs by class only: the
// hardware quiets signalling NaNs).
func TestHalfToFloat(t *testing.T) {
	src := make([]byte, 2<<16)
	for h := range 1 << 16 {
		src[2*h], src[2*h+1] = byte(h), byte(h>>8)
	}
	dst := make([]float32, 1<<16)
	for lo := 0; lo < 1<<16; {
		n := min(1+lo%13, 1<<16-lo)
		HalfToFloat(dst[lo:], src[2*lo:2*(lo+n)])
		lo += n
	}
	for h := range 1 << 16 {
		want := half(uint16(h))
		if g := dst[h]; math.Float32bits(g) != math.Float32bits(want) && !(g != g && want != want) {
			t.Fatalf("f16 %#04x: %v, want %v", h, g, want)
		}
	}
}

// TestDotQx4 checks that the q8_0 four-row kernels give, for every row, the
// bits of the one-row kernels (and, through TestDotQ, of the pure-Go
// sums), with rows at strides longer than a row.
func TestDotQx4(t *testing.T) { eachImpl(t, testDotQx4) }

func testDotQx4(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, nb := range []int{1, 3, 7, 8, 9, 16, 17, 44} {
		sd, sq8 := 2*nb+6, BlockSize*nb+32
		wd := make([]byte, 4*sd)
		for i := 0; i < len(wd); i += 2 {
			h := uint16(r.IntN(0x7800)) | uint16(r.IntN(2))<<15
			wd[i], wd[i+1] = byte(h), byte(h>>8)
		}
		wq := make([]byte, 4*sq8)
		for i := range wq {
			wq[i] = byte(r.IntN(256))
		}
		xd := make([]float32, nb)
		xq := make([]int16, BlockSize*nb)
		for b := range xd {
			xd[b] = float32(math.Exp(2 * r.NormFloat64()))
		}
		for i := range xq {
			xq[i] = int16(r.IntN(65535) - 32767)
		}
		var got, goGot [4]float32
		DotQ8_0x4(&got, wd, sd, wq, sq8, xd, xq)
		dotQ8_0x4Go(&goGot, wd, sd, wq, sq8, xd, xq)
		for row := range 4 {
			want := DotQ8_0(wd[row*sd:], wq[row*sq8:], xd, xq)
			if math.Float32bits(got[row]) != math.Float32bits(want) || math.Float32bits(goGot[row]) != math.Float32bits(want) {
				t.Fatalf("q8_0 nb=%d row %d: %v (pure Go %v), one row at a time %v", nb, row, got[row], goGot[row], want)
			}
		}
	}
}

// TestDotTiles checks that every tile kernel gives each output the bits
// DotLanes gives it alone, so that tiling does not change a product, and
// that DotLanes is within the reassociation bound of the exact sum, over
// lengths around the eight-lane chunks.
func TestDotTiles(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 7, 8, 9, 31, 64, 301} {
		ws, xs := n+3, n+5
		w, x := make([]float32, 4*ws), make([]float32, 3*xs)
		for i := range w {
			w[i] = float32(r.NormFloat64())
		}
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		var o4 [4]float32
		var o12 [12]float32
		Dot4x3(&o12, w, ws, x, xs, n)
		for tk := range 3 {
			xt := x[tk*xs : tk*xs+n]
			Dot4x1(&o4, w, ws, xt, n)
			for row := range 4 {
				wr := w[row*ws : row*ws+n]
				want := DotLanes(wr, xt)
				if math.Float32bits(o12[4*tk+row]) != math.Float32bits(want) || math.Float32bits(o4[row]) != math.Float32bits(want) {
					t.Fatalf("n=%d row %d token %d: 4×3 %v, 4×1 %v, alone %v", n, row, tk, o12[4*tk+row], o4[row], want)
				}
				var exact, mag float64
				for j := range wr {
					exact += float64(wr[j]) * float64(xt[j])
					mag += math.Abs(float64(wr[j]) * float64(xt[j]))
				}
				if d := math.Abs(float64(want) - exact); d > float64(n+1)*0x1p-24*mag {
					t.Fatalf("n=%d: DotLanes %v, exact %v", n, want, exact)
				}
			}
		}
	}
}

// randQ16 makes n blocks of random 16-bit activations as Q16Rows holds
// them: scales xd, quants xq and each block's g = xd·Σxq.
func randQ16(r *rand.Rand, n int) (xd, g []float32, xq []int16) {
	xd, g = make([]float32, n), make([]float32, n)
	xq = make([]int16, BlockSize*n)
	for i := range xq {
		xq[i] = int16(r.IntN(65535) - 32767)
	}
	for k := range xd {
		xd[k] = float32(math.Exp(2 * r.NormFloat64()))
		var s int32
		for _, v := range xq[BlockSize*k : BlockSize*(k+1)] {
			s += int32(v)
		}
		g[k] = xd[k] * float32(s)
	}
	return xd, g, xq
}

// TestDotQ4_K compares the dispatched q4_k row kernel with the pure-Go
// one, which sums in the assembly's lanes: bit for bit.
func TestDotQ4_K(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, nb := range []int{1, 2, 5} {
		for trial := range 20 {
			n := 8 * nb
			dm := make([]byte, 4*nb)
			for i := 0; i < len(dm); i += 2 {
				h := uint16(r.IntN(0x7800)) // finite, positive f16
				dm[i], dm[i+1] = byte(h), byte(h>>8)
			}
			sc, mn, qs := make([]byte, n), make([]byte, n), make([]byte, BlockSize/2*n)
			for _, b := range [][]byte{sc, mn, qs} {
				for i := range b {
					b[i] = byte(r.IntN(256))
				}
			}
			xd, g, xq := randQ16(r, n)
			got, want := DotQ4_K(dm, sc, mn, qs, xd, g, xq), dotQ4_KGo(dm, sc, mn, qs, xd, g, xq)
			if math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("nb=%d trial %d: %v, pure Go %v", nb, trial, got, want)
			}
		}
	}
}

// TestDotQ4_KRows checks the many-row q4_k kernel against the pure-Go one
// row by row, bit for bit, for 1 to 9 rows of 1, 2 and 5 super-blocks, on
// every kernel set the machine has.
func TestDotQ4_KRows(t *testing.T) { eachImpl(t, testDotQ4_KRows) }

func testDotQ4_KRows(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	for _, nb := range []int{1, 2, 5} {
		for rows := 1; rows <= 9; rows++ {
			n := 8 * nb
			dm := make([]byte, 4*nb*rows)
			for i := 0; i < len(dm); i += 2 {
				h := uint16(r.IntN(0x7800)) | uint16(r.IntN(2))<<15
				dm[i], dm[i+1] = byte(h), byte(h>>8)
			}
			sc, mn, qs := make([]byte, n*rows), make([]byte, n*rows), make([]byte, BlockSize/2*n*rows)
			for _, b := range [][]byte{sc, mn, qs} {
				for i := range b {
					b[i] = byte(r.IntN(256))
				}
			}
			xd, g, xq := randQ16(r, n)
			got := make([]float32, rows)
			DotQ4_KRows(got, dm, sc, mn, qs, xd, g, xq, rows)
			for row, v := range got {
				want := dotQ4_KGo(dm[4*nb*row:], sc[n*row:], mn[n*row:], qs[BlockSize/2*n*row:], xd, g, xq)
				if math.Float32bits(v) != math.Float32bits(want) {
					t.Fatalf("nb=%d rows=%d row %d: %v, pure Go %v", nb, rows, row, v, want)
				}
			}
		}
	}
}

// TestAttentionKernels checks Scores against Dot row by row (within the
// reassociation bound) and WeightedSum against a loop of Axpy (bit for
// bit: the same fused steps in the same order), for head sizes that are
// and are not whole chunks of eight, and cache rows at a longer stride.
func TestAttentionKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, hd := range []int{8, 12, 40, 64, 72} {
		const n = 37
		stride := 3*hd + 8
		q, k := make([]float32, hd), make([]float32, n*stride)
		for i := range q {
			q[i] = float32(r.NormFloat64())
		}
		for i := range k {
			k[i] = float32(r.NormFloat64())
		}
		sc := make([]float32, n)
		Scores(sc, q, k, stride)
		for i, got := range sc {
			row := k[i*stride : i*stride+hd]
			var exact, mag float64
			for j := range q {
				exact += float64(q[j]) * float64(row[j])
				mag += math.Abs(float64(q[j]) * float64(row[j]))
			}
			if d := math.Abs(float64(got) - exact); d > float64(hd+1)*0x1p-24*mag {
				t.Fatalf("hd=%d: score %d = %v, exact %v", hd, i, got, exact)
			}
		}
		o, want := make([]float32, hd), make([]float32, hd)
		WeightedSum(o, sc, k, stride)
		for i, a := range sc {
			Axpy(want, a, k[i*stride:i*stride+hd])
		}
		for j := range o {
			if math.Float32bits(o[j]) != math.Float32bits(want[j]) {
				t.Fatalf("hd=%d: o[%d] = %v, Axpy loop %v", hd, j, o[j], want[j])
			}
		}
	}
}

// BenchmarkDotQ4_0 runs the one-row q4_0 kernel (DotQ4_0, the kernel the
// row-by-row loop calls where there is no AVX-512) over 512 rows of 44
// blocks (one 512×1408 matrix, 405 KB, in L2) and of 43 (an odd count),
// row after row.
func BenchmarkDotQ4_0(b *testing.B) {
	for _, nb := range []int{44, 43} {
		b.Run(fmt.Sprintf("512x%d", nb*BlockSize), func(b *testing.B) {
			const rows = 512
			r := rand.New(rand.NewPCG(1, 2))
			wd, wq := make([]byte, 2*rows*nb), make([]byte, BlockSize/2*rows*nb)
			for i := 0; i < len(wd); i += 2 {
				wd[i], wd[i+1] = 0, 0x3c // 1.0
			}
			for i := range wq {
				wq[i] = byte(r.IntN(256))
			}
			xd, xq := make([]float32, nb), make([]int16, BlockSize*nb)
			for i := range xd {
				xd[i] = 1
			}
			for i := range xq {
				xq[i] = int16(r.IntN(65535) - 32767)
			}
			b.SetBytes(int64(rows * nb * 18))
			var s float32
			for b.Loop() {
				for row := range rows {
					s += DotQ4_0(wd[2*nb*row:], wq[BlockSize/2*nb*row:], xd, xq)
				}
			}
			_ = s
		})
	}
}

// TestScoresRows checks that Scores over many rows (which the amd64
// kernel takes eight at a time) gives each row the bits of Scores over
// that row alone.
func TestScoresRows(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, hd := range []int{8, 16, 24, 64, 72, 128} {
		for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 23, 40, 61} {
			stride := hd + 8*(n%3)
			q, k := make([]float32, hd), make([]float32, (n-1)*stride+hd)
			for i := range q {
				q[i] = float32(r.NormFloat64())
			}
			for i := range k {
				k[i] = float32(r.NormFloat64() * math.Exp(4*r.Float64()))
			}
			got, one := make([]float32, n), make([]float32, 1)
			Scores(got, q, k, stride)
			for i := range n {
				Scores(one, q, k[i*stride:i*stride+hd], stride)
				if math.Float32bits(got[i]) != math.Float32bits(one[0]) {
					t.Fatalf("hd=%d n=%d: row %d = %v, alone %v", hd, n, i, got[i], one[0])
				}
			}
		}
	}
}

// BenchmarkScores is one head's scores over a decode's cache rows
// (Mixtral's shape: head dim 64, rows of two KV heads, 128 floats).
func BenchmarkScores(b *testing.B) {
	const hd, stride, n = 64, 128, 1000
	r := rand.New(rand.NewPCG(15, 16))
	q, k := randNorm(r, hd), randNorm(r, n*stride)
	dst := make([]float32, n)
	for b.Loop() {
		Scores(dst, q, k, stride)
	}
}

// BenchmarkWeightedSum is one head's weighted sum of values over a
// decode's cache rows, in BenchmarkScores' shape.
func BenchmarkWeightedSum(b *testing.B) {
	const hd, stride, n = 64, 128, 1000
	r := rand.New(rand.NewPCG(19, 20))
	a, v := randNorm(r, n), randNorm(r, n*stride)
	o := make([]float32, hd)
	for b.Loop() {
		WeightedSum(o, a, v, stride)
	}
}

// randNorm is n standard normal values.
func randNorm(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// TestRMSNormLanes checks RMSNormLanes against its definition, its
// squares summed in eight lanes in float64 arithmetic rounded as the
// lanes round (each square and each addition to f32), on ragged sizes,
// and that it stays within float32's error of RMSNorm.
func TestRMSNormLanes(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{1, 3, 7, 8, 9, 15, 16, 17, 64, 511, 512, 1024, 1031} {
		x, w := make([]float32, n), make([]float32, n)
		for i := range x {
			x[i], w[i] = float32(r.NormFloat64()*3), float32(r.NormFloat64())
		}
		add := func(p, q float32) float32 { return float32(float64(p) + float64(q)) }
		var a [8]float32
		for j, v := range x {
			k := j % 8
			if j >= n&^7 {
				k = j - n&^7
			}
			a[k] = add(a[k], float32(float64(v)*float64(v)))
		}
		ss := add(add(add(a[0], a[4]), add(a[2], a[6])), add(add(a[1], a[5]), add(a[3], a[7])))
		ss = float32(float64(ss) / float64(n))
		ss = float32(float64(ss) + 1e-5)
		ss = float32(1 / float64(float32(math.Sqrt(float64(ss)))))
		got, exact := make([]float32, n), make([]float32, n)
		RMSNormLanes(got, x, w, 1e-5)
		RMSNorm(exact, x, w, 1e-5)
		in := slices.Clone(x)
		RMSNormLanes(in, in, w, 1e-5) // in place
		if !slices.Equal(in, got) {
			t.Errorf("n=%d: in place %v, apart %v", n, in[:min(n, 4)], got[:min(n, 4)])
		}
		for j := range x {
			want := float32(float64(w[j]) * float64(float32(float64(ss)*float64(x[j]))))
			if math.Float32bits(got[j]) != math.Float32bits(want) {
				t.Fatalf("n=%d [%d]: %v, want %v", n, j, got[j], want)
			}
			if d := math.Abs(float64(got[j] - exact[j])); d > 4e-6*math.Abs(float64(exact[j]))+1e-30 {
				t.Errorf("n=%d [%d]: %v against RMSNorm's %v", n, j, got[j], exact[j])
			}
		}
	}
}

func BenchmarkRMSNorm(b *testing.B) {
	for _, n := range []int{512, 1024} {
		x, w, o := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range x {
			x[i], w[i] = float32(i%13)-6, 1
		}
		b.Run(fmt.Sprintf("runc/%d", n), func(b *testing.B) {
			for b.Loop() {
				RMSNorm(o, x, w, 1e-5)
			}
		})
		b.Run(fmt.Sprintf("lanes/%d", n), func(b *testing.B) {
			for b.Loop() {
				RMSNormLanes(o, x, w, 1e-5)
			}
		})
	}
}
