package model

import "math"

// RopeFreqs returns the inverse frequency of each rotated pair of a head
// (HeadDim/2 values) after rope_scaling, and the factor by which cos and sin
// are scaled (YaRN's attention factor; 1 otherwise).
//
// The base frequencies are computed in float32 as both llama2.c
// (1/powf(theta, 2i/d)) and HF (1/(theta ** (arange(0, d, 2)/d))) do; the
// scaling follows HF's _compute_*_rope_parameters.
func (c *Config) RopeFreqs() (inv []float32, attnFactor float32) { return c.RopeFreqsAt(0) }

// DynamicRope reports whether the frequencies depend on the sequence
// length (dynamic NTK scaling), so RopeFreqsAt must be asked per forward.
func (c *Config) DynamicRope() bool { return c.RopeScale != nil && c.RopeScale.Type == "dynamic" }

// RopeFreqsAt is RopeFreqs for a forward pass whose last position is
// seqLen-1. Only dynamic NTK scaling depends on it: as transformers'
// _compute_dynamic_ntk_parameters, past original_max_position_embeddings
// (orig) the base becomes theta·(factor·seqLen/orig − (factor−1))^(d/(d−2));
// below it nothing changes.
func (c *Config) RopeFreqsAt(seqLen int) (inv []float32, attnFactor float32) {
	hd := c.RopeDim()
	half := hd / 2
	inv = make([]float32, half)
	theta := c.RopeTheta
	if s := c.RopeScale; s != nil && s.Type == "dynamic" && seqLen > s.OrigMaxPosition {
		d := float64(hd)
		theta *= math.Pow(s.Factor*float64(seqLen)/float64(s.OrigMaxPosition)-(s.Factor-1), d/(d-2))
	}
	for i := range inv {
		e := float32(2*i) / float32(hd)
		inv[i] = 1 / float32(math.Pow(theta, float64(e)))
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
// rotations in the original context (rounded outwards unless NoTruncate),
// and cos/sin scaled by yarnAttnFactor.
func yarn(c *Config, s *RopeScaling) ([]float32, float32) {
	d := float64(c.RopeDim())
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
	low, high := corr(fast), corr(slow)
	if !s.NoTruncate {
		low, high = math.Floor(low), math.Ceil(high)
	}
	low, high = math.Max(low, 0), math.Min(high, d-1)
	if low == high {
		high += 0.001
	}
	half := c.RopeDim() / 2
	inv := make([]float32, half)
	for i := range inv {
		pf := math.Pow(base, float64(2*i)/d)
		extra := 1 / pf
		inter := 1 / (s.Factor * pf)
		ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
		ef := 1 - ramp
		inv[i] = float32(inter*(1-ef) + extra*ef)
	}
	return inv, float32(yarnAttnFactor(s))
}

// yarnAttnFactor follows _compute_yarn_parameters' attention_factor.
func yarnAttnFactor(s *RopeScaling) float64 {
	if s.AttnFactor > 0 {
		return s.AttnFactor
	}
	if s.Mscale > 0 && s.MscaleAllDim > 0 {
		return yarnMscale(s.Factor, s.Mscale) / yarnMscale(s.Factor, s.MscaleAllDim)
	}
	return yarnMscale(s.Factor, 1)
}

// yarnMscale is get_mscale (yarn_get_mscale in DeepSeek's code):
// 0.1·m·ln(scale)+1, or 1 when scale <= 1.
func yarnMscale(scale, m float64) float64 {
	if scale <= 1 {
		return 1
	}
	return 0.1*m*math.Log(scale) + 1
}
