package safetensors

import (
	"bytes"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/tensor"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		dtype tensor.DType
		shape []int
	}{
		{"f32 matrix", tensor.F32, []int{3, 5}},
		{"f16 matrix", tensor.F16, []int{4, 2}},
		{"bf16 matrix", tensor.BF16, []int{2, 7}},
		{"f32 vector", tensor.F32, []int{9}},
		{"f16 scalar", tensor.F16, []int{}},
		{"bf16 3d", tensor.BF16, []int{2, 3, 4}},
		{"f32 empty", tensor.F32, []int{0, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := []*tensor.Tensor{
				ramp("b.weight", tt.dtype, 1, tt.shape...),
				ramp("a.weight", tt.dtype, 100, tt.shape...),
				ramp("c.bias", tensor.F32, 7, 3),
			}
			file := encode(t, map[string]string{"format": "pt"}, want...)
			r, err := NewReader(bytes.NewReader(file), int64(len(file)), "mem.safetensors")
			if err != nil {
				t.Fatal(err)
			}
			if got, wantNames := r.Names(), []string{"a.weight", "b.weight", "c.bias"}; !slices.Equal(got, wantNames) {
				t.Errorf("Names = %v, want %v", got, wantNames)
			}
			if got := r.Metadata()["format"]; got != "pt" {
				t.Errorf("metadata format = %q, want pt", got)
			}
			for _, w := range want {
				info, ok := r.Info(w.Name)
				if !ok {
					t.Fatalf("Info(%q) missing", w.Name)
				}
				if info.File != "mem.safetensors" || !slices.Equal(info.Shape, w.Shape) || info.Size() != int64(len(w.Data)) {
					t.Errorf("Info(%q) = %+v, want shape %v and %d bytes", w.Name, info, w.Shape, len(w.Data))
				}
				if info.FileOffset%8 != 0 && info.DataOffsets[0] == 0 {
					t.Errorf("data section of %q is not 8-byte aligned (offset %d)", w.Name, info.FileOffset)
				}
				got, err := r.Read(w.Name)
				if err != nil {
					t.Fatal(err)
				}
				if got.DType != w.DType || !slices.Equal(got.Shape, w.Shape) || !bytes.Equal(got.Data, w.Data) {
					t.Errorf("Read(%q) = %v%v %d bytes, want %v%v %d bytes", w.Name, got.DType, got.Shape, len(got.Data), w.DType, w.Shape, len(w.Data))
				}
			}
		})
	}
}

func TestWriterDeterministic(t *testing.T) {
	a := ramp("a", tensor.F32, 1, 2, 2)
	b := ramp("b", tensor.BF16, 2, 3)
	meta := map[string]string{"format": "pt", "x": "y"}
	first := encode(t, meta, a, b)
	second := encode(t, meta, b, a) // the order of Add must not matter
	if !bytes.Equal(first, second) {
		t.Error("two writes of the same tensors differ")
	}
}

func TestWriterRejects(t *testing.T) {
	tests := []struct {
		name string
		add  []*tensor.Tensor
		want string
	}{
		{"duplicate", []*tensor.Tensor{ramp("a", tensor.F32, 0, 2), ramp("a", tensor.F32, 0, 2)}, `tensor "a" added twice`},
		{"reserved name", []*tensor.Tensor{ramp(metadataKey, tensor.F32, 0, 2)}, "reserved"},
		{"quantised", []*tensor.Tensor{{Name: "q", DType: tensor.Q8_0, Shape: []int{32}, Data: make([]byte, 34)}}, `tensor "q": dtype q8_0`},
		{"short data", []*tensor.Tensor{{Name: "s", DType: tensor.F32, Shape: []int{4}, Data: make([]byte, 8)}}, `tensor "s": f32[4] needs 16 bytes, has 8`},
		{"negative", []*tensor.Tensor{{Name: "n", DType: tensor.F32, Shape: []int{-1}}}, `tensor "n": negative dimension`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWriter(io.Discard)
			var err error
			for _, x := range tt.add {
				if err = w.Add(x); err != nil {
					break
				}
			}
			wantErr(t, err, tt.want)
		})
	}
}

func TestOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	w := ramp("w", tensor.F16, 3, 4, 4)
	if err := WriteFile(path, nil, w); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Read("w")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, w.Data) {
		t.Error("data differs after WriteFile and Open")
	}
	if r.Metadata() != nil {
		t.Errorf("Metadata = %v, want nil for a file without __metadata__", r.Metadata())
	}
	if _, err := Open(filepath.Join(t.TempDir(), "absent.safetensors")); err == nil {
		t.Error("Open of a missing file succeeded")
	}
}

const f32x2 = `{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`

