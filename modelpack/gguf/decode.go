package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// decoder reads the header sequentially, never past the file's size, so
// that no length field can make it allocate more than the file holds.
type decoder struct {
	r    *bufio.Reader
	off  int64 // bytes consumed so far
	size int64
	buf  [8]byte
}

func newDecoder(r io.ReaderAt, size int64) *decoder {
	return &decoder{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16), size: size}
}

func (d *decoder) remaining() int64 { return d.size - d.off }

// errTruncated is wrapped by every read past the end of the file.
var errTruncated = errors.New("file ends early")

func (d *decoder) read(p []byte) error {
	if int64(len(p)) > d.remaining() {
		return fmt.Errorf("%w: need %d bytes at offset %d, %d remain", errTruncated, len(p), d.off, d.remaining())
	}
	n, err := io.ReadFull(d.r, p)
	d.off += int64(n)
	if err != nil {
		return fmt.Errorf("reading at offset %d: %w", d.off, err)
	}
	return nil
}

func (d *decoder) u8() (uint8, error) {
	err := d.read(d.buf[:1])
	return d.buf[0], err
}

func (d *decoder) u16() (uint16, error) {
	err := d.read(d.buf[:2])
	return binary.LittleEndian.Uint16(d.buf[:2]), err
}

func (d *decoder) u32() (uint32, error) {
	err := d.read(d.buf[:4])
	return binary.LittleEndian.Uint32(d.buf[:4]), err
}

func (d *decoder) u64() (uint64, error) {
	err := d.read(d.buf[:8])
	return binary.LittleEndian.Uint64(d.buf[:8]), err
}

// string reads a u64 length and that many bytes. The length is checked
// against what is left of the file before anything is allocated.
func (d *decoder) string() (string, error) {
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > uint64(d.remaining()) {
		return "", fmt.Errorf("string length %d exceeds the %d bytes left in the file", n, d.remaining())
	}
	b := make([]byte, n)
	if err := d.read(b); err != nil {
		return "", err
	}
	return string(b), nil
}

// count reads a u64 element count and checks that count elements of at
// least minSize bytes each fit in the rest of the file.
func (d *decoder) count(what string, minSize int64) (int, error) {
	n, err := d.u64()
	if err != nil {
		return 0, err
	}
	if n > uint64(d.remaining()/minSize) {
		return 0, fmt.Errorf("%s %d is impossible: %d bytes remain and each needs at least %d", what, n, d.remaining(), minSize)
	}
	return int(n), nil
}

// value reads a value of type t.
func (d *decoder) value(t ValueType, depth int) (Value, error) {
	if t == TypeArray {
		return d.array(depth)
	}
	var x any
	var err error
	switch t {
	case TypeUint8:
		x, err = d.u8()
	case TypeInt8:
		var u uint8
		u, err = d.u8()
		x = int8(u)
	case TypeUint16:
		x, err = d.u16()
	case TypeInt16:
		var u uint16
		u, err = d.u16()
		x = int16(u)
	case TypeUint32:
		x, err = d.u32()
	case TypeInt32:
		var u uint32
		u, err = d.u32()
		x = int32(u)
	case TypeFloat32:
		var u uint32
		u, err = d.u32()
		x = math.Float32frombits(u)
	case TypeBool:
		var u uint8
		if u, err = d.u8(); err == nil && u > 1 {
			err = fmt.Errorf("bool byte is %d, not 0 or 1", u)
		}
		x = u == 1
	case TypeString:
		x, err = d.string()
	case TypeUint64:
		x, err = d.u64()
	case TypeInt64:
		var u uint64
		u, err = d.u64()
		x = int64(u)
	case TypeFloat64:
		var u uint64
		u, err = d.u64()
		x = math.Float64frombits(u)
	default:
		return Value{}, fmt.Errorf("unknown value type %d", uint32(t))
	}
	if err != nil {
		return Value{}, err
	}
	return Value{typ: t, x: x}, nil
}

// array reads an element type, a count and the elements into a typed
// slice (or []Value for arrays of arrays).
func (d *decoder) array(depth int) (Value, error) {
	if depth >= maxNesting {
		return Value{}, fmt.Errorf("arrays nested more than %d deep", maxNesting)
	}
	et, err := d.u32()
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.valid() {
		return Value{}, fmt.Errorf("array of unknown value type %d", et)
	}
	n, err := d.count("array length", elem.minSize())
	if err != nil {
		return Value{}, err
	}
	v := Value{typ: TypeArray, elem: elem}
	switch elem {
	case TypeUint8:
		v.x, err = readArray(d, n, d.u8)
	case TypeInt8:
		v.x, err = readArray(d, n, func() (int8, error) { u, err := d.u8(); return int8(u), err })
	case TypeUint16:
		v.x, err = readArray(d, n, d.u16)
	case TypeInt16:
		v.x, err = readArray(d, n, func() (int16, error) { u, err := d.u16(); return int16(u), err })
	case TypeUint32:
		v.x, err = readArray(d, n, d.u32)
	case TypeInt32:
		v.x, err = readArray(d, n, func() (int32, error) { u, err := d.u32(); return int32(u), err })
	case TypeFloat32:
		v.x, err = readArray(d, n, func() (float32, error) { u, err := d.u32(); return math.Float32frombits(u), err })
	case TypeBool:
		v.x, err = readArray(d, n, func() (bool, error) {
			u, err := d.u8()
			if err == nil && u > 1 {
				err = fmt.Errorf("bool byte is %d, not 0 or 1", u)
			}
			return u == 1, err
		})
	case TypeString:
		v.x, err = readArray(d, n, d.string)
	case TypeUint64:
		v.x, err = readArray(d, n, d.u64)
	case TypeInt64:
		v.x, err = readArray(d, n, func() (int64, error) { u, err := d.u64(); return int64(u), err })
	case TypeFloat64:
		v.x, err = readArray(d, n, func() (float64, error) { u, err := d.u64(); return math.Float64frombits(u), err })
	case TypeArray:
		v.x, err = readArray(d, n, func() (Value, error) { return d.array(depth + 1) })
	}
	if err != nil {
		return Value{}, err
	}
	return v, nil
}

func readArray[T any](d *decoder, n int, next func() (T, error)) ([]T, error) {
	out := make([]T, n)
	for i := range out {
		x, err := next()
		if err != nil {
			return nil, fmt.Errorf("array element %d: %w", i, err)
		}
		out[i] = x
	}
	return out, nil
}
