package gguf

import (
	"fmt"
	"math"

	"github.com/moderuntime/mode/runtime/model"
)

// ropeFreqsTensor holds llama.cpp's per-frequency RoPE divisors; the
// converter writes it for Llama 3.1-style ("llama3") rope scaling.
const ropeFreqsTensor = "rope_freqs.weight"

// rope reads rope.freq_base and the scaling rule. Anything the engine
// would apply differently from llama.cpp is rejected rather than dropped.
func rope(f *File, m meta, c *model.Config) error {
	theta, ok, err := m.float(m.key("rope.freq_base"))
	if err != nil {
		return err
	}
	if !ok {
		theta = 10000 // llama.cpp's default
	}
	c.RopeTheta = theta
	typeKey, factorKey := m.key("rope.scaling.type"), m.key("rope.scaling.factor")
	typ, _, err := m.str(typeKey)
	if err != nil {
		return err
	}
	factor, hasFactor, err := m.float(factorKey)
	if err != nil {
		return err
	}
	if !hasFactor { // the older spelling
		factorKey = m.key("rope.scale_linear")
		if factor, hasFactor, err = m.float(factorKey); err != nil {
			return err
		}
	}
	orig, _, err := m.int(m.key("rope.scaling.original_context_length"))
	if err != nil {
		return err
	}
	// llama.cpp scales positions by 1/factor whatever the type says, so a
	// factor with no type (or "none") is linear scaling.
	if (typ == "" || typ == "none") && hasFactor && factor != 0 && factor != 1 {
		typ = "linear"
	}
	_, hasFreqs := f.Tensor(ropeFreqsTensor)
	switch typ {
	case "", "none":
		if hasFreqs {
			c.RopeScale, err = llama3Scaling(f, c, orig)
		}
		return err
	case "linear", "yarn":
	default:
		return keyError(typeKey, "%q is not supported (linear, yarn, or llama3 via %s)", typ, ropeFreqsTensor)
	}
	if hasFreqs {
		return fmt.Errorf("tensor %s together with %s %q is not supported", ropeFreqsTensor, typeKey, typ)
	}
	if !hasFactor || factor < 1 {
		return keyError(factorKey, "must be at least 1 for %s scaling, got %v", typ, factor)
	}
	s := &model.RopeScaling{Type: typ, Factor: factor}
	if typ == "yarn" {
		if orig == 0 {
			orig = c.MaxSeq // llama.cpp's n_ctx_orig_yarn defaults to the training context
		}
		s.OrigMaxPosition, s.BetaFast, s.BetaSlow = orig, 32, 1
		for _, b := range []struct {
			key string
			dst *float64
		}{{"rope.scaling.yarn_beta_fast", &s.BetaFast}, {"rope.scaling.yarn_beta_slow", &s.BetaSlow}} {
			if v, ok, err := m.float(m.key(b.key)); err != nil {
				return err
			} else if ok {
				*b.dst = v
			}
		}
		if m.arch == "deepseek2" {
			if err := deepSeekYarn(m, s); err != nil {
				return err
			}
		}
		// The engine scales cos/sin by 0.1*ln(factor)+1 as llama.cpp does
		// by default; these keys would change that.
		for _, k := range []struct {
			key string
			def float64
		}{{"rope.scaling.attn_factor", 1}, {"rope.scaling.yarn_log_multiplier", 0}, {"rope.scaling.yarn_attn_factor", 1}, {"rope.scaling.yarn_ext_factor", 1}} {
			if v, ok, err := m.float(m.key(k.key)); err != nil {
				return err
			} else if ok && v != k.def && !(m.arch == "deepseek2" && k.key == "rope.scaling.yarn_log_multiplier") {
				return keyError(m.key(k.key), "%v is not supported (only the default %v)", v, k.def)
			}
		}
	}
	c.RopeScale = s
	return nil
}

// llama3Scaling recognises the rope_freqs tensor that llama.cpp's
// converter computes for "llama3" rope scaling. The parameters are not in
// the metadata, so it tries the values every Llama 3.1/3.2 release uses
// (low_freq_factor 1, high_freq_factor 4, original context 8192 unless the
// file says otherwise, factor = the largest divisor) and accepts them only
// if they reproduce every divisor; otherwise the file's position encoding
// cannot be expressed and is rejected.
func llama3Scaling(f *File, c *model.Config, orig int) (*model.RopeScaling, error) {
	raw, err := f.ReadRaw(ropeFreqsTensor)
	if err != nil {
		return nil, err
	}
	if len(raw.Dims) != 1 || raw.Dims[0] != c.HeadDim/2 {
		return nil, fmt.Errorf("tensor %s: dimensions %v, want [%d]", ropeFreqsTensor, raw.Dims, c.HeadDim/2)
	}
	got, err := DequantizeF32(raw)
	if err != nil {
		return nil, err
	}
	factor := 1.0
	for _, x := range got {
		factor = max(factor, float64(x))
	}
	if factor == 1 {
		return nil, nil // all ones: no scaling
	}
	if orig == 0 {
		orig = 8192
	}
	s := &model.RopeScaling{Type: "llama3", Factor: factor, LowFreqFactor: 1, HighFreqFactor: 4, OrigMaxPosition: orig}
	base := model.Config{HeadDim: c.HeadDim, RopeTheta: c.RopeTheta}
	plain, _ := base.RopeFreqs()
	base.RopeScale = s
	scaled, _ := base.RopeFreqs()
	for i, x := range got {
		want := float64(plain[i]) / float64(scaled[i]) // the divisor the engine will apply
		if math.Abs(float64(x)-want) > 1e-4*want {
			return nil, fmt.Errorf("tensor %s: divisor %d is %v, but llama3 scaling with factor %v, low_freq_factor 1, high_freq_factor 4 and original context %d gives %v; other per-frequency factors are not supported",
				ropeFreqsTensor, i, x, factor, orig, want)
		}
	}
	return s, nil
}
