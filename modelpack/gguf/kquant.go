package gguf

import (
	"encoding/binary"
	"math"
)

// The k-quants pack 256 elements per super-block with per-sub-block scales
// that are themselves quantised against the super-block's f16 scales.

// Q2_K: scales[16] (low nibble: scale, high nibble: min, per 16 elements),
// qs[64] (2-bit quants), f16 d, f16 dmin. Each 128-element half reads 32
// bytes of qs four times, two bits at a time, 16 elements per scale.
func dequantQ2_K(dst []float32, b []byte) {
	scales, qs := b[0:16], b[16:80]
	d, dmin := half(b[80:]), half(b[82:])
	is, y := 0, 0
	for n := 0; n < qkK; n += 128 {
		q := qs[n/4 : n/4+32]
		for shift := 0; shift < 8; shift += 2 {
			for _, off := range []int{0, 16} {
				sc := scales[is]
				is++
				dl, ml := d*float32(sc&0xF), dmin*float32(sc>>4)
				for l := range 16 {
					dst[y] = dl*float32(q[off+l]>>shift&3) - ml
					y++
				}
			}
		}
	}
}

// Q3_K: hmask[32] (high bit of each quant), qs[64] (low two bits),
// scales[12] (sixteen 6-bit scales, offset by 32), f16 d. Value =
// d*(scale-32)*(q - 4 unless the high bit is set).
func dequantQ3_K(dst []float32, b []byte) {
	hmask, qs, packed := b[0:32], b[32:96], b[96:108]
	d := half(b[108:])
	var scales [16]int
	for j := range scales {
		var lo uint8
		if j < 8 {
			lo = packed[j] & 0xF
		} else {
			lo = packed[j-8] >> 4
		}
		hi := packed[8+j%4] >> (2 * (j / 4)) & 3
		scales[j] = int(lo|hi<<4) - 32
	}
	is, y := 0, 0
	m := uint8(1) // the hmask bit advances across both halves
	for n := 0; n < qkK; n += 128 {
		q := qs[n/4 : n/4+32]
		for shift := 0; shift < 8; shift += 2 {
			for _, off := range []int{0, 16} {
				dl := d * float32(scales[is])
				is++
				for l := range 16 {
					v := int(q[off+l] >> shift & 3)
					if hmask[off+l]&m == 0 {
						v -= 4
					}
					dst[y] = dl * float32(v)
					y++
				}
			}
			m <<= 1
		}
	}
}

// scaleMinK4 unpacks the j-th 6-bit scale and min of a Q4_K or Q5_K block
// (ggml's get_scale_min_k4): the first four pairs sit in the low six bits
// of bytes 0-3 and 4-7; the last four take their low nibbles from bytes
// 8-11 and their top two bits from the spare bits of bytes 0-7.
func scaleMinK4(j int, s []byte) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0xF | s[j-4]>>6<<4, s[j+4]>>4 | s[j]>>6<<4
}

// Q4_K: f16 d, f16 dmin, scales[12], qs[128]. Each 64 elements read 32
// bytes of qs: low nibbles with one scale/min pair, then high nibbles with
// the next. Value = d*sc*q - dmin*m.
func dequantQ4_K(dst []float32, b []byte) {
	d, dmin, scales, qs := half(b), half(b[2:]), b[4:16], b[16:144]
	for c := range 4 {
		q := qs[32*c : 32*c+32]
		sc1, m1 := scaleMinK4(2*c, scales)
		sc2, m2 := scaleMinK4(2*c+1, scales)
		d1, min1 := d*float32(sc1), dmin*float32(m1)
		d2, min2 := d*float32(sc2), dmin*float32(m2)
		for l := range 32 {
			dst[64*c+l] = d1*float32(q[l]&0xF) - min1
			dst[64*c+32+l] = d2*float32(q[l]>>4) - min2
		}
	}
}

// Q5_K: f16 d, f16 dmin, scales[12], qh[32], qs[128]. As Q4_K, with the
// fifth bit of element 64c+l in bit 2c of qh[l] and of element 64c+32+l in
// bit 2c+1.
func dequantQ5_K(dst []float32, b []byte) {
	d, dmin, scales, qh, qs := half(b), half(b[2:]), b[4:16], b[16:48], b[48:176]
	for c := range 4 {
		q := qs[32*c : 32*c+32]
		sc1, m1 := scaleMinK4(2*c, scales)
		sc2, m2 := scaleMinK4(2*c+1, scales)
		d1, min1 := d*float32(sc1), dmin*float32(m1)
		d2, min2 := d*float32(sc2), dmin*float32(m2)
		for l := range 32 {
			lo := q[l]&0xF | qh[l]>>(2*c)&1<<4
			hi := q[l]>>4 | qh[l]>>(2*c+1)&1<<4
			dst[64*c+l] = d1*float32(lo) - min1
			dst[64*c+32+l] = d2*float32(hi) - min2
		}
	}
}

// Q6_K: ql[128] (low nibbles), qh[64] (top two bits), int8 scales[16]
// (one per 16 elements), f16 d. In each 128-element half, element 32k+l
// (k = 0..3) takes its low nibble from ql[l] (k=0,2) or ql[l+32] (k=1,3),
// low or high nibble by k/2, and its top bits from bits 2k..2k+1 of qh[l].
// Value = d*scale*(q-32).
func dequantQ6_K(dst []float32, b []byte) {
	ql, qh, sc := b[0:128], b[128:192], b[192:208]
	d := half(b[208:])
	for h := range 2 {
		l4, h2, s := ql[64*h:64*h+64], qh[32*h:32*h+32], sc[8*h:8*h+8]
		for l := range 32 {
			is := l / 16
			q1 := int(l4[l]&0xF|(h2[l]>>0&3)<<4) - 32
			q2 := int(l4[l+32]&0xF|(h2[l]>>2&3)<<4) - 32
			q3 := int(l4[l]>>4|(h2[l]>>4&3)<<4) - 32
			q4 := int(l4[l+32]>>4|(h2[l]>>6&3)<<4) - 32
			y := dst[128*h:]
			y[l] = d * float32(int8(s[is])) * float32(q1)
			y[l+32] = d * float32(int8(s[is+2])) * float32(q2)
			y[l+64] = d * float32(int8(s[is+4])) * float32(q3)
			y[l+96] = d * float32(int8(s[is+6])) * float32(q4)
		}
	}
}

// Q8_K: f32 d, int8 qs[256], int16 bsums[16] (sums used only by dot
// products). Value = d*q.
func dequantQ8_K(dst []float32, b []byte) {
	d := math.Float32frombits(binary.LittleEndian.Uint32(b))
	for j := range qkK {
		dst[j] = d * float32(int8(b[4+j]))
	}
}
