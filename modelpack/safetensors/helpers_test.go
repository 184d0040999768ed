package safetensors

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/tensor"
)

// rawFile assembles a file from a literal header and data section, so tests
// can state malformed headers exactly.
func rawFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// encode writes tensors with a Writer and returns the file's bytes.
func encode(t *testing.T, meta map[string]string, ts ...*tensor.Tensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for k, v := range meta {
		w.SetMetadata(k, v)
	}
	for _, x := range ts {
		if err := w.Add(x); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ramp returns a tensor of the given dtype whose bytes count up from seed,
// which makes misplaced offsets visible.
func ramp(name string, dt tensor.DType, seed byte, shape ...int) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]byte, n*dt.ElemSize())
	for i := range data {
		data[i] = seed + byte(i)
	}
	return &tensor.Tensor{Name: name, DType: dt, Shape: shape, Data: data}
}

// wantErr fails unless err is non-nil and mentions every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}
