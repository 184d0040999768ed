//go:build !amd64 || purego

package vec

func dotQ8_0Q8x4N(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int8, groups int) {
	dotQ8_0Q8x4NGo(out, wd, sd, wq, sq, xd, xq, groups)
}

func dotQ4_0Q8x4N(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int8, groups int) {
	dotQ4_0Q8x4NGo(out, wd, sd, wq, sq, xd, xq, groups)
}

func quantizeQ8(q []int8, d, x []float32) { quantizeQ8Go(q, d, x) }
