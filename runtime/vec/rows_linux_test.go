//go:build linux

package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"syscall"
	"testing"
	"unsafe"

	"github.com/moderuntime/mode/internal/cputime"
)

// BenchmarkQ4Shape runs the q4_0 decode kernels (rows one after another,
// AVX-512 and AVX2) on OLMoE's gate/up shape (512 rows × 1024
// columns), its down (1024 × 512), Mixtral's gate/up (1408 × 512: rows
// of 16 blocks, where each row's end costs most) and down (512 × 1408), over
// enough matrices in turn (36 MB) to stream them from memory, and over
// few enough to stay in L3 (16 and 12 matrices) and L2 (2), on 2 MB pages
// as the engine's weights are (shard's adviseHugePages), in wall and CPU
// time. Run with -count to interleave.
func BenchmarkQ4Shape(b *testing.B) {
	for _, s := range []struct{ mats, rows, nb int }{{128, 512, 32}, {64, 1408, 16}, {128, 1024, 16}, {96, 512, 44}, {16, 512, 32}, {12, 512, 44}, {2, 512, 44}} {
		b.Run(fmt.Sprintf("%dx%dx%d", s.mats, s.rows, s.nb*BlockSize), func(b *testing.B) {
			benchQ4Shape(b, s.mats, s.rows, s.nb)
		})
	}
}

