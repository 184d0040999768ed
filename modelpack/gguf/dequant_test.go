package gguf

import (
	"encoding/binary"
	"math"
	"testing"
)

// f16 bit patterns used below.
const (
	h0125 = 0x3000 // 0.125
	h025  = 0x3400 // 0.25
	h05   = 0x3800 // 0.5
	h1    = 0x3C00 // 1.0
	hm1   = 0xBC00 // -1.0
)

func putHalf(b []byte, h uint16) { binary.LittleEndian.PutUint16(b, h) }

// point is an element index and the value worked out by hand from the
// block layout in ggml-common.h and the formulas in ggml-quants.c.
type point struct {
	i    int
	want float32
}

func checkPoints(t *testing.T, typ GGMLType, block []byte, points []point) {
	t.Helper()
	if len(block) != typ.BlockBytes() {
		t.Fatalf("%s: test block is %d bytes, want %d", typ, len(block), typ.BlockBytes())
	}
	got, err := DequantizeF32(RawTensor{Name: typ.String(), Type: typ, Dims: []int{typ.BlockElems()}, Data: block})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range points {
		if got[p.i] != p.want {
			t.Errorf("%s: element %d = %v, want %v", typ, p.i, got[p.i], p.want)
		}
	}
}

func TestDequantQ4_1(t *testing.T) {
	// d = 0.5, m = -1; byte j = j | (15-j)<<4: element j has q = j,
	// element 16+j has q = 15-j; value = q*0.5 - 1.
	b := make([]byte, 20)
	putHalf(b, h05)
	putHalf(b[2:], hm1)
	for j := range 16 {
		b[4+j] = uint8(j) | uint8(15-j)<<4
	}
	checkPoints(t, TypeQ4_1, b, []point{{0, -1}, {3, 0.5}, {15, 6.5}, {16, 6.5}, {31, -1}})
}

func TestDequantQ5_0(t *testing.T) {
	// d = 0.25; qh bits 0 and 31 set (fifth bit of elements 0 and 31);
	// every byte 0x21: elements 0-15 have low bits 1, 16-31 have 2.
	// value = (q-16)*0.25.
	b := make([]byte, 22)
	putHalf(b, h025)
	binary.LittleEndian.PutUint32(b[2:], 1|1<<31)
	for j := range 16 {
		b[6+j] = 0x21
	}
	checkPoints(t, TypeQ5_0, b, []point{
		{0, 0.25},  // 1+16 = 17
		{1, -3.75}, // 1
		{16, -3.5}, // 2
		{31, 0.5},  // 2+16 = 18
	})
}

func TestDequantQ5_1(t *testing.T) {
	// d = 0.5, m = 1; qh bits 1 and 16; bytes 0x21; value = q*0.5 + 1.
	b := make([]byte, 24)
	putHalf(b, h05)
	putHalf(b[2:], h1)
	binary.LittleEndian.PutUint32(b[4:], 1<<1|1<<16)
	for j := range 16 {
		b[8+j] = 0x21
	}
	checkPoints(t, TypeQ5_1, b, []point{
		{0, 1.5}, // q 1
		{1, 9.5}, // q 1+16
		{16, 10}, // q 2+16
		{17, 2},  // q 2
		{31, 2},  // q 2
	})
}

// k4Scales packs sub-block scales {1,2,3,4,17,33,50,63} and mins
// {0,1,2,3,20,40,5,63} as get_scale_min_k4 reads them: scales 0-3 and
// mins 0-3 in the low six bits of bytes 0-3 and 4-7; for j = 4..7 the low
// nibbles in byte j+4 (scale low, min high) and the top two bits in the
// spare bits 6-7 of bytes j-4 (scale) and j (min). Worked out by hand:
//
//	byte 0: 1 | (17>>4)<<6 = 65     byte 4: 0 | (20>>4)<<6 = 64
//	byte 1: 2 | (33>>4)<<6 = 130    byte 5: 1 | (40>>4)<<6 = 129
//	byte 2: 3 | (50>>4)<<6 = 195    byte 6: 2 | (5>>4)<<6  = 2
//	byte 3: 4 | (63>>4)<<6 = 196    byte 7: 3 | (63>>4)<<6 = 195
//	byte 8: 17&15 | (20&15)<<4 = 0x41   byte 10: 50&15 | (5&15)<<4 = 0x52
//	byte 9: 33&15 | (40&15)<<4 = 0x81   byte 11: 63&15 | (63&15)<<4 = 0xFF
var k4Scales = []byte{65, 130, 195, 196, 64, 129, 2, 195, 0x41, 0x81, 0x52, 0xFF}

