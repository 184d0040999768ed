package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// WTensor is one tensor to write. Exactly one of Values, Data and Fill is
// set: Values are encoded in Type by Quantize (F32, F16, BF16, Q8_0, Q4_0);
// Data is written as is and may be any known type; Fill returns the values
// when the tensor's turn comes, so that a file larger than memory is
// written holding one tensor at a time.
type WTensor struct {
	Name   string
	Type   GGMLType
	Dims   []int // ggml order: Dims[0] is the row length
	Values []float32
	Data   []byte
	Fill   func() ([]float32, error)
}

// Write writes a GGUF v3 file holding kv and tensors, in the given orders,
// with each tensor's data aligned to general.alignment (from kv, else 32)
// and laid out back to back as llama.cpp expects.
func Write(w io.Writer, kv []KV, tensors []WTensor) error {
	if err := write(w, kv, tensors); err != nil {
		return fmt.Errorf("gguf: write: %w", err)
	}
	return nil
}

func write(w io.Writer, kv []KV, tensors []WTensor) error {
	align := int64(DefaultAlignment)
	seen := map[string]bool{}
	for _, e := range kv {
		if seen[e.Key] {
			return fmt.Errorf("metadata key %q given twice", e.Key)
		}
		seen[e.Key] = true
		if err := e.Value.check(); err != nil {
			return fmt.Errorf("metadata key %q: %w", e.Key, err)
		}
		if e.Key == KeyAlignment {
			a, ok := e.Value.Any().(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return fmt.Errorf("metadata key %q must be a uint32 power of two, got %s %v", KeyAlignment, e.Value.Type(), e.Value)
			}
			align = int64(a)
		}
	}
	// Eager tensors are encoded now, so that a bad one fails before
	// anything is written; lazy ones only have their sizes checked.
	data := make([][]byte, len(tensors))
	sizes := make([]int, len(tensors))
	names := map[string]bool{}
	for i, t := range tensors {
		if names[t.Name] {
			return fmt.Errorf("tensor %q given twice", t.Name)
		}
		names[t.Name] = true
		if t.Fill != nil {
			if t.Values != nil || t.Data != nil {
				return fmt.Errorf("tensor %q: set exactly one of Values, Data and Fill", t.Name)
			}
			n, err := dataSize(t.Name, t.Type, t.Dims)
			if err != nil {
				return err
			}
			sizes[i] = n
			continue
		}
		b, err := encodeTensor(t)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		data[i], sizes[i] = b, len(b)
	}
	bw := &countWriter{w: bufio.NewWriter(w)}
	bw.u32(magic)
	bw.u32(3)
	bw.u64(uint64(len(tensors)))
	bw.u64(uint64(len(kv)))
	for _, e := range kv {
		bw.str(e.Key)
		bw.u32(uint32(e.Value.typ))
		bw.value(e.Value)
	}
	var off int64
	for i, t := range tensors {
		bw.str(t.Name)
		bw.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			bw.u64(uint64(d))
		}
		bw.u32(uint32(t.Type))
		bw.u64(uint64(off))
		off = alignUp(off+int64(sizes[i]), align)
	}
	bw.pad(align)
	for i, b := range data {
		if tensors[i].Fill != nil {
			v, err := tensors[i].Fill()
			if err != nil {
				return fmt.Errorf("tensor %q: %w", tensors[i].Name, err)
			}
			t := tensors[i]
			t.Fill, t.Values = nil, v
			if b, err = encodeTensor(t); err != nil {
				return fmt.Errorf("tensor %q: %w", t.Name, err)
			}
		}
		bw.write(b)
		bw.pad(align)
		if bw.err != nil {
			return bw.err
		}
	}
	if bw.err != nil {
		return bw.err
	}
	return bw.w.Flush()
}

