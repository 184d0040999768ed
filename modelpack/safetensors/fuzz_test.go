package safetensors

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/tensor"
)

// FuzzReader checks that no input makes the Reader panic or allocate past
// the input's size, and that whatever it accepts reads back consistently
// and survives a rewrite by the Writer unchanged.
func FuzzReader(f *testing.F) {
	f.Add(rawFile(`{}`, nil))
	f.Add(rawFile(`{"__metadata__":{"format":"pt"},"w":`+f32x2+`}`, make([]byte, 8)))
	f.Add(rawFile(`{"a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add(rawFile(`{"a":`+f32x2+`,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), int64(len(data)), "fuzz.safetensors")
		if err != nil {
			return
		}
		var loaded []*tensor.Tensor
		for _, name := range r.Names() {
			info, ok := r.Info(name)
			if !ok {
				t.Fatalf("listed tensor %q has no Info", name)
			}
			if info.FileOffset+info.Size() > int64(len(data)) {
				t.Fatalf("tensor %q: range [%d, +%d) beyond %d-byte input", name, info.FileOffset, info.Size(), len(data))
			}
			x, err := r.Read(name)
			if _, ok := loadable(info.DType); !ok {
				if err == nil {
					t.Fatalf("tensor %q of dtype %s loaded", name, info.DType)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Read(%q): %v", name, err)
			}
			if int64(len(x.Data)) != info.Size() || !slices.Equal(x.Shape, info.Shape) {
				t.Fatalf("Read(%q) gave %d bytes of %v, Info says %d of %v", name, len(x.Data), x.Shape, info.Size(), info.Shape)
			}
			loaded = append(loaded, x)
		}
		// A rewrite of what loaded must read back identical.
		again := encode(t, r.Metadata(), loaded...)
		r2, err := NewReader(bytes.NewReader(again), int64(len(again)), "rewrite.safetensors")
		if err != nil {
			t.Fatalf("rewritten file does not parse: %v", err)
		}
		for _, x := range loaded {
			y, err := r2.Read(x.Name)
			if err != nil || !bytes.Equal(x.Data, y.Data) || !slices.Equal(x.Shape, y.Shape) {
				t.Fatalf("tensor %q changed in the rewrite (err %v)", x.Name, err)
			}
		}
	})
}

// FuzzParseIndex: model.safetensors.index.json parsing accepts or rejects
// any input without panicking, and never accepts a path outside the model.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"metadata":{"total_size":8},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}`))
	f.Add([]byte(`{"weight_map":{"a":"../x.safetensors"}}`))
	f.Add([]byte(`{"weight_map":{}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"weight_map":{"a":"..0"}}`))
	f.Add([]byte(`{"weight_mAp":{"a":"x"}}`))
	f.Add([]byte(`{"weight_map":{"a":"x"},"w":` + strings.Repeat("[", 1000) + `}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseIndex("model.safetensors.index.json", b)
		if err != nil {
			return
		}
		for name, file := range m {
			// A file name in the directory: one path element, not "." or
			// "..". Names like "..0" are fine.
			if file == "" || file == "." || file == ".." || strings.ContainsAny(file, `/\`) || filepath.Base(file) != file {
				t.Fatalf("accepted %q -> %q", name, file)
			}
		}
	})
}