func TestScaleMinK4(t *testing.T) {
	wantSc := []uint8{1, 2, 3, 4, 17, 33, 50, 63}
	wantM := []uint8{0, 1, 2, 3, 20, 40, 5, 63}
	for j := range 8 {
		sc, m := scaleMinK4(j, k4Scales)
		if sc != wantSc[j] || m != wantM[j] {
			t.Errorf("sub-block %d: scale %d min %d, want %d %d", j, sc, m, wantSc[j], wantM[j])
		}
	}
}

func TestDequantQ4_K(t *testing.T) {
	// d = 1, dmin = 0.5. qs[32c+l] = (l%16) | (15-l%16)<<4, so element
	// 64c+l has q = l%16 (sub-block 2c) and element 64c+32+l has
	// q = 15-l%16 (sub-block 2c+1). value = d*sc*q - dmin*m.
	b := make([]byte, 144)
	putHalf(b, h1)
	putHalf(b[2:], h05)
	copy(b[4:], k4Scales)
	for i := range 128 {
		l := i % 32
		b[16+i] = uint8(l%16) | uint8(15-l%16)<<4
	}
	checkPoints(t, TypeQ4_K, b, []point{
		{0, 0},            // sub 0 (1, 0), q 0
		{5, 5},            // sub 0, q 5: 1*5 - 0
		{32, 29.5},        // sub 1 (2, 1), q 15: 30 - 0.5
		{64 + 3, 8},       // sub 2 (3, 2), q 3: 9 - 1
		{128 + 7, 109},    // sub 4 (17, 20), q 7: 119 - 10
		{160 + 1, 442},    // sub 5 (33, 40), q 14: 462 - 20
		{192 + 10, 497.5}, // sub 6 (50, 5), q 10: 500 - 2.5
		{255, -31.5},      // sub 7 (63, 63), q 0: 0 - 31.5
	})
}

func TestDequantQ5_K(t *testing.T) {
	// As Q4_K, plus qh: qh[0] bit 0 (element 0), qh[1] bit 1 (element
	// 32+1), qh[2] bit 7 (element 192+32+2) add 16 to q.
	b := make([]byte, 176)
	putHalf(b, h1)
	putHalf(b[2:], h05)
	copy(b[4:], k4Scales)
	b[16+0], b[16+1], b[16+2] = 1<<0, 1<<1, 1<<7
	for i := range 128 {
		l := i % 32
		b[48+i] = uint8(l%16) | uint8(15-l%16)<<4
	}
	checkPoints(t, TypeQ5_K, b, []point{
		{0, 16},       // sub 0 (1, 0), q 0+16
		{5, 5},        // q 5, no high bit
		{33, 59.5},    // sub 1 (2, 1), q 14+16: 60 - 0.5
		{34, 25.5},    // sub 1, q 13: 26 - 0.5
		{226, 1795.5}, // sub 7 (63, 63), q 13+16: 1827 - 31.5
		{255, -31.5},  // sub 7, q 0
	})
}

func TestDequantQ6_K(t *testing.T) {
	// d = 0.5; int8 scales 1,-2,3,-4,...,-16 (one per 16 elements in the
	// order the halves read them). All quants 0 except: ql[5] = 0x3A and
	// qh[5] = 0b11_10_01_00; ql[64+20] = 0x0F and qh[32+20] = 0b11.
	// value = d*scale*(q-32).
	b := make([]byte, 210)
	for i := range 16 {
		s := int8(i + 1)
		if i%2 == 1 {
			s = -s
		}
		b[192+i] = byte(s)
	}
	putHalf(b[208:], h05)
	b[5], b[128+5] = 0x3A, 0xE4
	b[64+20], b[128+32+20] = 0x0F, 0x03
	checkPoints(t, TypeQ6_K, b, []point{
		{0, -16},    // scale 1, q 0
		{17, 32},    // scale -2 (l/16 = 1), q 0
		{40, -48},   // element 32+8: scale index 0+2 → 3
		{5, -11},    // low nibble 10, top bits 0: q 10 → 0.5*1*-22
		{37, -24},   // ql[37] 0, top bits 1: q 16 → 0.5*3*-16
		{69, 7.5},   // high nibble 3, top bits 2: q 35 → 0.5*5*3
		{101, 56},   // ql[37]>>4 0, top bits 3: q 48 → 0.5*7*16
		{148, -155}, // second half, l 20: q 15|3<<4 = 63 → scale index 8+1 = -10 → 0.5*-10*31
		{255, 256},  // scale index 8+1+6 → -16, q 0 → 0.5*-16*-32
	})
}

