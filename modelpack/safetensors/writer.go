package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/moderuntime/mode/runtime/tensor"
)

// Writer writes one safetensors file. Tensors are added, then Close writes
// the header followed by each tensor's data in sorted name order, straight
// from the tensors' own buffers. The same tensors and metadata always give
// the same bytes.
type Writer struct {
	w       io.Writer
	meta    map[string]string
	tensors map[string]*tensor.Tensor
	lazy    map[string]func() ([]byte, error)
	sizes   map[string]int64 // byte length of lazy tensors
	u8      map[string]bool  // tensors stored as raw U8 bytes (AddU8)
	closed  bool
}

// NewWriter returns a Writer that writes to w on Close.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, tensors: map[string]*tensor.Tensor{}, lazy: map[string]func() ([]byte, error){}, sizes: map[string]int64{}}
}

// AddLazy queues a tensor whose bytes fill produces during Close, just
// before they are written, so a file larger than memory can be written one
// tensor at a time. t describes the tensor; its Data is ignored.
func (w *Writer) AddLazy(t *tensor.Tensor, fill func() ([]byte, error)) error {
	n, err := ByteLen(t.DType, t.Shape)
	if err != nil {
		return fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
	}
	desc := &tensor.Tensor{Name: t.Name, DType: t.DType, Shape: t.Shape}
	if err := w.add(desc, n); err != nil {
		return err
	}
	w.lazy[t.Name] = fill
	return nil
}

// ByteLen is the size of a tensor of dtype d and shape in a safetensors
// file.
func ByteLen(d tensor.DType, shape []int) (int64, error) {
	if _, ok := dtypeName(d); !ok {
		return 0, fmt.Errorf("dtype %v cannot be stored (only f32, f16 and bf16)", d)
	}
	n := int64(1)
	for _, x := range shape {
		if x < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if x > 0 && n > math.MaxInt64/8/int64(x) {
			return 0, fmt.Errorf("shape %v overflows", shape)
		}
		n *= int64(x)
	}
	return n * int64(d.ElemSize()), nil
}

// SetMetadata records a string in the header's __metadata__.
func (w *Writer) SetMetadata(key, value string) {
	if w.meta == nil {
		w.meta = map[string]string{}
	}
	w.meta[key] = value
}

// AddU8 queues a tensor of dtype U8, one byte per element: how MXFP4
// checkpoints store their *_blocks and *_scales. data is not copied.
func (w *Writer) AddU8(name string, shape []int, data []byte) error {
	n := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > math.MaxInt32/d) {
			return fmt.Errorf("safetensors: tensor %q: bad shape %v", name, shape)
		}
		n *= d
	}
	if len(data) != n {
		return fmt.Errorf("safetensors: tensor %q: U8%v needs %d bytes, has %d", name, shape, n, len(data))
	}
	if w.u8 == nil {
		w.u8 = map[string]bool{}
	}
	if err := w.add(&tensor.Tensor{Name: name, Shape: shape, Data: data}, int64(n)); err != nil {
		return err
	}
	delete(w.sizes, name)
	w.u8[name] = true
	return nil
}

// Add queues a tensor. Its data is not copied, so it must not change until
// Close returns.
func (w *Writer) Add(t *tensor.Tensor) error {
	return w.add(t, -1)
}

// add queues t; size >= 0 gives the byte length of a lazy tensor.
func (w *Writer) add(t *tensor.Tensor, size int64) error {
	if w.closed {
		return fmt.Errorf("safetensors: tensor %q added after Close", t.Name)
	}
	if t.Name == metadataKey {
		return fmt.Errorf("safetensors: tensor name %q is reserved", t.Name)
	}
	if _, dup := w.tensors[t.Name]; dup {
		return fmt.Errorf("safetensors: tensor %q added twice", t.Name)
	}
	_, ok := dtypeName(t.DType)
	if !ok && !(t.DType == tensor.Invalid && size >= 0 && w.u8 != nil) { // AddU8's raw bytes
		return fmt.Errorf("safetensors: tensor %q: dtype %v cannot be stored (only f32, f16 and bf16)", t.Name, t.DType)
	}
	n := int64(1)
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", t.Name, t.Shape)
		}
		if d > 0 && n > math.MaxInt64/8/int64(d) {
			return fmt.Errorf("safetensors: tensor %q: shape %v overflows", t.Name, t.Shape)
		}
		n *= int64(d)
	}
	want := n * int64(max(t.DType.ElemSize(), 1))
	if size < 0 && int64(len(t.Data)) != want {
		return fmt.Errorf("safetensors: tensor %q: %v%v needs %d bytes, has %d", t.Name, t.DType, t.Shape, want, len(t.Data))
	}
	w.tensors[t.Name] = t
	if size >= 0 {
		w.sizes[t.Name] = size
	}
	return nil
}

// headerEntry is one tensor's header JSON; fields are in the order the
// reference implementation writes them.
type headerEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// Close writes the file. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	names := slices.Sorted(maps.Keys(w.tensors))
	top := make(map[string]any, len(names)+1) // encoding/json sorts map keys
	if len(w.meta) > 0 {
		top[metadataKey] = w.meta
	}
	var off int64
	for _, name := range names {
		t := w.tensors[name]
		dt, _ := dtypeName(t.DType)
		if w.u8[name] {
			dt = "U8"
		}
		shape := append([]int{}, t.Shape...) // a scalar must be [] rather than null
		n := int64(len(t.Data))
		if sz, ok := w.sizes[name]; ok {
			n = sz
		}
		top[name] = headerEntry{DType: dt, Shape: shape, DataOffsets: [2]int64{off, off + n}}
		off += n
	}
	var hdr bytes.Buffer
	enc := json.NewEncoder(&hdr)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(top); err != nil {
		return fmt.Errorf("safetensors: encoding header: %w", err)
	}
	hdr.Truncate(hdr.Len() - 1) // Encode's newline
	// Pad with spaces so the data starts 8-byte aligned, as the reference
	// writer does; readers that map the file can then view it in place.
	if pad := (8 - hdr.Len()%8) % 8; pad > 0 {
		hdr.WriteString(strings.Repeat(" ", pad))
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(hdr.Len()))
	if _, err := w.w.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("safetensors: writing header: %w", err)
	}
	if _, err := w.w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("safetensors: writing header: %w", err)
	}
	for _, name := range names {
		data := w.tensors[name].Data
		if fill, ok := w.lazy[name]; ok {
			var err error
			if data, err = fill(); err != nil {
				return fmt.Errorf("safetensors: tensor %q: %w", name, err)
			}
			if int64(len(data)) != w.sizes[name] {
				return fmt.Errorf("safetensors: tensor %q: produced %d bytes, declared %d", name, len(data), w.sizes[name])
			}
		}
		if _, err := w.w.Write(data); err != nil {
			return fmt.Errorf("safetensors: writing tensor %q: %w", name, err)
		}
	}
	return nil
}

// WriteFile writes tensors to a new safetensors file at path, with the
// given header metadata (may be nil).
func WriteFile(path string, metadata map[string]string, tensors ...*tensor.Tensor) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("safetensors: %w", cerr)
		}
	}()
	w := NewWriter(f)
	for k, v := range metadata {
		w.SetMetadata(k, v)
	}
	for _, t := range tensors {
		if err := w.Add(t); err != nil {
			return fmt.Errorf("%w (writing %s)", err, path)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("%w (writing %s)", err, path)
	}
	return nil
}
