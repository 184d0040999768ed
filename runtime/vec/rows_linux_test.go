//go:build linux

package vec

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/moderuntime/mode/internal/cputime"
)

// BenchmarkQ4Shape runs the q4_0 decode kernels, four rows side by side
// (x4N) and one after another (x1N), on OLMoE's gate/up shape (512 rows × 1024
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
	x2 := make([]int16, 2*len(xq))
	DupQ16(x2, xq)
	xp, c := make([]int16, len(xq)), make([]int32, Q4_0Lanes*nb)
	PrepQ4_0Rows(xp, c, xq, 0, nb)
	// Four tokens, as prefill gives each of OLMoE's experts of a 32-token
	// prompt: the same activations four times over.
	x4, xd4 := make([]int16, 0, 4*len(x2)), make([]float32, 0, 4*nb)
	for range 4 {
		x4, xd4 = append(x4, x2...), append(xd4, xd...)
	}
	for _, f := range []struct {
		name string
		run  func(o []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, rows int)
	}{
		{"x2xN4", func(o []float32, wd []byte, sd int, wq []byte, sq int, _ []float32, _ []int16, rows int) {
			var o16 [16]float32
			for r := 0; r < rows; r += 2 {
				DotQ4_0x2xN(&o16, wd[r*sd:], sd, wq[r*sq:], sq, xd4, x4, nb, nb, 4)
			}
		}},
		{"x4N", func(o []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, rows int) {
			DotQ4_0x4N(o, wd, sd, wq, sq, xd, xq, rows/4)
		}},
		{"x1N", func(o []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, rows int) {
			DotQ4_0Rows(o, wd, sd, wq, sq, xd, xq, xp, c, rows)
		}},
		// The natural layout with the offsets alone: the AVX2 one-row
		// kernel on any amd64 machine (what decode runs without AVX-512).
		{"x1Nnat", func(o []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, rows int) {
			DotQ4_0Rows(o, wd, sd, wq, sq, xd, xq, nil, c, rows)
		}},
	} {
		b.Run(f.name, func(b *testing.B) {
			b.SetBytes(int64(mats * rows * nb * 18))
			c0 := cputime.Now()
			for b.Loop() {
				for m := range mats {
					f.run(o, wd[m*sd:], 2*nb, wq[m*s4:], BlockSize/2*nb, xd, xq, rows)
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
