package gguf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// File is an opened GGUF file: its parsed header and a handle for reading
// tensor data on demand.
type File struct {
	name string
	r    io.ReaderAt
	size int64
	c    io.Closer // set by Open

	// Version is the GGUF version, 2 or 3.
	Version uint32
	// Alignment is the data alignment in bytes (general.alignment or 32).
	Alignment int64
	// DataOffset is where the data section starts in the file.
	DataOffset int64

	kvs         []KV
	kvIndex     map[string]int
	tensors     []Info
	tensorIndex map[string]int
}

// Info describes one tensor as the header states it.
type Info struct {
	Name string
	Type GGMLType
	// Dims are in ggml order: Dims[0] varies fastest (the columns of a
	// matrix), so a [rows, cols] matrix has Dims {cols, rows}.
	Dims []int
	// Offset is relative to the start of the data section, as stored.
	Offset int64
	// Size is the data's byte length.
	Size int64
}

// Elems is the number of elements.
func (i Info) Elems() int64 {
	n := int64(1)
	for _, d := range i.Dims {
		n *= int64(d)
	}
	return n
}

// Shape is Dims reversed: the row-major shape tensor.Tensor uses.
func (i Info) Shape() []int { return reversed(i.Dims) }

func reversed(dims []int) []int {
	s := slices.Clone(dims)
	slices.Reverse(s)
	return s
}

// RawTensor is a tensor's bytes exactly as stored, in ggml's layout.
type RawTensor struct {
	Name string
	Type GGMLType
	Dims []int // ggml order, as Info.Dims
	Data []byte
}

// Shape is Dims reversed: the row-major shape tensor.Tensor uses.
func (t RawTensor) Shape() []int { return reversed(t.Dims) }

// check verifies that Data holds exactly what Type and Dims describe.
func (t RawTensor) check() (elems int, err error) {
	tr, ok := traits(t.Type)
	if !ok {
		return 0, fmt.Errorf("tensor %q: unknown ggml type %d", t.Name, uint32(t.Type))
	}
	if len(t.Dims) == 0 || len(t.Dims) > maxDims {
		return 0, fmt.Errorf("tensor %q: %d dimensions, want 1 to %d", t.Name, len(t.Dims), maxDims)
	}
	n := 1
	for _, d := range t.Dims {
		if d <= 0 || n > (1<<62)/d {
			return 0, fmt.Errorf("tensor %q: bad dimensions %v", t.Name, t.Dims)
		}
		n *= d
	}
	if t.Dims[0]%tr.blockElems != 0 {
		return 0, fmt.Errorf("tensor %q: row length %d is not a multiple of the %s block size %d", t.Name, t.Dims[0], t.Type, tr.blockElems)
	}
	if want := n / tr.blockElems * tr.blockBytes; len(t.Data) != want {
		return 0, fmt.Errorf("tensor %q: %s%v needs %d bytes, has %d", t.Name, t.Type, t.Dims, want, len(t.Data))
	}
	return n, nil
}

// NewReader parses the header of the GGUF file of the given size read
// through r. name labels errors (usually the path). No tensor data is read.
func NewReader(r io.ReaderAt, size int64, name string) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("gguf: %s: size %d is negative", name, size)
	}
	f, err := parseHeader(r, size)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", name, err)
	}
	f.name, f.r = name, r
	return f, nil
}

// Open opens and parses the GGUF file at path. Close releases it.
func Open(path string) (*File, error) {
	osf, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	st, err := osf.Stat()
	if err != nil {
		osf.Close()
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := NewReader(osf, st.Size(), path)
	if err != nil {
		osf.Close()
		return nil, err
	}
	f.c = osf
	return f, nil
}

// Close closes the file if Open opened it.
func (f *File) Close() error {
	if f.c == nil {
		return nil
	}
	err := f.c.Close()
	f.c = nil
	return err
}

// Name is the name errors use for the file.
func (f *File) Name() string { return f.name }

// KVs returns the metadata in file order.
func (f *File) KVs() []KV { return slices.Clone(f.kvs) }

// Get returns the value of a metadata key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.kvs[i].Value, true
}

// Tensors returns the tensor descriptions in file order.
func (f *File) Tensors() []Info {
	out := slices.Clone(f.tensors)
	for i := range out {
		out[i].Dims = slices.Clone(out[i].Dims)
	}
	return out
}

// Tensor returns the description of the named tensor.
func (f *File) Tensor(name string) (Info, bool) {
	i, ok := f.tensorIndex[name]
	if !ok {
		return Info{}, false
	}
	info := f.tensors[i]
	info.Dims = slices.Clone(info.Dims)
	return info, true
}

// ReadRaw reads the named tensor's bytes.
func (f *File) ReadRaw(name string) (RawTensor, error) {
	info, ok := f.Tensor(name)
	if !ok {
		return RawTensor{}, fmt.Errorf("gguf: %s: no tensor %q", f.name, name)
	}
	b := make([]byte, info.Size)
	n, err := f.r.ReadAt(b, f.DataOffset+info.Offset)
	if n == len(b) {
		err = nil // ReadAt may report io.EOF along with a full read at the end of the file
	} else if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return RawTensor{}, fmt.Errorf("gguf: %s: reading tensor %q: %w", f.name, name, err)
	}
	return RawTensor{Name: name, Type: info.Type, Dims: info.Dims, Data: b}, nil
}

// checkData verifies that every tensor's data lies inside the file and
// that no two tensors share bytes.
func (f *File) checkData() error {
	if len(f.tensors) == 0 {
		return nil
	}
	if f.DataOffset > f.size {
		return fmt.Errorf("data section would start at %d, past the end of the %d-byte file", f.DataOffset, f.size)
	}
	limit := f.size - f.DataOffset
	byOffset := make([]int, len(f.tensors))
	for i, t := range f.tensors {
		byOffset[i] = i
		if t.Offset > limit || t.Size > limit-t.Offset {
			return fmt.Errorf("tensor %q: data [%d, +%d) runs past the end of the file (data section holds %d bytes)", t.Name, t.Offset, t.Size, limit)
		}
	}
	slices.SortFunc(byOffset, func(a, b int) int {
		return int(min(max(f.tensors[a].Offset-f.tensors[b].Offset, -1), 1))
	})
	for k := 1; k < len(byOffset); k++ {
		prev, cur := f.tensors[byOffset[k-1]], f.tensors[byOffset[k]]
		if cur.Offset < prev.Offset+prev.Size {
			return fmt.Errorf("tensor %q: data at %d overlaps tensor %q [%d, +%d)", cur.Name, cur.Offset, prev.Name, prev.Offset, prev.Size)
		}
	}
	return nil
}
