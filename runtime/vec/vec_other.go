//go:build !amd64 || purego

package vec

func dot(a, b []float32) float32               { return dotGo(a, b) }
func axpy(y []float32, a float32, x []float32) { axpyGo(y, a, x) }

// Impl names the kernels in use: "avx2" or "go".
func Impl() string { return "go" }

func dotQ8_0(wd, wq []byte, xd []float32, xq []int16) float32 { return dotQ8_0Go(wd, wq, xd, xq) }
func halfToFloat(dst []float32, src []byte)                   { halfToFloatGo(dst, src) }

func dotQ8_0x4(out *[4]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16) {
	dotQ8_0x4Go(out, wd, sd, wq, sq, xd, xq)
}

func dotLanes(a, b []float32) float32 { return dotLanesGo(a, b) }

// StreamRows: without the assembly a row's x loads are worth sharing
// among four rows.
const StreamRows = false

func dotRows(out, w []float32, ws int, x []float32, n int) { dotRows4(out, w, ws, x, n) }

func dot4x1(out *[4]float32, w []float32, ws int, x []float32, n int) { dot4x1Go(out, w, ws, x, n) }

func dot4x3(out *[12]float32, w []float32, ws int, x []float32, xs, n int) {
	dot4x3Go(out, w, ws, x, xs, n)
}

func dotQ4_K(dm, sc, mn, qs []byte, xd, g []float32, xq []int16) float32 {
	return dotQ4_KGo(dm, sc, mn, qs, xd, g, xq)
}

func dotQ4_KRows(out []float32, dm, sc, mn, qs []byte, xd, g []float32, xq []int16, rows int) {
	dotQ4_KRowsLoop(out, dm, sc, mn, qs, xd, g, xq, rows)
}

func scores(dst, q, k []float32, stride int)    { scoresLoop(dst, q, k, stride) }
func weightedSum(o, a, v []float32, stride int) { weightedSumLoop(o, a, v, stride) }

func dotQ8_0x2x4(out *[8]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, xs, n int) {
	dotQ8_0x2x4Go(out, wd, sd, wq, sq, xd, xq, xs, n)
}

func quantizeQ16(q []int16, d, g, x []float32) { quantizeQ16Go(q, d, g, x) }

const canAVX512 = false

func useAVX512(bool) {}

func dotQ4_Kx2x4(out *[8]float32, dm []byte, sdm int, sc, mn []byte, ssc int, qs []byte, sqs int, xd, g []float32, xq []int16, xs, n int) {
	dotQ4_Kx2x4Go(out, dm, sdm, sc, mn, ssc, qs, sqs, xd, g, xq, xs, n)
}

func dotQ8_0x4N(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, groups int) {
	dotQ8_0x4NLoop(out, wd, sd, wq, sq, xd, xq, groups)
}

func dotQ8_0Rows(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq, _ []int16, rows int) {
	dotQ8_0RowsLoop(out, wd, sd, wq, sq, xd, xq, rows)
}

func dotQ8_0x2x8(out *[16]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int16, xs, n int) {
	dotQ8_0x2x8Loop(out, wd, sd, wq, sq, xd, xq, xs, n)
}

func dotQ8_0x2x8Dup(out *[16]float32, wd []byte, sd int, wq []byte, sq int, xd []float32, x2 []int16, xs, n int) {
	dotQ8_0x2xNGo(out, wd, sd, wq, sq, xd, x2, xs, n, 8)
}

func tilesAnyTokens() bool { return false }

func scoresHeads(dst []float32, n int, q, k []float32, stride, rows, heads, hd, group, phase int) {
	scoresHeadsLoop(dst, n, q, k, stride, rows, heads, hd, group, phase)
}

func axpyHeads(o, a []float32, n int, v []float32, stride, rows, heads, hd, group, phase int) {
	axpyHeadsLoop(o, a, n, v, stride, rows, heads, hd, group, phase)
}

func divMaxN(x []float32, s float32) (n int, m float32, nan bool) { return 0, 0, false }
func scaleN(x []float32, c float32) int                           { return 0 }
func sumSquares8N(a *[8]float32, x []float32) int                 { return 0 }
func rmsScaleN(o, w, x []float32, s float32) int                  { return 0 }

func halfRows(dst []float32, src []uint16, stride, rows, n int) {
	halfRowsGo(dst, src, stride, rows, n)
}

func dotQ4_Kx2xNRows(dst []float32, stride int, dm []byte, sdm int, sc, mn []byte, ssc int, qs []byte, sqs int, xd, g []float32, xq []int16, xs, n, nt, r0, r1 int) {
	dotQ4_Kx2xNRowsLoop(dst, stride, dm, sdm, sc, mn, ssc, qs, sqs, xd, g, xq, xs, n, nt, r0, r1)
}