func benchQ4Shape(b *testing.B, mats, rows, nb int) {
	r := rand.New(rand.NewPCG(1, 2))
	alloc := func(n int) []byte {
		m, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { syscall.Munmap(m) })
		if err := syscall.Madvise(m, syscall.MADV_HUGEPAGE); err != nil {
			b.Fatal(err)
		}
		return m
	}
	wd := alloc(2 * mats * rows * nb)
	for i := 0; i < len(wd); i += 2 {
		wd[i], wd[i+1] = 0, 0x3c
	}
	wq := alloc(BlockSize / 2 * mats * rows * nb)
	for i := range wq {
		wq[i] = byte(r.IntN(256))
	}
	x := make([]float32, BlockSize*nb)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	sd, s4 := 2*rows*nb, BlockSize/2*rows*nb
	xd, g, xq := make([]float32, nb), make([]float32, nb), make([]int16, BlockSize*nb)
	QuantizeQ16(xq, xd, g, x)
	o := make([]float32, rows)
	xb, c := make([]byte, Q4_0LayoutBytes(nb)), make([]int32, Q4_0Lanes*nb)
	PrepQ4_0(xb, c, nb, xq, 0)
	defer useAVX512(canAVX512)
	for _, f := range []struct {
		name   string
		avx512 bool
	}{
		{"x1N", true},
		// The AVX2 kernel, what decode runs without AVX-512.
		{"x1Navx2", false},
	} {
		if f.avx512 && !canAVX512 {
			continue
		}
		b.Run(f.name, func(b *testing.B) {
			useAVX512(f.avx512)
			b.SetBytes(int64(mats * rows * nb * 18))
			c0 := cputime.Now()
			for b.Loop() {
				for m := range mats {
					DotQ4_0Rows(o, wd[m*sd:], 2*nb, wq[m*s4:], BlockSize/2*nb, xd, xq, xb, c, rows)
				}
			}
			b.ReportMetric(float64(cputime.Now()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkQ4KRows streams mats q4_k matrices of rows×(8·nb) blocks of 32
// (from memory once they pass the L3) through DotQ4_KRows, in wall and
// thread CPU time.
func BenchmarkQ4KRows(b *testing.B) {
	for _, s := range []struct{ mats, rows, nb int }{{64, 1408, 2}, {128, 512, 4}, {8, 1408, 2}} {
		b.Run(fmt.Sprintf("%dx%dx%d", s.mats, s.rows, 256*s.nb), func(b *testing.B) {
			benchQ4KRows(b, s.mats, s.rows, s.nb)
		})
	}
}

func benchQ4KRows(b *testing.B, mats, rows, nb int) {
	r := rand.New(rand.NewPCG(3, 4))
	n := 8 * nb
	per := rows * nb * 148 // a super-block: dm 4, sc 8, mn 8 and qs 128 bytes
	all := make([]byte, mats*per)
	for i := range all {
		all[i] = byte(r.IntN(256))
	}
	// Each matrix's arrays: dm 4·nb, sc and mn n, qs 16·n bytes a row.
	dm, sc, mn, qs := make([][]byte, mats), make([][]byte, mats), make([][]byte, mats), make([][]byte, mats)
	for m := range mats {
		a := all[m*per:]
		dm[m], a = a[:4*nb*rows], a[4*nb*rows:]
		for i := 1; i < len(dm[m]); i += 2 {
			dm[m][i] &= 0x3b // finite scales
		}
		sc[m], a = a[:n*rows], a[n*rows:]
		mn[m], a = a[:n*rows], a[n*rows:]
		qs[m] = a[:BlockSize/2*n*rows]
	}
	x := make([]float32, BlockSize*n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	xd, g, xq := make([]float32, n), make([]float32, n), make([]int16, BlockSize*n)
	QuantizeQ16(xq, xd, g, x)
	o := make([]float32, rows)
	b.SetBytes(int64(mats * per))
	c0 := cputime.Now()
	for b.Loop() {
		for m := range mats {
			DotQ4_KRows(o, dm[m], sc[m], mn[m], qs[m], xd, g, xq, rows)
		}
	}
	b.ReportMetric(float64(cputime.Now()-c0)/float64(b.N), "cpu-ns/op")
}

// TestDotQ4_0Guarded runs the q4_0 kernels (one token and two at once)
// and PrepQ4_0 on arrays that each end where an unreadable page begins,
// so a load past any of them (the masked loads of a short last step, the
// scales' loads) faults: every block count up to nine and a few rows,
// AVX-512 and AVX2.
func TestDotQ4_0Guarded(t *testing.T) { eachImpl(t, testDotQ4_0Guarded) }

func testDotQ4_0Guarded(t *testing.T) {
	page := syscall.Getpagesize()
	// guarded returns n bytes that end where a PROT_NONE page begins.
	guarded := func(n int) []byte {
		size := (n+page-1)/page*page + page
		m, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Munmap(m) })
		if err := syscall.Mprotect(m[size-page:], syscall.PROT_NONE); err != nil {
			t.Fatal(err)
		}
		return m[size-page-n : size-page : size-page]
	}
	r := rand.New(rand.NewPCG(53, 54))
	for nb := 1; nb <= 9; nb++ {
		for _, rows := range []int{1, 3} {
			wd, wq := guarded(2*nb*rows), guarded(BlockSize/2*nb*rows)
			copy(wd, randScales(r, len(wd)))
			copy(wq, randBytes(r, len(wq)))
			// two tokens (AVX-512's two-token kernel, the second's arrays
			// ending at the guard) and three (the last alone)
			for _, nt := range []int{2, 3} {
				lb, lc := Q4_0LayoutBytes(nb), Q4_0Lanes*nb
				xdb, qb := guarded(4*nt*nb), guarded(2*BlockSize*nt*nb)
				xd := unsafe.Slice((*float32)(unsafe.Pointer(&xdb[0])), nt*nb)
				q := unsafe.Slice((*int16)(unsafe.Pointer(&qb[0])), BlockSize*nt*nb)
				d, v := randActs(r, nt*nb)
				copy(xd, d)
				copy(q, v)
				xb, cb := guarded(nt*lb), guarded(4*nt*lc)
				c := unsafe.Slice((*int32)(unsafe.Pointer(&cb[0])), nt*lc)
				for k := range nt {
					PrepQ4_0(xb[k*lb:(k+1)*lb], c[k*lc:(k+1)*lc], nb, q[BlockSize*nb*k:BlockSize*nb*(k+1)], 0)
				}
				out := make([]float32, nt*rows)
				DotQ4_0RowsTokens(out, rows, wd, 2*nb, wq, BlockSize/2*nb, xd, q, xb, c, nt, rows)
				for k := range nt {
					for i := range rows {
						want := dotQ4_0Go(wd[2*nb*i:], wq[BlockSize/2*nb*i:], xd[k*nb:(k+1)*nb], q[BlockSize*nb*k:])
						if o := out[k*rows+i]; math.Float32bits(o) != math.Float32bits(want) {
							t.Fatalf("nb=%d rows=%d, %d tokens: token %d row %d: %v, pure Go %v", nb, rows, nt, k, i, o, want)
						}
					}
				}
			}
		}
	}
}
