package hf

import (
	"encoding/json"
	"math"
	"slices"

	"github.com/moderuntime/mode/runtime/model"
)

// ropeFields is a rope_scaling (or rope_parameters) object by key, so that
// absent and null values can be told apart from zero.
type ropeFields struct {
	key    string // "rope_scaling" or "rope_parameters", for errors
	fields map[string]json.RawMessage
}

func (r ropeFields) has(name string) bool {
	raw, ok := r.fields[name]
	return ok && string(raw) != "null"
}

func (r ropeFields) float(name string) (float64, bool, error) {
	if !r.has(name) {
		return 0, false, nil
	}
	var v float64
	if err := json.Unmarshal(r.fields[name], &v); err != nil {
		return 0, false, keyError(r.key+"."+name, "%s is not a number", r.fields[name])
	}
	return v, true, nil
}

func (r ropeFields) need(name string) (float64, error) {
	v, ok, err := r.float(name)
	if err == nil && !ok {
		err = keyError(r.key+"."+name, "is missing")
	}
	return v, err
}

// rope reads rope_theta and the scaling rule: the transformers v5
// rope_parameters object when present, else rope_theta and rope_scaling.
func (h *hfConfig) rope(defTheta float64, maxPos int) (float64, *model.RopeScaling, error) {
	theta := defTheta
	if h.RopeTheta != nil {
		theta = *h.RopeTheta
	}
	raw, key := h.RopeScaling, "rope_scaling"
	if len(h.RopeParameters) > 0 && string(h.RopeParameters) != "null" {
		raw, key = h.RopeParameters, "rope_parameters"
	}
	var scale *model.RopeScaling
	if len(raw) > 0 && string(raw) != "null" {
		r := ropeFields{key: key}
		if err := json.Unmarshal(raw, &r.fields); err != nil {
			return 0, nil, keyError(key, "is not an object: %v", err)
		}
		if r.has("rope_theta") {
			t, _, err := r.float("rope_theta")
			if err != nil {
				return 0, nil, err
			}
			theta = t
		}
		var err error
		if scale, err = r.scaling(maxPos); err != nil {
			return 0, nil, err
		}
	}
	if !(theta > 0) || math.IsInf(theta, 0) {
		return 0, nil, keyError("rope_theta", "%v must be positive", theta)
	}
	return theta, scale, nil
}

