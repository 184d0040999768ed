package vec

import "math"

// The kernels in this file are the 8-bit-activation counterparts of
// DotQ8_0x4 and DotQ4_0x4, llama.cpp's scheme (quantize_row_q8_0 for the
// activations, vec_dot_q8_0_q8_0 and vec_dot_q4_0_q8_0): activations in
// blocks of 32 int8 quants with an f32 scale max|x|/127, multiplied in
// integers with VPMADDUBSW (AVX2) or VPDPBUSD (AVX-512 VNNI).
//
// They sum as the assembly does, so that the two agree bit for bit: each
// block's 32 integer products are summed in eight lanes, lane k holding
// elements 4k..4k+3 (VPMADDUBSW+VPMADDWD's and VPDPBUSD's groups of four),
// a sum of magnitude at most 4·128·127 < 2^24 and so exact in float32 (for
// q4_0, (w−8)·x summed exactly in integers, however the assembly gets
// there); each lane's sum times the block's scale product wd·xd (rounded
// to float32) is added to that lane's float32 accumulator; and the eight
// accumulators are summed by hsum8.

// QuantizeQ8 quantises len(d) blocks of 32 values of x to int8: per
// block, d = max|x|/127 and q = x·(1/d) rounded to nearest even, clamped
// to ±127 (0 when d is 0).
//
// The assembly computes the same IEEE operations, so the two agree bit for
// bit on finite input.
func QuantizeQ8(q []int8, d, x []float32) {
	n := len(d)
	q, x = q[:BlockSize*n], x[:BlockSize*n]
	if n == 0 {
		return
	}
	quantizeQ8(q, d, x)
}

func quantizeQ8Go(q []int8, d, x []float32) {
	for b := range d {
		xb := (*[BlockSize]float32)(x[BlockSize*b:])
		qb := (*[BlockSize]int8)(q[BlockSize*b:])
		var amax float32
		for _, v := range xb {
			amax = max(amax, math.Float32frombits(math.Float32bits(v)&^(1<<31)))
		}
		db := amax / 127
		var id float32
		if db != 0 {
			id = 1 / db
		}
		for j, v := range xb {
			n := int32(math.RoundToEven(float64(v * id)))
			qb[j] = int8(min(max(n, -127), 127))
		}
		d[b] = db
	}
}

// DotQ8_0Q8x4N sets out[r] to Σ w·x for 4·groups q8_0 weight rows (row
// r's scales at wd[r·sd:], quants at wq[r·sq:]) and one row of 8-bit
// activations (xd, xq) over len(xd) blocks: a matrix-vector product in one
// call, four rows at a time sharing the activations' loads.
func DotQ8_0Q8x4N(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int8, groups int) {
	rowsX4(dotQ8_0Q8x4N, out, wd, sd, wq, sq, xd, xq, groups, BlockSize)
}

// DotQ4_0Q8x4N is DotQ8_0Q8x4N for q4_0 weight rows (16 bytes of nibbles
// per block, element j < 16 in the low nibble of byte j and j+16 in its
// high nibble, each stored +8).
func DotQ4_0Q8x4N(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int8, groups int) {
	rowsX4(dotQ4_0Q8x4N, out, wd, sd, wq, sq, xd, xq, groups, BlockSize/2)
}

// DotQ8_0Q8 is DotQ8_0Q8x4N for one row, with the same bits.
func DotQ8_0Q8(wd, wq []byte, xd []float32, xq []int8) float32 {
	n := len(xd)
	return dotQ8_0Q8Go(wd[:2*n], wq[:BlockSize*n], xd, xq[:BlockSize*n])
}

// DotQ4_0Q8 is DotQ4_0Q8x4N for one row, with the same bits.
func DotQ4_0Q8(wd, wq []byte, xd []float32, xq []int8) float32 {
	n := len(xd)
	return dotQ4_0Q8Go(wd[:2*n], wq[:BlockSize/2*n], xd, xq[:BlockSize*n])
}

func dotQ8_0Q8Go(wd, wq []byte, xd []float32, xq []int8) float32 {
	var acc [8]float32
	for b, dx := range xd {
		d := float32(halfAt(wd, b) * dx)
		w := (*[BlockSize]byte)(wq[BlockSize*b:])
		x := (*[BlockSize]int8)(xq[BlockSize*b:])
		for k := range acc {
			var s int32
			for j := 4 * k; j < 4*k+4; j++ {
				s += int32(int8(w[j])) * int32(x[j])
			}
			acc[k] += float32(d * float32(s))
		}
	}
	return hsum8(&acc)
}

func dotQ4_0Q8Go(wd, wq []byte, xd []float32, xq []int8) float32 {
	var acc [8]float32
	var w [BlockSize]int32
	for b, dx := range xd {
		d := float32(halfAt(wd, b) * dx)
		q := (*[BlockSize / 2]byte)(wq[BlockSize/2*b:])
		for j, v := range q {
			w[j], w[j+BlockSize/2] = int32(v&15)-8, int32(v>>4)-8
		}
		x := (*[BlockSize]int8)(xq[BlockSize*b:])
		for k := range acc {
			var s int32
			for j := 4 * k; j < 4*k+4; j++ {
				s += w[j] * int32(x[j])
			}
			acc[k] += float32(d * float32(s))
		}
	}
	return hsum8(&acc)
}

func dotQ8_0Q8x4NGo(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int8, groups int) {
	for r := range 4 * groups {
		out[r] = dotQ8_0Q8Go(wd[r*sd:], wq[r*sq:], xd, xq)
	}
}

func dotQ4_0Q8x4NGo(out []float32, wd []byte, sd int, wq []byte, sq int, xd []float32, xq []int8, groups int) {
	for r := range 4 * groups {
		out[r] = dotQ4_0Q8Go(wd[r*sd:], wq[r*sq:], xd, xq)
	}
}
