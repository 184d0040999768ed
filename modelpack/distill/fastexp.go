package distill

import "math"

// expf is e^x in float32 by Cephes' method: x = k·ln2 + r with |r| ≤ ln2/2,
// a degree-6 polynomial for e^r and 2^k from the exponent bits. Its error is
// a few units in the last place of float32, far below what training and
// calibration notice, at a fraction of math.Exp's cost. Results below
// e^-87.3 are flushed to 0.
func expf(x float32) float32 {
	if x < -87.33 {
		return 0
	}
	if x > 88.3 {
		x = 88.3
	}
	t := x*1.44269504088896341 + 0.5
	k := int32(t)
	if float32(k) > t {
		k--
	}
	fk := float32(k)
	x -= fk * 0.693359375
	x -= fk * -2.12194440e-4
	z := x * x
	y := ((((1.9875691500e-4*x+1.3981999507e-3)*x+8.3334519073e-3)*x+4.1665795894e-2)*x+1.6666665459e-1)*x + 5.0000001201e-1
	y = y*z + x + 1
	return y * math.Float32frombits(uint32(k+127)<<23)
}
