package gguf

import (
	"fmt"
	"math"

	"github.com/moderuntime/mode/runtime/tensor"
)

// ggml's MXFP4 (type 39, block_mxfp4 in ggml-common.h): 32 elements in 17
// bytes, an e8m0 scale byte e then 16 bytes qs in which byte j holds
// element j in its low nibble and element j+16 in its high nibble (the
// order of q4_0). Element values are e2m1(code) × 2^(e−127): ggml keeps
// the codes doubled (kvalues_mxfp4 = 0, 1, 2, 3, 4, 6, 8, 12, …) and
// halves the scale (GGML_E8M0_TO_FP32_HALF), which is the same number.
//
// gpt-oss's checkpoints, and our pack format (tensor.MXFP4), keep the
// scales apart and pack element 2j in the low nibble of byte j and 2j+1
// in its high nibble; llama.cpp's convert_hf_to_gguf.py GptOssModel
// reorders the nibbles when it writes a GGUF, and MXFP4Blocks and
// mxfp4Encode undo and redo exactly that, so importing and exporting
// copy every code and scale unchanged.

const mxfp4Block = 17 // bytes per 32 elements

// e2m1Values is the value of each 4-bit e2m1 code (sign bit 8).
var e2m1Values = [16]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6, 0, -0.5, -1, -1.5, -2, -3, -4, -6}

// MXFP4Blocks splits an MXFP4 tensor into its scales (one e8m0 byte per
// block) and its codes in the checkpoints' layout (16 bytes per block,
// element 2j in the low nibble of byte j, 2j+1 in the high nibble), which
// tensor.MXFP4FromBlocks takes.
func MXFP4Blocks(raw RawTensor) (scales, blocks []byte, err error) {
	n, err := blocksOf(raw, TypeMXFP4)
	if err != nil {
		return nil, nil, err
	}
	nb := n / 32
	scales, blocks = make([]byte, nb), make([]byte, 16*nb)
	for b := range nb {
		src := raw.Data[mxfp4Block*b : mxfp4Block*(b+1)]
		scales[b] = src[0]
		dst := blocks[16*b : 16*(b+1)]
		for j := range 16 {
			lo, hi := mxfp4Code(src, 2*j), mxfp4Code(src, 2*j+1)
			dst[j] = lo | hi<<4
		}
	}
	return scales, blocks, nil
}

// mxfp4Code is element i (0..31) of a ggml block.
func mxfp4Code(blk []byte, i int) byte {
	if i < 16 {
		return blk[1+i] & 15
	}
	return blk[1+i-16] >> 4
}

// mxfp4Encode lays out scales and checkpoint-order codes as ggml blocks.
func mxfp4Encode(scales, blocks []byte) []byte {
	out := make([]byte, mxfp4Block*len(scales))
	for b, s := range scales {
		dst := out[mxfp4Block*b : mxfp4Block*(b+1)]
		dst[0] = s
		src := blocks[16*b : 16*(b+1)]
		code := func(i int) byte { // element i of the checkpoint block
			if i%2 == 0 {
				return src[i/2] & 15
			}
			return src[i/2] >> 4
		}
		for j := range 16 {
			dst[1+j] = code(j) | code(j+16)<<4
		}
	}
	return out
}

// dequantMXFP4 decodes one ggml block; the e8m0 NaN scale (0xFF) gives NaN,
// which the importer's finiteness check then rejects.
func dequantMXFP4(dst []float32, src []byte) {
	d := float32(math.NaN())
	if src[0] != 0xFF {
		d = tensor.E8M0(src[0])
	}
	for i := range 32 {
		dst[i] = e2m1Values[mxfp4Code(src, i)] * d
	}
}

// quantMXFP4 encodes values (a whole number of blocks of 32) as our pack's
// MXFP4 quantiser does (the OCP MX rule: shared exponent floor(log2
// amax) − 2, codes rounded to nearest), laid out as ggml blocks. Values
// that came from MXFP4 come back with the same codes' values.
func quantMXFP4(values []float32) ([]byte, error) {
	q, err := tensor.Quantize(tensor.FromF32("mxfp4", []int{1, len(values)}, values), tensor.MXFP4)
	if err != nil {
		return nil, err
	}
	nb := len(values) / 32
	qs := (nb + 3) &^ 3 // the scales array is padded to 4 bytes
	if len(q.Data) != qs+16*nb {
		return nil, fmt.Errorf("mxfp4: %d bytes for %d blocks", len(q.Data), nb)
	}
	return mxfp4Encode(q.Data[:nb], q.Data[qs:]), nil
}
