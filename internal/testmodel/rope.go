package testmodel

import (
	"math"

	"github.com/moderuntime/mode/runtime/model"
)

// ropeFreqs returns the inverse frequencies and the cos/sin factor of a
// forward call ending at seqLen, in float64, written from transformers'
// modeling_rope_utils.py (_compute_default/linear/llama3/yarn/dynamic_ntk
// _parameters) independently of model.Config.RopeFreqs.
func ropeFreqs(c *model.Config, seqLen int) ([]float64, float64) {
	dim := c.HeadDim
	if c.MLA != nil {
		dim = c.MLA.RopeDim // DeepseekV2RotaryEmbedding(qk_rope_head_dim)
	}
	d := float64(dim)
	half := dim / 2
	base := c.RopeTheta
	s := c.RopeScale
	if s != nil && s.Type == "dynamic" {
		// _compute_dynamic_ntk_parameters: seq_len below the original
		// context leaves the base as it is
		orig := float64(s.OrigMaxPosition)
		seq := math.Max(float64(seqLen), orig)
		base *= math.Pow(s.Factor*seq/orig-(s.Factor-1), d/(d-2))
	}
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(base, float64(2*i)/d)
	}
	if s == nil {
		return inv, 1
	}
	switch s.Type {
	case "linear":
		for i := range inv {
			inv[i] /= s.Factor
		}
	case "llama3":
		orig := float64(s.OrigMaxPosition)
		lowWave, highWave := orig/s.LowFreqFactor, orig/s.HighFreqFactor
		for i, f := range inv {
			wave := 2 * math.Pi / f
			switch {
			case wave > lowWave:
				inv[i] = f / s.Factor
			case wave >= highWave:
				smooth := (orig/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				inv[i] = (1-smooth)*f/s.Factor + smooth*f
			}
		}
	case "yarn":
		// _compute_yarn_parameters: find_correction_range over
		// find_correction_dim, a linear ramp between interpolated and
		// extrapolated frequencies, and get_mscale for the attention factor.
		orig := float64(s.OrigMaxPosition)
		fast, slow := s.BetaFast, s.BetaSlow
		if fast == 0 {
			fast = 32
		}
		if slow == 0 {
			slow = 1
		}
		corrDim := func(rot float64) float64 { return d * math.Log(orig/(rot*2*math.Pi)) / (2 * math.Log(c.RopeTheta)) }
		low, high := corrDim(fast), corrDim(slow)
		if !s.NoTruncate {
			low, high = math.Floor(low), math.Ceil(high)
		}
		low, high = math.Max(low, 0), math.Min(high, d-1)
		if low == high {
			high += 0.001
		}
		for i, f := range inv {
			ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
			extra := 1 - ramp // inv_freq_extrapolation_factor
			inv[i] = f/s.Factor*(1-extra) + f*extra
		}
		mscale := func(scale, m float64) float64 {
			if scale <= 1 {
				return 1
			}
			return 0.1*m*math.Log(scale) + 1
		}
		switch {
		case s.AttnFactor > 0:
			return inv, s.AttnFactor
		case s.Mscale > 0 && s.MscaleAllDim > 0:
			return inv, mscale(s.Factor, s.Mscale) / mscale(s.Factor, s.MscaleAllDim)
		}
		return inv, mscale(s.Factor, 1)
	}
	return inv, 1
}
