package tensor

import "math"

// F16ToF32 converts an IEEE 754 binary16 value to float32 exactly.
//
// It is written without calls so that it inlines into the f16 and
// block-format kernels: the exponent is rebiased in place, and the two rare
// cases adjust it further (Inf/NaN) or renormalise through one exact float
// subtraction (zero and subnormals).
func F16ToF32(h uint16) float32 {
	const expMask = 0x7c00 << 13 // the f16 exponent, in float32 position
	u := uint32(h&0x7fff) << 13
	e := u & expMask
	u += (127 - 15) << 23
	switch e {
	case expMask: // Inf or NaN: exponent 31 becomes 255
		u += (128 - 16) << 23
	case 0: // zero or subnormal: value = (1 + mant/1024)·2^-14 − 2^-14
		u = math.Float32bits(math.Float32frombits(u+1<<23) - 0x1p-14)
	}
	return math.Float32frombits(u | uint32(h&0x8000)<<16)
}

// F32ToF16 converts float32 to binary16 with round-to-nearest-even,
// saturating to Inf on overflow.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		rem := mant & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, which is the correct rounding
	}
	return sign | uint16(r)
}

// F32ToBF16 converts float32 to bfloat16 with round-to-nearest-even.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
