package gguf

import (
	"fmt"
	"io"
	"math"
)

// magic is "GGUF" read as a little-endian uint32.
const magic = 0x46554747

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that sets the data alignment.
const KeyAlignment = "general.alignment"

// maxDims is ggml's GGML_MAX_DIMS.
const maxDims = 4

// maxNesting bounds arrays of arrays; real files nest at most once, and a
// bound keeps hostile input from recursing without limit.
const maxNesting = 8

// Minimum encoded sizes, used to reject counts the file cannot hold.
const (
	minKVSize     = 8 + 4 + 1         // key length, value type, smallest value
	minTensorSize = 8 + 4 + 8 + 4 + 8 // name length, n_dims, one dim, type, offset
)

// parseHeader reads everything before the data section and validates it
// against the file's size.
func parseHeader(r io.ReaderAt, size int64) (*File, error) {
	d := newDecoder(r, size)
	m, err := d.u32()
	if err != nil {
		return nil, fmt.Errorf("reading magic: %w", err)
	}
	if m != magic {
		return nil, fmt.Errorf("bad magic %q: not a GGUF file", d.buf[:4])
	}
	version, err := d.u32()
	if err != nil {
		return nil, fmt.Errorf("reading version: %w", err)
	}
	switch {
	case version == 2 || version == 3:
	case version&0xffff == 0 && version != 0:
		return nil, fmt.Errorf("version field %#x looks big-endian; only little-endian GGUF is supported", version)
	default:
		return nil, fmt.Errorf("version %d is not supported (only 2 and 3)", version)
	}
	nTensors, err := d.count("tensor count", minTensorSize)
	if err != nil {
		return nil, err
	}
	nKV, err := d.count("metadata count", minKVSize)
	if err != nil {
		return nil, err
	}
	f := &File{size: size, Version: version, Alignment: DefaultAlignment, kvIndex: map[string]int{}, tensorIndex: map[string]int{}}
	for i := range nKV {
		key, err := d.string()
		if err != nil {
			return nil, fmt.Errorf("metadata entry %d: reading key: %w", i, err)
		}
		if _, dup := f.kvIndex[key]; dup {
			return nil, fmt.Errorf("metadata key %q appears twice", key)
		}
		t, err := d.u32()
		if err != nil {
			return nil, fmt.Errorf("metadata key %q: reading type: %w", key, err)
		}
		if !ValueType(t).valid() {
			return nil, fmt.Errorf("metadata key %q: unknown value type %d", key, t)
		}
		v, err := d.value(ValueType(t), 0)
		if err != nil {
			return nil, fmt.Errorf("metadata key %q: %w", key, err)
		}
		f.kvIndex[key] = len(f.kvs)
		f.kvs = append(f.kvs, KV{key, v})
	}
	if v, ok := f.Get(KeyAlignment); ok {
		a, isU32 := v.Any().(uint32)
		if !isU32 {
			return nil, fmt.Errorf("metadata key %q: is %s, want uint32", KeyAlignment, v.Type())
		}
		if a == 0 || a&(a-1) != 0 {
			return nil, fmt.Errorf("metadata key %q: %d is not a power of two", KeyAlignment, a)
		}
		f.Alignment = int64(a)
	}
	for i := range nTensors {
		info, err := readTensorInfo(d, f.Alignment)
		if err != nil {
			return nil, fmt.Errorf("tensor %d%s: %w", i, quoted(info.Name), err)
		}
		if _, dup := f.tensorIndex[info.Name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice", info.Name)
		}
		f.tensorIndex[info.Name] = len(f.tensors)
		f.tensors = append(f.tensors, info)
	}
	f.DataOffset = alignUp(d.off, f.Alignment)
	if err := f.checkData(); err != nil {
		return nil, err
	}
	return f, nil
}

func quoted(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" %q", name)
}

// readTensorInfo reads one tensor description. It returns the name read so
// far even on error, so that the error can name the tensor.
func readTensorInfo(d *decoder, alignment int64) (Info, error) {
	var info Info
	name, err := d.string()
	if err != nil {
		return info, fmt.Errorf("reading name: %w", err)
	}
	info.Name = name
	n, err := d.u32()
	if err != nil {
		return info, err
	}
	if n == 0 || n > maxDims {
		return info, fmt.Errorf("%d dimensions, want 1 to %d", n, maxDims)
	}
	info.Dims = make([]int, n)
	elems := int64(1)
	for i := range info.Dims {
		x, err := d.u64()
		if err != nil {
			return info, err
		}
		if x == 0 || x > math.MaxInt32 {
			return info, fmt.Errorf("dimension %d is %d, want 1 to %d", i, x, math.MaxInt32)
		}
		if int64(x) > math.MaxInt64/elems {
			return info, fmt.Errorf("dimensions %v overflow the element count", info.Dims[:i+1])
		}
		info.Dims[i] = int(x)
		elems *= int64(x)
	}
	t, err := d.u32()
	if err != nil {
		return info, err
	}
	info.Type = GGMLType(t)
	tr, ok := traits(info.Type)
	if !ok {
		return info, fmt.Errorf("unknown ggml type %d", t)
	}
	if info.Dims[0]%tr.blockElems != 0 {
		return info, fmt.Errorf("row length %d is not a multiple of the %s block size %d", info.Dims[0], info.Type, tr.blockElems)
	}
	if elems/int64(tr.blockElems) > math.MaxInt64/int64(tr.blockBytes) {
		return info, fmt.Errorf("dimensions %v overflow the byte size", info.Dims)
	}
	info.Size = elems / int64(tr.blockElems) * int64(tr.blockBytes)
	off, err := d.u64()
	if err != nil {
		return info, err
	}
	if off > math.MaxInt64 {
		return info, fmt.Errorf("data offset %d out of range", off)
	}
	info.Offset = int64(off)
	if info.Offset%alignment != 0 {
		return info, fmt.Errorf("data offset %d is not a multiple of the alignment %d", off, alignment)
	}
	return info, nil
}

func alignUp(n, a int64) int64 {
	if r := n % a; r != 0 {
		return n + a - r
	}
	return n
}
