//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

// hasAVX2 selects the assembly kernels; they use AVX2, FMA and F16C
// (which x/sys/cpu does not report: CPUID leaf 1, ECX bit 29).
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpuid1ECX()&(1<<29) != 0

// hasAVX512 selects, for the q8_0 and q4_0 kernels of four rows and of
// tiles, assembly that runs two rows per 512-bit register with VNNI's
// multiply-add (same bits as the AVX2 kernels). A variable so that the
// tests can run the AVX2 kernels on machines that have both.
var hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI

func cpuid1ECX() uint32

func dotQ8_0(wd, wq []byte, xd []float32, xq []int16) float32 {
	if hasAVX2 {
		var o float32
		dotQ8_0x1NAVX2(&o, &wd[0], 0, &wq[0], 0, &xd[0], &xq[0], len(xd), 1)
		return o
	}
	return dotQ8_0Go(wd, wq, xd, xq)
}

func halfToFloat(dst []float32, src []byte) {
	if hasAVX2 {
		halfToFloatAVX2(&dst[0], &src[0], len(dst))
		return
	}
	halfToFloatGo(dst, src)
}

//go:noescape
func halfToFloatAVX2(dst *float32, src *byte, n int)

func dot(a, b []float32) float32 {
	if hasAVX2 {
		return dotAVX2(&a[0], &b[0], len(a))
	}
	return dotGo(a, b)
}

func axpy(y []float32, a float32, x []float32) {
	if hasAVX2 {
		axpyAVX2(&y[0], &x[0], len(y), a)
		return
	}
	axpyGo(y, a, x)
}

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func axpyAVX2(y, x *float32, n int, a float32)

// Impl names the kernels in use: "avx512" (AVX-512 with VNNI for the
// quantised kernels of several rows, AVX2 for the rest), "avx2" or "go".
func Impl() string {
	if hasAVX512 {
		return "avx512"
	}
	if hasAVX2 {
		return "avx2"
	}
	return "go"
}

func dotQ8_0x4(out *[4]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16) {
	if hasAVX512 {
		dotQ8_0x4NAVX512(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xq[0], len(xd), 1)
		return
	}
	if hasAVX2 {
		dotQ8_0x4AVX2(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xq[0], len(xd))
		return
	}
	dotQ8_0x4Go(out, wd, sd, wq, sq, xd, xq)
}

//go:noescape
func dotQ8_0x4AVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, nb int)

func dotLanes(a, b []float32) float32 {
	if hasAVX2 {
		var out [4]float32
		dotTileAVX2(&out[0], &a[0], 0, 1, &b[0], 0, 1, len(a))
		return out[0]
	}
	return dotLanesGo(a, b)
}

// StreamRows says DotRows reads one row after another. A decode product
// streams its weights from memory once; the four-row tile (Dot4x1) reads
// four rows side by side, four streams a row apart, and on rows of 2 to
// 5.6 KB (OLMoE's and Mixtral's expert matrices in f32) that read 11-18
// GB/s on one core of this machine where one row at a time read 26-29
// GB/s (BenchmarkF32Shape). x, a few KB, stays in L1 either way.
var StreamRows = hasAVX2

func dotRows(out, w []float32, ws int, x []float32, n int) {
	if !hasAVX2 {
		dotRows4(out, w, ws, x, n)
		return
	}
	for r := range out {
		dotTileAVX2(&out[r], &w[r*ws], 0, 1, &x[0], 0, 1, n)
	}
}

func dot4x1(out *[4]float32, w []float32, ws int, x []float32, n int) {
	if hasAVX2 {
		dotTileAVX2(&out[0], &w[0], 4*ws, 4, &x[0], 0, 1, n)
		return
	}
	dot4x1Go(out, w, ws, x, n)
}

func dot4x3(out *[12]float32, w []float32, ws int, x []float32, xs, n int) {
	if hasAVX2 {
		dotTileAVX2(&out[0], &w[0], 4*ws, 4, &x[0], 4*xs, 3, n)
		return
	}
	dot4x3Go(out, w, ws, x, xs, n)
}

// dotTileAVX2 computes out[4t+r] for rows r < rows (1 or 4, at byte
// stride ws) and activation rows t < cols (1 or 3, at byte stride xs).
//
//go:noescape
func dotTileAVX2(out *float32, w *float32, ws, rows int, x *float32, xs, cols, n int)

func dotQ4_K(dm, sc, mn, qs []byte, xd, g []float32, xq []int16) float32 {
	if hasAVX2 {
		return dotQ4_KRow(&dm[0], &sc[0], &mn[0], &qs[0], &xd[0], &g[0], &xq[0], len(xd)/8)
	}
	return dotQ4_KGo(dm, sc, mn, qs, xd, g, xq)
}

// dotQ4_KRow is one row of nb super-blocks through dotQ4_Kx1NAVX2.
func dotQ4_KRow(dm, sc, mn, qs *byte, xd, xg *float32, xq *int16, nb int) float32 {
	var o float32
	dotQ4_Kx1NAVX2(&o, dm, sc, mn, qs, xd, xg, xq, nb, 1)
	return o
}

