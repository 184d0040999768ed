package hf

import "github.com/moderuntime/mode/runtime/tensor"

// gpt-oss stores its experts fused: gate and up interleaved (gate in the
// even columns or rows, up in the odd ones) and the dequantised layouts
// input-major. Reading the whole file (Source.derive) and rearranging
// fetched byte ranges (Fused.Unfuse) take the canonical tensors out with
// these three, so the two paths cannot drift apart. Each takes every
// step-th column or row from first: step 2 picks gate (first 0) or up
// (first 1), step 1 takes all.

// transposeColumns returns columns first, first+step, … of src, a
// row-major [rows, cols] matrix of es-byte elements, as the rows of an
// [cols/step, rows] matrix: an input-major [in, out] slice becomes the
// output-major [out, in] mode stores.
func transposeColumns(src []byte, es, rows, cols, first, step int) []byte {
	n := cols / step
	dst := make([]byte, n*rows*es)
	for o := range n {
		c := first + o*step
		for k := range rows {
			copy(dst[(o*rows+k)*es:(o*rows+k+1)*es], src[(k*cols+c)*es:(k*cols+c+1)*es])
		}
	}
	return dst
}

// pickColumns returns columns first, first+step, … of src, a row-major
// [rows, cols] matrix of es-byte elements, as a [rows, cols/step] one:
// gate_up_proj_bias [experts, 2·width] into a layer's gate or up biases.
func pickColumns(src []byte, es, rows, cols, first, step int) []byte {
	dst := make([]byte, 0, rows*(cols/step)*es)
	for r := range rows {
		for c := first; c < cols; c += step {
			dst = append(dst, src[(r*cols+c)*es:(r*cols+c+1)*es]...)
		}
	}
	return dst
}

// pickMXFP4Rows returns rows first, first+step, … of an MXFP4 matrix of
// rows output features by cols inputs, stored as scales [rows, cols/32]
// and blocks [rows, cols/32, 16], as the tensor name of rows/step rows.
// tensor.MXFP4FromBlocks checks the scales.
func pickMXFP4Rows(name string, scales, blocks []byte, rows, cols, first, step int) (*tensor.Tensor, error) {
	g := cols / 32
	n := rows / step
	sc, bl := make([]byte, 0, n*g), make([]byte, 0, n*g*16)
	for r := first; r < rows; r += step {
		sc = append(sc, scales[r*g:(r+1)*g]...)
		bl = append(bl, blocks[r*g*16:(r+1)*g*16]...)
	}
	return tensor.MXFP4FromBlocks(name, n, cols, sc, bl)
}
