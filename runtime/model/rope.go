package model

import "math"

// RopeFreqs returns the inverse frequency of each rotated pair of a head
// (HeadDim/2 values) after rope_scaling, and the factor by which cos and sin
// are scaled (YaRN's attention factor; 1 otherwise).
//
// The base frequencies are computed in float32 as both llama2.c
// (1/powf(theta, 2i/d)) and HF (1/(theta ** (arange(0, d, 2)/d))) do; the
// scaling follows HF's _compute_*_rope_parameters.
func (c *Config) RopeFreqs() (inv []float32, attnFactor float32) {
	half := c.HeadDim / 2
	inv = make([]float32, half)
	for i := range inv {
		e := float32(2*i) / float32(c.HeadDim)
		inv[i] = 1 / float32(math.Pow(c.RopeTheta, float64(e)))
	}
	attnFactor = 1
	s := c.RopeScale
	if s == nil {
		return inv, attnFactor
	}
	switch s.Type {
	case "linear":
		for i := range inv {
			inv[i] /= float32(s.Factor)
		}
	case "llama3":
		orig := float64(s.OrigMaxPosition)
		lowWave := orig / s.LowFreqFactor
		highWave := orig / s.HighFreqFactor
		for i, f := range inv {
			wave := 2 * math.Pi / float64(f)
			switch {
			case wave > lowWave:
				inv[i] = f / float32(s.Factor)
			case wave < highWave:
				// high frequencies are kept
			default:
				smooth := (orig/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				inv[i] = float32((1-smooth)*float64(f)/s.Factor + smooth*float64(f))
			}
		}
	case "yarn":
		inv, attnFactor = yarn(c, s)
	}
	return inv, attnFactor
}

// yarn follows HF's _compute_yarn_parameters: a linear ramp between
// extrapolated (original) and interpolated (divided by factor) frequencies
// over the dimensions whose wavelength falls between beta_fast and beta_slow
// rotations in the original context, and cos/sin scaled by
// 0.1*ln(factor)+1.
func yarn(c *Config, s *RopeScaling) ([]float32, float32) {
	d := float64(c.HeadDim)
	base := c.RopeTheta
	orig := float64(s.OrigMaxPosition)
	if orig <= 0 {
		orig = float64(c.MaxSeq) / s.Factor
	}
	fast, slow := s.BetaFast, s.BetaSlow
	if fast == 0 {
		fast = 32
	}
	if slow == 0 {
		slow = 1
	}
	corr := func(rot float64) float64 {
		return d * math.Log(orig/(rot*2*math.Pi)) / (2 * math.Log(base))
	}
	low := math.Max(math.Floor(corr(fast)), 0)
	high := math.Min(math.Ceil(corr(slow)), d-1)
	if low == high {
		high += 0.001
	}
	half := c.HeadDim / 2
	inv := make([]float32, half)
	for i := range inv {
		pf := math.Pow(base, float64(2*i)/d)
		extra := 1 / pf
		inter := 1 / (s.Factor * pf)
		ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
		ef := 1 - ramp
		inv[i] = float32(inter*(1-ef) + extra*ef)
	}
	af := float32(1)
	if s.Factor > 1 {
		af = float32(0.1*math.Log(s.Factor) + 1)
	}
	return inv, af
}