//go:noescape
func dotQ4_Kx1NAVX2(out *float32, dm, sc, mn, qs *byte, xd, xg *float32, xq *int16, nb, rows int)

func dotQ4_KRows(out []float32, dm, sc, mn, qs []byte, xd, g []float32, xq []int16, rows int) {
	if hasAVX2 {
		dotQ4_Kx1NAVX2(&out[0], &dm[0], &sc[0], &mn[0], &qs[0], &xd[0], &g[0], &xq[0], len(xd)/8, rows)
		return
	}
	dotQ4_KRowsLoop(out, dm, sc, mn, qs, xd, g, xq, rows)
}

// The attention kernels' assembly handles rows that are whole chunks of
// eight; other head sizes take the Go loops.
func scores(dst, q, k []float32, stride int) {
	if hasAVX2 && len(q)%8 == 0 {
		scoresAVX2(&dst[0], &q[0], &k[0], 4*stride, len(dst), len(q)/8)
		return
	}
	scoresLoop(dst, q, k, stride)
}

func weightedSum(o, a, v []float32, stride int) {
	if hasAVX2 && len(o)%8 == 0 {
		weightedSumAVX2(&o[0], &a[0], &v[0], 4*stride, len(a), len(o)/8)
		return
	}
	weightedSumLoop(o, a, v, stride)
}

//go:noescape
func scoresAVX2(dst, q, k *float32, stride, n, chunks int)

//go:noescape
func weightedSumAVX2(o, a, v *float32, stride, n, chunks int)

func dotQ8_0x2x4(out *[8]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, xs, n int) {
	if hasAVX512 {
		dotQ8_0x2x4AVX512(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xq[0], xs, n)
		return
	}
	if hasAVX2 {
		dotQ8_0x2x4AVX2(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xq[0], xs, n)
		return
	}
	dotQ8_0x2x4Go(out, wd, sd, wq, sq, xd, xq, xs, n)
}

//go:noescape
func dotQ8_0x2x4AVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, xs, nb int)

func quantizeQ16(q []int16, d, g, x []float32) {
	if hasAVX2 {
		quantizeQ16AVX2(&q[0], &d[0], &g[0], &x[0], len(d))
		return
	}
	quantizeQ16Go(q, d, g, x)
}

//go:noescape
func quantizeQ16AVX2(q *int16, d, gs, x *float32, nb int)

//go:noescape
func dotQ8_0x1NAVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xp *int16, nb, rows int)

//go:noescape
func dotQ8_0x1NAVX2(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, nb, rows int)

func dotQ8_0Rows(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq, xp []int16, rows int) {
	switch {
	case hasAVX512 && xp != nil:
		dotQ8_0x1NAVX512(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xp[0], len(xd), rows)
	case hasAVX2:
		dotQ8_0x1NAVX2(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xq[0], len(xd), rows)
	default:
		dotQ8_0RowsLoop(out, wd, sd, wq, sq, xd, xq, rows)
	}
}

//go:noescape
func dotQ8_0x4NAVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, nb, groups int)

func dotQ8_0x4N(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, groups int) {
	if hasAVX512 {
		dotQ8_0x4NAVX512(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xq[0], len(xd), groups)
		return
	}
	dotQ8_0x4NLoop(out, wd, sd, wq, sq, xd, xq, groups)
}

//go:noescape
func dotQ8_0x2x4AVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, xs, nb int)

// canAVX512 is whether the machine has what the AVX-512 kernels need;
// useAVX512 turns them on or off (for the tests).
var canAVX512 = hasAVX512

func useAVX512(on bool) { hasAVX512 = on && canAVX512 }

func dotQ4_Kx2x4(out *[8]float32, dm []byte, sdm int, sc, mn []byte, ssc int, qs []byte, sqs int, xd, g []float32, xq []int16, xs, n int) {
	if !hasAVX2 {
		dotQ4_Kx2x4Go(out, dm, sdm, sc, mn, ssc, qs, sqs, xd, g, xq, xs, n)
		return
	}
	// the rows kernel's one pair into dst[2t+r], then out's order
	var dst [8]float32
	dotQ4_Kx2x4AVX2(&dst[0], 8, &dm[0], sdm, &sc[0], &mn[0], ssc, &qs[0], sqs, &xd[0], &g[0], &xq[0], xs, n, 4, 1)
	for r := range 2 {
		for t := range 4 {
			out[4*r+t] = dst[2*t+r]
		}
	}
}

