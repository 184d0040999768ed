package gguf

import (
	"fmt"
	"math"
)

// maxInt bounds every size read from metadata; it is far beyond any real
// model and keeps products of sizes within int range.
const maxInt = 1 << 24

// meta reads one architecture's metadata keys, naming the key in errors.
type meta struct {
	f    *File
	arch string
}

// key returns "{arch}.suffix".
func (m meta) key(suffix string) string { return m.arch + "." + suffix }

func keyError(key, format string, args ...any) error {
	return fmt.Errorf("key %s: %s", key, fmt.Sprintf(format, args...))
}

// int reads an integer scalar in [0, maxInt].
func (m meta) int(key string) (int, bool, error) {
	v, ok := m.f.Get(key)
	if !ok {
		return 0, false, nil
	}
	x, isInt := v.Int()
	if !isInt {
		return 0, false, keyError(key, "is %s, want an integer", v.Type())
	}
	if x < 0 || x > maxInt {
		return 0, false, keyError(key, "%d out of range 0..%d", x, maxInt)
	}
	return int(x), true, nil
}

// positive reads a required integer that must be at least 1.
func (m meta) positive(key string) (int, error) {
	x, ok, err := m.int(key)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, keyError(key, "is missing")
	}
	if x < 1 {
		return 0, keyError(key, "must be positive, got %d", x)
	}
	return x, nil
}

// float reads a float32 or float64 scalar that must be finite.
func (m meta) float(key string) (float64, bool, error) {
	v, ok := m.f.Get(key)
	if !ok {
		return 0, false, nil
	}
	x, isFloat := v.Float()
	if !isFloat {
		return 0, false, keyError(key, "is %s, want a float", v.Type())
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, false, keyError(key, "is %v", x)
	}
	return x, true, nil
}

func (m meta) str(key string) (string, bool, error) {
	v, ok := m.f.Get(key)
	if !ok {
		return "", false, nil
	}
	s, isStr := v.Str()
	if !isStr {
		return "", false, keyError(key, "is %s, want a string", v.Type())
	}
	return s, true, nil
}

func (m meta) bool(key string) (bool, bool, error) {
	v, ok := m.f.Get(key)
	if !ok {
		return false, false, nil
	}
	b, isBool := v.Bool()
	if !isBool {
		return false, false, keyError(key, "is %s, want a bool", v.Type())
	}
	return b, true, nil
}

// perLayer reads a key that is either one integer or an array with one
// integer per layer (llama.cpp accepts both for head counts and FFN
// widths), returning one value per layer.
func (m meta) perLayer(key string, layers int) ([]int, bool, error) {
	v, ok := m.f.Get(key)
	if !ok {
		return nil, false, nil
	}
	out := make([]int, layers)
	if v.Type() != TypeArray {
		x, _, err := m.int(key)
		if err != nil {
			return nil, false, err
		}
		for i := range out {
			out[i] = x
		}
		return out, true, nil
	}
	xs, isInts := v.Ints()
	if !isInts {
		return nil, false, keyError(key, "is an array of %s, want integers", v.ElemType())
	}
	if len(xs) != layers {
		return nil, false, keyError(key, "has %d entries for %d layers", len(xs), layers)
	}
	for i, x := range xs {
		if x < 0 || x > maxInt {
			return nil, false, keyError(key, "entry %d is %d, out of range", i, x)
		}
		out[i] = int(x)
	}
	return out, true, nil
}

// uniform reads a per-layer key that model.Config holds once, rejecting
// files where layers differ.
func (m meta) uniform(key string, layers int) (int, bool, error) {
	xs, ok, err := m.perLayer(key, layers)
	if !ok || err != nil {
		return 0, ok, err
	}
	for i, x := range xs {
		if x != xs[0] {
			return 0, false, keyError(key, "layer %d has %d but layer 0 has %d; per-layer values are not supported", i, x, xs[0])
		}
	}
	return xs[0], true, nil
}
