package gguf

import (
	"fmt"
	"math"
	"strings"
)

// ValueType is the type tag of a metadata value.
type ValueType uint32

// The GGUF metadata value types, numbered as in the GGUF specification.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("value_type(%d)", uint32(t))
}

// valid reports whether t is one of the thirteen defined tags.
func (t ValueType) valid() bool { return int(t) < len(valueTypeNames) }

// minSize is the fewest bytes a value of type t occupies in a file, which
// bounds how many elements an array can claim for a given file size.
func (t ValueType) minSize() int64 {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeString, TypeUint64, TypeInt64, TypeFloat64:
		return 8
	case TypeArray:
		return 4 + 8
	}
	return 1
}

// Value is one metadata value: a scalar, a string, or an array whose
// elements all have one type (arrays of arrays hold []Value). The zero
// Value is invalid; build values with Scalar, Array and Arrays.
type Value struct {
	typ  ValueType
	elem ValueType // element type when typ is TypeArray
	x    any       // the Go value: uint8 ... float64, string, bool, a slice of those, or []Value
}

// KV is one metadata entry.
type KV struct {
	Key   string
	Value Value
}

// scalar lists the Go types that map one-to-one onto GGUF value types.
type scalar interface {
	uint8 | int8 | uint16 | int16 | uint32 | int32 | float32 | bool | string | uint64 | int64 | float64
}

func typeOf(x any) ValueType {
	switch x.(type) {
	case uint8, []uint8:
		return TypeUint8
	case int8, []int8:
		return TypeInt8
	case uint16, []uint16:
		return TypeUint16
	case int16, []int16:
		return TypeInt16
	case uint32, []uint32:
		return TypeUint32
	case int32, []int32:
		return TypeInt32
	case float32, []float32:
		return TypeFloat32
	case bool, []bool:
		return TypeBool
	case string, []string:
		return TypeString
	case uint64, []uint64:
		return TypeUint64
	case int64, []int64:
		return TypeInt64
	case float64, []float64:
		return TypeFloat64
	}
	return TypeArray
}

// Scalar returns a value holding x, typed by x's Go type.
func Scalar[T scalar](x T) Value { return Value{typ: typeOf(x), x: x} }

// Array returns an array value holding a copy of xs.
func Array[T scalar](xs []T) Value {
	c := append([]T{}, xs...)
	return Value{typ: TypeArray, elem: typeOf(c), x: c}
}

// Arrays returns an array of arrays. Each element must itself be an array
// (each may have its own element type); Write reports any that is not.
func Arrays(vs ...Value) Value {
	return Value{typ: TypeArray, elem: TypeArray, x: append([]Value{}, vs...)}
}

// Type is the value's type tag.
func (v Value) Type() ValueType { return v.typ }

// ElemType is the element type of an array value.
func (v Value) ElemType() ValueType { return v.elem }

// Any returns the underlying Go value: a scalar, a typed slice, or []Value.
func (v Value) Any() any { return v.x }

// Len is the number of elements of an array value, 0 for a scalar.
func (v Value) Len() int {
	switch x := v.x.(type) {
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []float32:
		return len(x)
	case []bool:
		return len(x)
	case []string:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float64:
		return len(x)
	case []Value:
		return len(x)
	}
	return 0
}

// Int returns an integer scalar of any width as int64; ok is false for
// other types and for a uint64 above math.MaxInt64.
func (v Value) Int() (int64, bool) { return asInt(v.x) }

func asInt(x any) (int64, bool) {
	switch x := x.(type) {
	case uint8:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// Float returns a float32 or float64 scalar as float64.
func (v Value) Float() (float64, bool) {
	switch x := v.x.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// Bool returns a bool scalar.
func (v Value) Bool() (bool, bool) {
	b, ok := v.x.(bool)
	return b, ok
}

// Str returns a string scalar.
func (v Value) Str() (string, bool) {
	s, ok := v.x.(string)
	return s, ok
}

// Strings returns an array of strings. The slice is the value's own.
func (v Value) Strings() ([]string, bool) {
	s, ok := v.x.([]string)
	return s, ok
}

// Float32s returns an array of float32. The slice is the value's own.
func (v Value) Float32s() ([]float32, bool) {
	s, ok := v.x.([]float32)
	return s, ok
}

// Ints returns an array of any integer type as a new []int64; ok is false
// for other arrays and when a uint64 element exceeds math.MaxInt64.
func (v Value) Ints() ([]int64, bool) {
	if v.typ != TypeArray {
		return nil, false
	}
	var out []int64
	switch x := v.x.(type) {
	case []uint8:
		out = convert(x)
	case []int8:
		out = convert(x)
	case []uint16:
		out = convert(x)
	case []int16:
		out = convert(x)
	case []uint32:
		out = convert(x)
	case []int32:
		out = convert(x)
	case []int64:
		out = append([]int64{}, x...)
	case []uint64:
		out = make([]int64, len(x))
		for i, e := range x {
			if e > math.MaxInt64 {
				return nil, false
			}
			out[i] = int64(e)
		}
	default:
		return nil, false
	}
	return out, true
}

func convert[T uint8 | int8 | uint16 | int16 | uint32 | int32](xs []T) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return out
}

// Arrays returns the elements of an array of arrays.
func (v Value) Arrays() ([]Value, bool) {
	s, ok := v.x.([]Value)
	return s, ok
}

// String formats the value for people; long arrays are abbreviated.
func (v Value) String() string {
	if v.typ != TypeArray {
		if s, ok := v.x.(string); ok {
			return fmt.Sprintf("%q", s)
		}
		return fmt.Sprint(v.x)
	}
	n := v.Len()
	if n > 8 {
		return fmt.Sprintf("[%d × %s]", n, v.elem)
	}
	if vs, ok := v.x.([]Value); ok {
		parts := make([]string, len(vs))
		for i, e := range vs {
			parts[i] = e.String()
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprint(v.x)
}

// check reports why v cannot be written, or nil.
func (v Value) check() error {
	if v.x == nil {
		return fmt.Errorf("value is unset (the zero Value)")
	}
	if v.typ != TypeArray {
		if typeOf(v.x) != v.typ {
			return fmt.Errorf("value of type %s holds a %T", v.typ, v.x)
		}
		return nil
	}
	vs, nested := v.x.([]Value)
	if !nested {
		if v.elem == TypeArray || typeOf(v.x) != v.elem {
			return fmt.Errorf("array of %s holds a %T", v.elem, v.x)
		}
		return nil
	}
	if v.elem != TypeArray {
		return fmt.Errorf("array of %s holds nested values", v.elem)
	}
	for i, e := range vs {
		if e.typ != TypeArray {
			return fmt.Errorf("element %d of an array of arrays is a %s", i, e.typ)
		}
		if err := e.check(); err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
	}
	return nil
}
