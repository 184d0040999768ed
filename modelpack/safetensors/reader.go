package safetensors

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"github.com/moderuntime/mode/runtime/tensor"
)

// Reader reads tensors from one safetensors file. Opening parses and
// validates the header only; each Read fetches one tensor's bytes with
// ReadAt. A Reader is safe for concurrent use when its io.ReaderAt is, as
// an *os.File is.
type Reader struct {
	name   string
	r      io.ReaderAt
	closer io.Closer // set when Open opened the file
	h      *header
}

// NewReader parses the header of the size-byte safetensors data in r. The
// name is used in error messages, typically the file's path.
func NewReader(r io.ReaderAt, size int64, name string) (*Reader, error) {
	h, err := readHeader(name, r, size)
	if err != nil {
		return nil, err
	}
	return &Reader{name: name, r: r, h: h}, nil
}

// Open opens the safetensors file at path. Close releases it.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	r, err := NewReader(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// Close closes the file if Open opened it.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// Name is the name given to NewReader, or the path given to Open.
func (r *Reader) Name() string { return r.name }

// Names lists the tensors in sorted order.
func (r *Reader) Names() []string { return slices.Clone(r.h.names) }

// Info describes the named tensor.
func (r *Reader) Info(name string) (Info, bool) {
	info, ok := r.h.infos[name]
	info.Shape = slices.Clone(info.Shape) // the caller may not edit our copy
	return info, ok
}

// Metadata returns a copy of the header's __metadata__ map, or nil.
func (r *Reader) Metadata() map[string]string { return maps.Clone(r.h.meta) }

// Read loads the named tensor. Only F32, F16 and BF16 tensors load; any
// other dtype is an error naming it.
func (r *Reader) Read(name string) (*tensor.Tensor, error) {
	info, ok := r.h.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", r.name, name)
	}
	dt, err := info.TensorDType()
	if err != nil {
		return nil, err
	}
	data := make([]byte, info.Size())
	if err := readFull(r.r, data, info.FileOffset); err != nil {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", r.name, name, err)
	}
	return &tensor.Tensor{Name: name, DType: dt, Shape: slices.Clone(info.Shape), Data: data}, nil
}

// ReadRows loads rows [row0, row0+rows) of a tensor of two or more
// dimensions (rows counted along the first), reading only their bytes, so a
// tensor larger than memory can be processed in pieces.
func (r *Reader) ReadRows(name string, row0, rows int) (*tensor.Tensor, error) {
	info, ok := r.h.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", r.name, name)
	}
	dt, err := info.TensorDType()
	if err != nil {
		return nil, err
	}
	if len(info.Shape) < 2 || row0 < 0 || rows <= 0 || row0+rows > info.Shape[0] {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: rows [%d, %d) outside shape %v", r.name, name, row0, row0+rows, info.Shape)
	}
	rowBytes := info.Size() / int64(info.Shape[0])
	data := make([]byte, int64(rows)*rowBytes)
	if err := readFull(r.r, data, info.FileOffset+int64(row0)*rowBytes); err != nil {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", r.name, name, err)
	}
	shape := slices.Clone(info.Shape)
	shape[0] = rows
	return &tensor.Tensor{Name: name, DType: dt, Shape: shape, Data: data}, nil
}

// ReadU8Rows loads rows [row0, row0+rows) of a U8 tensor (rows counted
// along the first dimension; all of it when rows is 0) as raw bytes: the
// *_blocks and *_scales tensors of MXFP4 checkpoints.
func (r *Reader) ReadU8Rows(name string, row0, rows int) ([]byte, error) {
	info, ok := r.h.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", r.name, name)
	}
	if info.DType != "U8" {
		return nil, fmt.Errorf("safetensors: %s: tensor %q is %s, want U8", r.name, name, info.DType)
	}
	if rows == 0 && len(info.Shape) > 0 {
		row0, rows = 0, info.Shape[0]
	}
	if len(info.Shape) < 1 || row0 < 0 || rows <= 0 || row0+rows > info.Shape[0] {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: rows [%d, %d) outside shape %v", r.name, name, row0, row0+rows, info.Shape)
	}
	rowBytes := info.Size() / int64(info.Shape[0])
	data := make([]byte, int64(rows)*rowBytes)
	if err := readFull(r.r, data, info.FileOffset+int64(row0)*rowBytes); err != nil {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", r.name, name, err)
	}
	return data, nil
}
