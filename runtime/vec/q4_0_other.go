//go:build !amd64 || purego

package vec

func q4_0Layout() bool { return false }

func prepQ4_0(xb []byte, c []int32, nb int, q []int16, b0 int) { prepQ4_0Go(xb, c, nb, q, b0) }

func dotQ4_0Rows(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xb []byte, c []int32, rows int) {
	panic("vec: no kernel reads PrepQ4_0's layout in this build")
}

func dotQ4_0RowsTokens(dst []float32, ds int, wd []byte, sd int, wq []byte, sq int, xd []float32, xb []byte, c []int32, n, nt, rows int) {
	panic("vec: no kernel reads PrepQ4_0's layout in this build")
}
