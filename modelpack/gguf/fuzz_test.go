package gguf

import (
	"bytes"
	"github.com/moderuntime/mode/internal/testmodel"
	"slices"
	"testing"
)

// FuzzReader checks that no input makes the reader panic or allocate past
// the input's size; that every tensor it accepts reads back with the size
// its info states and dequantises when its type is supported; that the
// model mapping never panics; and that what it accepts survives a rewrite
// by Write unchanged.
func FuzzReader(f *testing.F) {
	f.Add(encode(f, allValues()[:6], []WTensor{{Name: "a", Type: TypeF16, Dims: []int{2}, Values: []float32{1, 2}}}))
	f.Add(encode(f, []KV{{KeyAlignment, Scalar(uint32(8))}}, []WTensor{
		{Name: "q", Type: TypeQ4_0, Dims: []int{32}, Values: ramp(32, 1)},
		{Name: "k", Type: TypeQ4_K, Dims: []int{256}, Data: make([]byte, 144)},
	}))
	f.Add(spec{arch: "llama"}.model(f))
	f.Add(gptOssFile(f, gptOssConfig(), TypeQ8_0)) // gpt-oss: sinks, biases, MXFP4 experts
	ds := testmodel.Family("deepseek_v3", false)
	ds.RopeScale.Mscale = ds.RopeScale.MscaleAllDim
	ds.Layers, ds.FFN = 2, ds.FFN[:2] // a dense and a sparse layer
	f.Add(deepSeekGGUF(f, testmodel.Random(ds, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := NewReader(bytes.NewReader(data), int64(len(data)), "fuzz.gguf")
		if err != nil {
			return
		}
		var rewrite []WTensor
		for _, info := range file.Tensors() {
			if file.DataOffset+info.Offset+info.Size > int64(len(data)) {
				t.Fatalf("tensor %q: [%d, +%d) beyond the %d-byte input", info.Name, info.Offset, info.Size, len(data))
			}
			r, err := file.ReadRaw(info.Name)
			if err != nil {
				t.Fatalf("ReadRaw(%q): %v", info.Name, err)
			}
			if int64(len(r.Data)) != info.Size {
				t.Fatalf("ReadRaw(%q) gave %d bytes, info says %d", info.Name, len(r.Data), info.Size)
			}
			if _, ok := dequantizers(info.Type); ok {
				if _, err := DequantizeF32(r); err != nil {
					t.Fatalf("DequantizeF32(%q): %v", info.Name, err)
				}
			}
			rewrite = append(rewrite, WTensor{Name: r.Name, Type: r.Type, Dims: r.Dims, Data: r.Data})
		}
		if c, err := Config(file); err == nil {
			Sources(file, c)
		}
		Tokenizer(file)
		var again bytes.Buffer
		if err := Write(&again, file.KVs(), rewrite); err != nil {
			t.Fatalf("rewriting an accepted file: %v", err)
		}
		file2, err := NewReader(bytes.NewReader(again.Bytes()), int64(again.Len()), "rewrite.gguf")
		if err != nil {
			t.Fatalf("rewritten file does not parse: %v", err)
		}
		if len(file2.KVs()) != len(file.KVs()) {
			t.Fatalf("rewrite has %d keys, original %d", len(file2.KVs()), len(file.KVs()))
		}
		for _, w := range rewrite {
			r, err := file2.ReadRaw(w.Name)
			if err != nil || !bytes.Equal(r.Data, w.Data) || !slices.Equal(r.Dims, w.Dims) || r.Type != w.Type {
				t.Fatalf("tensor %q changed in the rewrite (err %v)", w.Name, err)
			}
		}
	})
}
