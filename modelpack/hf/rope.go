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
	default:
		return nil, keyError(r.key, "type %q is not supported (linear, llama3, yarn)", typ)
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

// yarn reads YaRN parameters with transformers' defaults: beta_fast 32,
// beta_slow 1, original_max_position_embeddings = max_position_embeddings,
// and factor = max/original when factor is absent.
func (r ropeFields) yarn(maxPos int) (*model.RopeScaling, error) {
	s := &model.RopeScaling{Type: "yarn", BetaFast: 32, BetaSlow: 1, OrigMaxPosition: maxPos}
	if v, ok, err := r.float("original_max_position_embeddings"); err != nil {
		return nil, err
	} else if ok {
		if v < 1 || v != math.Trunc(v) {
			return nil, keyError(r.key+".original_max_position_embeddings", "%v must be a positive integer", v)
		}
		s.OrigMaxPosition = int(v)
	}
	factor, ok, err := r.float("factor")
	if err != nil {
		return nil, err
	}
	if !ok {
		factor = float64(maxPos) / float64(s.OrigMaxPosition)
	}
	s.Factor = factor
	for _, f := range []struct {
		name string
		dst  *float64
	}{{"beta_fast", &s.BetaFast}, {"beta_slow", &s.BetaSlow}} {
		if v, ok, err := r.float(f.name); err != nil {
			return nil, err
		} else if ok && v != 0 { // transformers reads 0 as "use the default"
			*f.dst = v
		}
	}
	// The engine derives the attention factor from factor alone, as the
	// YaRN paper does; an explicit one, or DeepSeek's mscale pair, would be
	// ignored, so refuse them.
	for _, name := range []string{"attention_factor", "mscale", "mscale_all_dim"} {
		if r.has(name) {
			return nil, keyError(r.key+"."+name, "is not supported for yarn")
		}
	}
	if r.has("truncate") {
		var truncate bool
		if err := json.Unmarshal(r.fields["truncate"], &truncate); err != nil || !truncate {
			return nil, keyError(r.key+".truncate", "%s is not supported (only true)", r.fields["truncate"])
		}
	}
	return s, nil
}