func TestMalformed(t *testing.T) {
	valid := encode(t, nil, ramp("w", tensor.F32, 0, 4))
	hugeLen := rawFile("{}", nil)
	copy(hugeLen, []byte{0, 0, 0, 0x10, 0, 0, 0, 0}) // 256 MiB
	tests := []struct {
		name string
		file []byte
		want []string // besides the file name
	}{
		{"too short", []byte{1, 2, 3}, []string{"too short"}},
		{"header longer than file", rawFile(`{}`, nil)[:9], []string{"header length 2 exceeds"}},
		{"absurd header length", hugeLen, []string{"exceeds the 104857600-byte limit"}},
		{"tiny header", rawFile(`{`, nil), []string{"too small"}},
		{"invalid JSON", rawFile(`{"w": {`, nil), []string{"invalid JSON"}},
		{"trailing data", rawFile(`{} {}`, nil), []string{"invalid JSON", "after the top-level"}},
		{"not an object", rawFile(`[1, 2]`, nil), []string{"not a JSON object"}},
		{"invalid UTF-8", rawFile("{\"\xff\": 1}", nil), []string{"UTF-8"}},
		{"duplicate tensor", rawFile(`{"w":`+f32x2+`,"w":`+f32x2+`}`, make([]byte, 8)), []string{`tensor "w"`, "more than once"}},
		{"duplicate field", rawFile(`{"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{`tensor "w"`, `duplicate key "dtype"`}},
		{"duplicate metadata", rawFile(`{"__metadata__":{"a":"1","a":"2"}}`, nil), []string{`__metadata__: duplicate key "a"`}},
		{"metadata not strings", rawFile(`{"__metadata__":{"a":1}}`, nil), []string{"__metadata__ must map strings to strings"}},
		{"entry not object", rawFile(`{"w": 5}`, nil), []string{`tensor "w"`, "bad entry"}},
		{"dtype in other case", rawFile(`{"w":{"DTYPE":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{`tensor "w"`, "missing dtype"}},
		{"missing dtype", rawFile(`{"w":{"shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{`tensor "w"`, "missing dtype"}},
		{"missing shape", rawFile(`{"w":{"dtype":"F32","data_offsets":[0,8]}}`, make([]byte, 8)), []string{`tensor "w"`, "missing shape"}},
		{"unknown dtype", rawFile(`{"w":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{`tensor "w"`, `unknown dtype "Q9"`}},
		{"three offsets", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}`, make([]byte, 8)), []string{`tensor "w"`, "want 2"}},
		{"negative dimension", rawFile(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{`tensor "w"`, "negative dimension"}},
		{"fractional dimension", rawFile(`{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{`tensor "w"`, "bad entry"}},
		{"overflowing shape", rawFile(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{`tensor "w"`, "overflow"}},
		{"overflowing bytes", rawFile(`{"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{`tensor "w"`, "overflows the byte size"}},
		{"negative offset", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, make([]byte, 8)), []string{`tensor "w"`, "negative data_offsets"}},
		{"begin after end", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, make([]byte, 8)), []string{`tensor "w"`, "begin after end"}},
		{"offsets out of range", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, make([]byte, 8)), []string{`tensor "w"`, "run past the 8-byte data section"}},
		{"length mismatch", rawFile(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{`tensor "w"`, "needs 12"}},
		{"overlap", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)),
			[]string{`tensor "b"`, `overlap tensor "a"`}},
		{"truncated", valid[:len(valid)-3], []string{`tensor "w"`, "truncated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.file), int64(len(tt.file)), "bad.safetensors")
			wantErr(t, err, append([]string{"bad.safetensors"}, tt.want...)...)
		})
	}
}

func TestValidEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		file []byte
	}{
		{"empty header", rawFile(`{}`, nil)},
		{"padded header", rawFile(`{"w":`+f32x2+`}      `, make([]byte, 8))},
		{"gap between tensors", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 12))},
		{"empty tensor inside another", rawFile(`{"a":`+f32x2+`,"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, make([]byte, 8))},
		{"unknown entry field", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":true}}`, make([]byte, 8))},
		{"sub-byte dtype", rawFile(`{"w":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}`, make([]byte, 2))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewReader(bytes.NewReader(tt.file), int64(len(tt.file)), "ok.safetensors"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUnsupportedDType(t *testing.T) {
	file := rawFile(`{"i":{"dtype":"I8","shape":[4],"data_offsets":[0,4]},"d":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 16))
	r, err := NewReader(bytes.NewReader(file), int64(len(file)), "mixed.safetensors")
	if err != nil {
		t.Fatal(err) // listing must work even though two tensors cannot load
	}
	if got := r.Names(); !slices.Equal(got, []string{"d", "i", "w"}) {
		t.Errorf("Names = %v", got)
	}
	for name, dtype := range map[string]string{"i": "I8", "d": "F64"} {
		info, _ := r.Info(name)
		if info.DType != dtype {
			t.Errorf("Info(%q).DType = %q, want %q", name, info.DType, dtype)
		}
		_, err := r.Read(name)
		wantErr(t, err, "mixed.safetensors", `tensor "`+name+`"`, "dtype "+dtype, "not supported")
	}
	if _, err := r.Read("w"); err != nil {
		t.Errorf("Read(w): %v", err)
	}
	_, err = r.Read("absent")
	wantErr(t, err, "mixed.safetensors", `no tensor "absent"`)
}

// shrunk claims more bytes than it holds, as a file truncated after the
// header was read would.
type shrunk struct{ *bytes.Reader }

func TestReadAfterTruncation(t *testing.T) {
	file := encode(t, nil, ramp("w", tensor.F32, 0, 8))
	short := file[:len(file)-5]
	r, err := NewReader(shrunk{bytes.NewReader(short)}, int64(len(file)), "gone.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Read("w")
	wantErr(t, err, "gone.safetensors", `tensor "w"`, "unexpected EOF")
}

func TestInfoIsACopy(t *testing.T) {
	file := encode(t, nil, ramp("w", tensor.F32, 0, 2, 3))
	r, err := NewReader(bytes.NewReader(file), int64(len(file)), "m")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := r.Info("w")
	info.Shape[0] = 99
	r.Names()[0] = "changed"
	again, _ := r.Info("w")
	if again.Shape[0] != 2 || !strings.EqualFold(r.Names()[0], "w") {
		t.Error("editing returned slices changed the Reader")
	}
}