// scaling translates the rope type's parameters, rejecting any parameter
// the engine would not apply, so that a model never runs with a silently
// different position encoding.
func (r ropeFields) scaling(maxPos int) (*model.RopeScaling, error) {
	var typ string
	for _, name := range []string{"rope_type", "type"} { // "type" is the older spelling
		if r.has(name) {
			if err := json.Unmarshal(r.fields[name], &typ); err != nil {
				return nil, keyError(r.key+"."+name, "%s is not a string", r.fields[name])
			}
			break
		}
	}
	known := []string{"rope_type", "type", "rope_theta", "partial_rotary_factor"}
	if v, ok, err := r.float("partial_rotary_factor"); err != nil {
		return nil, err
	} else if ok && v != 1 {
		return nil, keyError(r.key+".partial_rotary_factor", "%v is not supported (every head dimension is rotated)", v)
	}
	var s *model.RopeScaling
	var err error
	switch typ {
	case "", "default":
	case "linear":
		known = append(known, "factor")
		s = &model.RopeScaling{Type: "linear"}
		s.Factor, err = r.need("factor")
	case "llama3":
		known = append(known, "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
		s = &model.RopeScaling{Type: "llama3"}
		var orig float64
		for _, f := range []struct {
			name string
			dst  *float64
		}{{"factor", &s.Factor}, {"low_freq_factor", &s.LowFreqFactor}, {"high_freq_factor", &s.HighFreqFactor}, {"original_max_position_embeddings", &orig}} {
			if *f.dst, err = r.need(f.name); err != nil {
				return nil, err
			}
		}
		s.OrigMaxPosition = int(orig)
		if !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || s.OrigMaxPosition <= 0 {
			return nil, keyError(r.key, "llama3 needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0")
		}
	case "yarn":
		known = append(known, "factor", "beta_fast", "beta_slow", "original_max_position_embeddings", "attention_factor", "mscale", "mscale_all_dim", "truncate")
		s, err = r.yarn(maxPos)
	case "dynamic":
		known = append(known, "factor", "original_max_position_embeddings")
		s, err = r.dynamic(maxPos)
	default:
		return nil, keyError(r.key, "type %q is not supported (linear, llama3, yarn, dynamic)", typ)
	}
	if err != nil {
		return nil, err
	}
	for name := range r.fields {
		if !slices.Contains(known, name) {
			return nil, keyError(r.key+"."+name, "is not understood for rope type %q", typ)
		}
	}
	if s != nil && (!(s.Factor >= 1) || math.IsInf(s.Factor, 0)) {
		return nil, keyError(r.key+".factor", "%v must be at least 1", s.Factor)
	}
	return s, nil
}

// yarn reads YaRN parameters as transformers' _compute_yarn_parameters
// does: beta_fast 32 and beta_slow 1 by default (0 too),
// original_max_position_embeddings = max_position_embeddings when absent,
// and factor = max/original when absent. transformers 4.5x replaces the
// factor by max_position_embeddings/original_max_position_embeddings when
// the latter is given, older versions keep the factor: when the two differ
// the model's positions depend on the transformers version, so the config
// is refused rather than run one way.
func (r ropeFields) yarn(maxPos int) (*model.RopeScaling, error) {
	s := &model.RopeScaling{Type: "yarn", BetaFast: 32, BetaSlow: 1, OrigMaxPosition: maxPos}
	hasOrig := false
	if v, ok, err := r.float("original_max_position_embeddings"); err != nil {
		return nil, err
	} else if ok {
		if v < 1 || v != math.Trunc(v) || v > 1<<30 {
			return nil, keyError(r.key+".original_max_position_embeddings", "%v must be a positive integer", v)
		}
		s.OrigMaxPosition, hasOrig = int(v), true
	}
	ratio := float64(maxPos) / float64(s.OrigMaxPosition)
	factor, ok, err := r.float("factor")
	if err != nil {
		return nil, err
	}
	switch {
	case !ok:
		factor = ratio
	case hasOrig && math.Abs(factor-ratio) > 1e-9*factor:
		return nil, keyError(r.key+".factor", "%v disagrees with max_position_embeddings/original_max_position_embeddings = %d/%d = %v, which transformers 4.5x uses instead (older versions use the factor); set max_position_embeddings to factor × original_max_position_embeddings",
			factor, maxPos, s.OrigMaxPosition, ratio)
	}
	s.Factor = factor
	for _, f := range []struct {
		name string
		dst  *float64
	}{{"beta_fast", &s.BetaFast}, {"beta_slow", &s.BetaSlow}} {
		if v, ok, err := r.float(f.name); err != nil {
			return nil, err
		} else if ok && v != 0 { // transformers reads 0 as "use the default"
			if !(v > 0) || math.IsInf(v, 0) {
				return nil, keyError(r.key+"."+f.name, "%v must be positive", v)
			}
			*f.dst = v
		}
	}
	for _, f := range []struct {
		name string
		dst  *float64
	}{{"attention_factor", &s.AttnFactor}, {"mscale", &s.Mscale}, {"mscale_all_dim", &s.MscaleAllDim}} {
		v, ok, err := r.float(f.name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		switch {
		case f.name == "attention_factor" && !(v > 0), !(v >= 0), math.IsInf(v, 0):
			return nil, keyError(r.key+"."+f.name, "%v is out of range", v)
		}
		*f.dst = v
	}
	if r.has("truncate") {
		var truncate bool
		if err := json.Unmarshal(r.fields["truncate"], &truncate); err != nil {
			return nil, keyError(r.key+".truncate", "%s is not true or false", r.fields["truncate"])
		}
		s.NoTruncate = !truncate
	}
	return s, nil
}

// dynamic reads dynamic NTK scaling (transformers'
// _compute_dynamic_ntk_parameters): the base grows with the sequence
// length past max_position_embeddings (original_max_position_embeddings
// when given), which is the point of the type, so the context becomes
// factor × that.
func (r ropeFields) dynamic(maxPos int) (*model.RopeScaling, error) {
	f, err := r.need("factor")
	if err != nil {
		return nil, err
	}
	s := &model.RopeScaling{Type: "dynamic", Factor: f, OrigMaxPosition: maxPos}
	if v, ok, err := r.float("original_max_position_embeddings"); err != nil {
		return nil, err
	} else if ok {
		if v < 1 || v != math.Trunc(v) || v > 1<<30 {
			return nil, keyError(r.key+".original_max_position_embeddings", "%v must be a positive integer", v)
		}
		s.OrigMaxPosition = int(v)
	}
	return s, nil
}