// dataSize is the number of bytes a tensor of typ and dims takes.
func dataSize(name string, typ GGMLType, dims []int) (int, error) {
	tr, ok := traits(typ)
	if !ok {
		return 0, fmt.Errorf("tensor %q: unknown ggml type %d", name, uint32(typ))
	}
	n := 1
	for _, d := range dims {
		if d <= 0 || n > (1<<62)/d {
			return 0, fmt.Errorf("tensor %q: bad dimensions %v", name, dims)
		}
		n *= d
	}
	if len(dims) == 0 || len(dims) > maxDims || dims[0]%tr.blockElems != 0 {
		return 0, fmt.Errorf("tensor %q: dimensions %v are not whole %s blocks of %d", name, dims, typ, tr.blockElems)
	}
	return n / tr.blockElems * tr.blockBytes, nil
}

// encodeTensor validates a tensor's shape and returns its bytes.
func encodeTensor(t WTensor) ([]byte, error) {
	if (t.Values == nil) == (t.Data == nil) {
		return nil, fmt.Errorf("set exactly one of Values and Data")
	}
	raw := RawTensor{Name: t.Name, Type: t.Type, Dims: t.Dims, Data: t.Data}
	if t.Values != nil {
		b, err := Quantize(t.Type, t.Values)
		if err != nil {
			return nil, err
		}
		raw.Data = b
	}
	if _, err := raw.check(); err != nil {
		return nil, err
	}
	return raw.Data, nil
}

// countWriter writes little-endian fields, remembering the first error
// and the number of bytes written (for alignment padding).
type countWriter struct {
	w   *bufio.Writer
	n   int64
	err error
	buf [8]byte
}

func (c *countWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}

func (c *countWriter) u8(x uint8) { c.write([]byte{x}) }

func (c *countWriter) u16(x uint16) {
	binary.LittleEndian.PutUint16(c.buf[:], x)
	c.write(c.buf[:2])
}

func (c *countWriter) u32(x uint32) {
	binary.LittleEndian.PutUint32(c.buf[:], x)
	c.write(c.buf[:4])
}

func (c *countWriter) u64(x uint64) {
	binary.LittleEndian.PutUint64(c.buf[:], x)
	c.write(c.buf[:8])
}

func (c *countWriter) str(s string) {
	c.u64(uint64(len(s)))
	c.write([]byte(s))
}

func (c *countWriter) pad(align int64) {
	if n := alignUp(c.n, align) - c.n; n > 0 {
		c.write(make([]byte, n))
	}
}

// value writes a value's payload (its type tag is written by the caller).
// Values have passed check, so every case below is reachable only with
// the Go type its tag promises.
func (c *countWriter) value(v Value) {
	if v.typ == TypeArray {
		c.u32(uint32(v.elem))
		c.u64(uint64(v.Len()))
	}
	switch x := v.x.(type) {
	case uint8:
		c.u8(x)
	case int8:
		c.u8(uint8(x))
	case uint16:
		c.u16(x)
	case int16:
		c.u16(uint16(x))
	case uint32:
		c.u32(x)
	case int32:
		c.u32(uint32(x))
	case float32:
		c.u32(math.Float32bits(x))
	case bool:
		c.u8(boolByte(x))
	case string:
		c.str(x)
	case uint64:
		c.u64(x)
	case int64:
		c.u64(uint64(x))
	case float64:
		c.u64(math.Float64bits(x))
	case []uint8:
		c.write(x)
	case []int8:
		each(x, func(e int8) { c.u8(uint8(e)) })
	case []uint16:
		each(x, c.u16)
	case []int16:
		each(x, func(e int16) { c.u16(uint16(e)) })
	case []uint32:
		each(x, c.u32)
	case []int32:
		each(x, func(e int32) { c.u32(uint32(e)) })
	case []float32:
		each(x, func(e float32) { c.u32(math.Float32bits(e)) })
	case []bool:
		each(x, func(e bool) { c.u8(boolByte(e)) })
	case []string:
		each(x, c.str)
	case []uint64:
		each(x, c.u64)
	case []int64:
		each(x, func(e int64) { c.u64(uint64(e)) })
	case []float64:
		each(x, func(e float64) { c.u64(math.Float64bits(e)) })
	case []Value:
		each(x, c.value)
	}
}

func each[T any](xs []T, f func(T)) {
	for _, x := range xs {
		f(x)
	}
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