func TestDequantQ8_K(t *testing.T) {
	// f32 d = 0.25, qs[j] = j-128, bsums ignored.
	b := make([]byte, 292)
	binary.LittleEndian.PutUint32(b, math.Float32bits(0.25))
	for j := range 256 {
		b[4+j] = byte(int8(j - 128))
	}
	checkPoints(t, TypeQ8_K, b, []point{{0, -32}, {128, 0}, {255, 31.75}})
}

func TestDequantQ2_K(t *testing.T) {
	// Scale byte i = i | (15-i)<<4 (scale i, min 15-i); d = 1, dmin = 0.5;
	// every quant byte 0b11_10_01_00, so the 2-bit quant read at shift 2g
	// is g. Element e: half h = e/128, group g = e%128/32, k = e%32;
	// scale index 8h + 2g + k/16. value = sc*q - 0.5*min.
	b := make([]byte, 84)
	for i := range 16 {
		b[i] = uint8(i) | uint8(15-i)<<4
	}
	for i := range 64 {
		b[16+i] = 0xE4
	}
	putHalf(b[80:], h1)
	putHalf(b[82:], h05)
	checkPoints(t, TypeQ2_K, b, []point{
		{0, -7.5},  // index 0, q 0: -0.5*15
		{16, -7},   // index 1, q 0: -0.5*14
		{40, -4.5}, // g 1, k 8: index 2, q 1: 2 - 6.5
		{127, 17},  // g 3, k 31: index 7, q 3: 21 - 4
		{244, 45},  // half 1, g 3, k 20: index 15, q 3: 45 - 0
	})
}

func TestDequantQ3_K(t *testing.T) {
	// Sixteen 6-bit scales s_j = 33..40 then 31..24 (value s-32 = 1..8 then
	// -1..-8). Low nibbles: byte j<8 holds s_j low and s_{j+8} low <<4:
	// 0xF1 0xE2 0xD3 0xC4 0xB5 0xA6 0x97 0x88. Top bits: byte 8+k holds
	// s_k, s_{k+4}, s_{k+8}, s_{k+12} >> 4 at bits 0, 2, 4, 6: 2,2,1,1 =
	// 0x5A. d = 0.5. Quant bytes 0xE4 (low bits g at shift 2g); hmask
	// zero (q-4) except hmask[3] bit 0 and hmask[20] bit 7.
	b := make([]byte, 110)
	b[3], b[20] = 1<<0, 1<<7
	for i := range 64 {
		b[32+i] = 0xE4
	}
	copy(b[96:], []byte{0xF1, 0xE2, 0xD3, 0xC4, 0xB5, 0xA6, 0x97, 0x88, 0x5A, 0x5A, 0x5A, 0x5A})
	putHalf(b[108:], h05)
	checkPoints(t, TypeQ3_K, b, []point{
		{0, -2},    // scale 1, q 0-4
		{3, 0},     // high bit set: q 0
		{40, -4.5}, // g 1, k 8: scale 3, q 1-4
		{127, -4},  // g 3, k 31: scale 8, q 3-4
		{244, -12}, // half 1, g 3, k 20: scale -8, high bit (1<<7) set: q 3
		{245, 4},   // k 21: scale -8, q 3-4
	})
}

func TestDequantPlain(t *testing.T) {
	b := make([]byte, 8)
	putHalf(b, h0125)
	putHalf(b[2:], hm1)
	binary.LittleEndian.PutUint16(b[4:], 0x3FC0) // bf16 1.5
	binary.LittleEndian.PutUint16(b[6:], 0xC000) // bf16 -2
	got, err := DequantizeF32(RawTensor{Type: TypeF16, Dims: []int{2}, Data: b[:4]})
	if err != nil || got[0] != 0.125 || got[1] != -1 {
		t.Errorf("f16: %v %v", got, err)
	}
	got, err = DequantizeF32(RawTensor{Type: TypeBF16, Dims: []int{2}, Data: b[4:]})
	if err != nil || got[0] != 1.5 || got[1] != -2 {
		t.Errorf("bf16: %v %v", got, err)
	}
	// Q8_0: d = -1, quants -128 and 127.
	q := make([]byte, 34)
	putHalf(q, hm1)
	q[2], q[3] = 0x80, 0x7F
	checkPoints(t, TypeQ8_0, q, []point{{0, 128}, {1, -127}, {2, 0}})
	// Q4_0: d = 0.5, byte 0 = 0xF0: element 0 q 0 → -4, element 16 q 15 → 3.5.
	q = make([]byte, 18)
	putHalf(q, h05)
	q[2] = 0xF0
	checkPoints(t, TypeQ4_0, q, []point{{0, -4}, {16, 3.5}, {1, -4}})
}
