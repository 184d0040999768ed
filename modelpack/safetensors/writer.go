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
	closed  bool
}

// NewWriter returns a Writer that writes to w on Close.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, tensors: map[string]*tensor.Tensor{}}
}

// SetMetadata records a string in the header's __metadata__.
func (w *Writer) SetMetadata(key, value string) {
	if w.meta == nil {
		w.meta = map[string]string{}
	}
	w.meta[key] = value
}

// Add queues a tensor. Its data is not copied, so it must not change until
// Close returns.
func (w *Writer) Add(t *tensor.Tensor) error {
	if w.closed {
		return fmt.Errorf("safetensors: tensor %q added after Close", t.Name)
	}
	if t.Name == metadataKey {
		return fmt.Errorf("safetensors: tensor name %q is reserved", t.Name)
	}
	if _, dup := w.tensors[t.Name]; dup {
		return fmt.Errorf("safetensors: tensor %q added twice", t.Name)
	}
	if _, ok := dtypeName(t.DType); !ok {
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
	if want := n * int64(t.DType.ElemSize()); int64(len(t.Data)) != want {
		return fmt.Errorf("safetensors: tensor %q: %v%v needs %d bytes, has %d", t.Name, t.DType, t.Shape, want, len(t.Data))
	}
	w.tensors[t.Name] = t
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
		shape := append([]int{}, t.Shape...) // a scalar must be [] rather than null
		top[name] = headerEntry{DType: dt, Shape: shape, DataOffsets: [2]int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
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
		if _, err := w.w.Write(w.tensors[name].Data); err != nil {
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