// dotQ4_Kx2xNRows is DotQ4_Kx2xNRows on arguments it has checked, n > 0.
func dotQ4_Kx2xNRows(dst []float32, stride int, dm []byte, sdm int, sc, mn []byte, ssc int, qs []byte, sqs int, xd, g []float32, xq []int16, xs, n, nt, r0, r1 int) {
	if hasAVX2 {
		dotQ4_Kx2x4AVX2(&dst[r0], 4*stride, &dm[r0*sdm], sdm, &sc[r0*ssc], &mn[r0*ssc], ssc, &qs[r0*sqs], sqs, &xd[0], &g[0], &xq[0], xs, n, nt, (r1-r0)/2)
		return
	}
	dotQ4_Kx2xNRowsLoop(dst, stride, dm, sdm, sc, mn, ssc, qs, sqs, xd, g, xq, xs, n, nt, r0, r1)
}

//go:noescape
func dotQ4_Kx2x4AVX2(dst *float32, stride int, dm *byte, sdm int, sc, mn *byte, ssc int, qs *byte, sqs int, xd, xg *float32, xq *int16, xs, n, nt, pairs int)

func dotQ8_0x2x8(out *[16]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, xs, n int) {
	if hasAVX512 {
		dotQ8_0x2x8AVX512(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &xq[0], xs, n)
		return
	}
	dotQ8_0x2x8Loop(out, wd, sd, wq, sq, xd, xq, xs, n)
}

//go:noescape
func dotQ8_0x2x8AVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, xq *int16, xs, nb int)

func dotQ8_0x2x8Dup(out *[16]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, x2 []int16, xs, n int) {
	if hasAVX512 {
		dotQ8_0x2x8DupAVX512(&out[0], &wd[0], sd, &wq[0], sq, &xd[0], &x2[0], xs, n)
		return
	}
	dotQ8_0x2xNGo(out, wd, sd, wq, sq, xd, x2, xs, n, 8)
}

//go:noescape
func dotQ8_0x2x8DupAVX512(out *float32, wd *byte, sd int, wq *byte, sq int, xd *float32, x2 *int16, xs, nb int)

// tilesAnyTokens: the 2×n tiles are one kernel only with AVX-512.
func tilesAnyTokens() bool { return hasAVX512 }

func scoresHeads(dst []float32, n int, q, k []float32, stride, rows, heads, hd, group, phase int) {
	if hasAVX2 && hd%8 == 0 {
		scoresHeadsAVX2(&dst[0], 4*n, &q[0], &k[0], 4*stride, rows, heads, hd/8, group, phase)
		return
	}
	scoresHeadsLoop(dst, n, q, k, stride, rows, heads, hd, group, phase)
}

func axpyHeads(o, a []float32, n int, v []float32, stride, rows, heads, hd, group, phase int) {
	if hasAVX2 && hd%8 == 0 {
		axpyHeadsAVX2(&o[0], &a[0], 4*n, &v[0], 4*stride, rows, heads, hd/8, group, phase)
		return
	}
	axpyHeadsLoop(o, a, n, v, stride, rows, heads, hd, group, phase)
}

//go:noescape
func scoresHeadsAVX2(dst *float32, dstride int, q, k *float32, stride, rows, heads, chunks, group, phase int)

//go:noescape
func axpyHeadsAVX2(o, a *float32, astride int, v *float32, stride, rows, heads, chunks, group, phase int)

// divMaxN divides the first len(x)&^7 values by s with divMaxAVX2 and
// returns how many and their maximum (any lane's, either sign of zero)
// and whether any is NaN.
func divMaxN(x []float32, s float32) (n int, m float32, nan bool) {
	n = len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0, 0, false
	}
	m, nan = divMaxAVX2(&x[0], n, s)
	return n, m, nan
}

// scaleN multiplies the first len(x)&^7 values by c and returns how many.
func scaleN(x []float32, c float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	scaleAVX2(&x[0], n, c)
	return n
}

//go:noescape
func divMaxAVX2(x *float32, n int, s float32) (m float32, nan bool)

//go:noescape
func scaleAVX2(x *float32, n int, c float32)

// sumSquares8N adds the squares of the first len(x)&^7 values into the
// lanes of a, value j into lane j mod 8, each rounded before it is added,
// and returns how many.
func sumSquares8N(a *[8]float32, x []float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	sumSquares8AVX2(a, &x[0], n)
	return n
}

// rmsScaleN sets o[j] = w[j]·(s·x[j]) for the first len(x)&^7 values
// and returns how many.
func rmsScaleN(o, w, x []float32, s float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	o, w = o[:n], w[:n]
	rmsScaleAVX2(&o[0], &w[0], &x[0], n, s)
	return n
}

//go:noescape
func sumSquares8AVX2(a *[8]float32, x *float32, n int)

//go:noescape
func rmsScaleAVX2(o, w, x *float32, n int, s float32)

func halfRows(dst []float32, src []uint16, stride, rows, n int) {
	if hasAVX2 && n%8 == 0 {
		halfRowsAVX2(&dst[0], &src[0], 2*stride, rows, n/8)
		return
	}
	halfRowsGo(dst, src, stride, rows, n)
}

//go:noescape
func halfRowsAVX2(dst *float32, src *uint16, stride, rows, chunks int)
