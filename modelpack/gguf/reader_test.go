package gguf

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// allValues has a value of every metadata type, arrays of each scalar
// type, and nested arrays of strings.
func allValues() []KV {
	return []KV{
		{"u8", Scalar(uint8(200))},
		{"i8", Scalar(int8(-100))},
		{"u16", Scalar(uint16(60000))},
		{"i16", Scalar(int16(-30000))},
		{"u32", Scalar(uint32(4000000000))},
		{"i32", Scalar(int32(-2000000000))},
		{"f32", Scalar(float32(1.5))},
		{"bool", Scalar(true)},
		{"string", Scalar("héllo")},
		{"empty string", Scalar("")},
		{"u64", Scalar(uint64(math.MaxUint64))},
		{"i64", Scalar(int64(math.MinInt64))},
		{"f64", Scalar(-2.25)},
		{"[]u8", Array([]uint8{0, 255})},
		{"[]i8", Array([]int8{-128, 127})},
		{"[]u16", Array([]uint16{1, 65535})},
		{"[]i16", Array([]int16{-1, 2})},
		{"[]u32", Array([]uint32{3, 4})},
		{"[]i32", Array([]int32{-5, 6})},
		{"[]f32", Array([]float32{0.5, -0.25})},
		{"[]bool", Array([]bool{true, false, true})},
		{"[]string", Array([]string{"a", "", "b c"})},
		{"[]u64", Array([]uint64{7})},
		{"[]i64", Array([]int64{-8})},
		{"[]f64", Array([]float64{9.5})},
		{"[]empty", Array([]uint32{})},
		{"[][]string", Arrays(Array([]string{"x", "y"}), Array([]string{}), Array([]string{"z"}))},
		{"[][]mixed", Arrays(Array([]int32{1}), Array([]string{"s"}), Arrays(Array([]bool{true})))},
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	kv := allValues()
	f := parse(t, encode(t, kv, nil))
	if f.Version != 3 || f.Alignment != DefaultAlignment {
		t.Errorf("version %d alignment %d, want 3 and %d", f.Version, f.Alignment, DefaultAlignment)
	}
	got := f.KVs()
	if len(got) != len(kv) {
		t.Fatalf("read %d keys, wrote %d", len(got), len(kv))
	}
	for i, want := range kv {
		g := got[i]
		if g.Key != want.Key || g.Value.Type() != want.Value.Type() || g.Value.ElemType() != want.Value.ElemType() || !reflect.DeepEqual(g.Value.Any(), want.Value.Any()) {
			t.Errorf("entry %d: read %q = %s %v, wrote %q = %s %v", i, g.Key, g.Value.Type(), g.Value, want.Key, want.Value.Type(), want.Value)
		}
		if v, ok := f.Get(want.Key); !ok || !reflect.DeepEqual(v.Any(), want.Value.Any()) {
			t.Errorf("Get(%q) = %v, %v", want.Key, v, ok)
		}
	}
}

func TestValueAccessors(t *testing.T) {
	if x, ok := Scalar(uint16(7)).Int(); !ok || x != 7 {
		t.Errorf("Int of uint16 = %d, %v", x, ok)
	}
	if _, ok := Scalar(uint64(math.MaxUint64)).Int(); ok {
		t.Error("Int of MaxUint64 reported ok")
	}
	if _, ok := Scalar("1").Int(); ok {
		t.Error("Int of a string reported ok")
	}
	if x, ok := Scalar(float32(0.5)).Float(); !ok || x != 0.5 {
		t.Errorf("Float = %v, %v", x, ok)
	}
	if xs, ok := Array([]uint8{1, 2}).Ints(); !ok || !slices.Equal(xs, []int64{1, 2}) {
		t.Errorf("Ints = %v, %v", xs, ok)
	}
	if _, ok := Array([]float32{1}).Ints(); ok {
		t.Error("Ints of floats reported ok")
	}
	if n := Arrays(Array([]string{"a"}), Array([]string{"b"})).Len(); n != 2 {
		t.Errorf("Len = %d", n)
	}
}

func TestAlignment(t *testing.T) {
	for _, a := range []uint32{1, 8, 64, 4096} {
		b := encode(t, []KV{{KeyAlignment, Scalar(a)}}, []WTensor{
			{Name: "a", Type: TypeF32, Dims: []int{3}, Values: []float32{1, 2, 3}},
			{Name: "b", Type: TypeF32, Dims: []int{1}, Values: []float32{4}},
		})
		f := parse(t, b)
		if f.Alignment != int64(a) || f.DataOffset%int64(a) != 0 {
			t.Errorf("alignment %d: file says %d, data at %d", a, f.Alignment, f.DataOffset)
		}
		info, _ := f.Tensor("b")
		if info.Offset%int64(a) != 0 {
			t.Errorf("alignment %d: tensor b at %d", a, info.Offset)
		}
		r, err := f.ReadRaw("b")
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := DequantizeF32(r); !slices.Equal(v, []float32{4}) {
			t.Errorf("alignment %d: b = %v", a, v)
		}
	}
}

func TestTensorRoundTrip(t *testing.T) {
	const rows, cols = 3, 64
	vals := make([]float32, rows*cols)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i)*0.37)) * float32(1+i%5)
	}
	tests := []struct {
		typ GGMLType
		// tol is the largest error allowed for an element of a block whose
		// largest magnitude is amax.
		tol func(amax float32) float32
	}{
		{TypeF32, func(float32) float32 { return 0 }},
		{TypeF16, func(amax float32) float32 { return amax / 1024 }},
		{TypeBF16, func(amax float32) float32 { return amax / 128 }},
		{TypeQ8_0, func(amax float32) float32 { return amax/127/2 + amax/1024 }},
		// Q4_0's scale is amax/8, and the opposite extreme clamps to q=15:
		// an error of up to one step.
		{TypeQ4_0, func(amax float32) float32 { return amax/8 + amax/1024 }},
	}
	var ts []WTensor
	for _, tt := range tests {
		ts = append(ts, WTensor{Name: "w." + tt.typ.String(), Type: tt.typ, Dims: []int{cols, rows}, Values: vals})
	}
	f := parse(t, encode(t, nil, ts))
	for _, tt := range tests {
		name := "w." + tt.typ.String()
		info, ok := f.Tensor(name)
		if !ok || info.Type != tt.typ || !slices.Equal(info.Dims, []int{cols, rows}) || !slices.Equal(info.Shape(), []int{rows, cols}) {
			t.Fatalf("%s: info %+v", name, info)
		}
		r, err := f.ReadRaw(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DequantizeF32(r)
		if err != nil {
			t.Fatal(err)
		}
		for b := 0; b < len(vals); b += 32 {
			var amax float32
			for _, v := range vals[b : b+32] {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			for i := b; i < b+32; i++ {
				if d := float32(math.Abs(float64(got[i] - vals[i]))); d > tt.tol(amax) {
					t.Fatalf("%s: element %d = %v, wrote %v (error %v > %v)", name, i, got[i], vals[i], d, tt.tol(amax))
				}
			}
		}
	}
}

// TestQuantsExact writes blocks whose quants are known and checks that
// Q8_0Blocks and Q4_0Blocks give them back exactly.
func TestQuantsExact(t *testing.T) {
	// Q8_0: the largest magnitude is 127, so d = 1 and q = x.
	q8 := make([]float32, 64)
	for i := range q8 {
		q8[i] = float32(i - 40)
	}
	q8[0], q8[33] = 127, -127
	// Q4_0: the largest magnitude is -8 (first), so d = 1 and q = x+8.
	q4 := make([]float32, 64)
	for i := range q4 {
		q4[i] = float32(i%16 - 8)
	}
	q4[40] = 2 // block 1: -8 at element 32 still has the largest magnitude
	f := parse(t, encode(t, nil, []WTensor{
		{Name: "q8", Type: TypeQ8_0, Dims: []int{32, 2}, Values: q8},
		{Name: "q4", Type: TypeQ4_0, Dims: []int{64}, Values: q4},
	}))
	r8, _ := f.ReadRaw("q8")
	scales, q, err := Q8_0Blocks(r8)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(scales, []float32{1, 1}) {
		t.Errorf("q8_0 scales %v, want [1 1]", scales)
	}
	for i, x := range q8 {
		if int8(x) != q[i] {
			t.Fatalf("q8_0 quant %d = %d, want %d", i, q[i], int8(x))
		}
	}
	r4, _ := f.ReadRaw("q4")
	scales, u, err := Q4_0Blocks(r4)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(scales, []float32{1, 1}) {
		t.Errorf("q4_0 scales %v, want [1 1]", scales)
	}
	for i, x := range q4 {
		if uint8(x+8) != u[i] {
			t.Fatalf("q4_0 quant %d = %d, want %d", i, u[i], uint8(x+8))
		}
	}
	// ggml packs element j with element j+16: byte 0 of block 0 holds
	// quants 0 (low) and 16 (high).
	if got := r4.Data[2]; got != 0|0<<4 {
		t.Errorf("q4_0 first packed byte %#x, want 0x00", got)
	}
	if got := r4.Data[3]; got != 1|1<<4 {
		t.Errorf("q4_0 second packed byte %#x, want 0x11", got)
	}
	if _, _, err := Q4_0Blocks(r8); err == nil {
		t.Error("Q4_0Blocks accepted a q8_0 tensor")
	}
}

// TestQuantizeReference checks the reference quantisers' rounding rules.
func TestQuantizeReference(t *testing.T) {
	// Q8_0: d = 2/127; 1 → round(63.5) = 64 (half away from zero), -1 → -64.
	x := make([]float32, 32)
	x[0], x[1], x[2] = 2, 1, -1
	b, err := Quantize(TypeQ8_0, x)
	if err != nil {
		t.Fatal(err)
	}
	if got := []int8{int8(b[2]), int8(b[3]), int8(b[4])}; !slices.Equal(got, []int8{127, 64, -64}) {
		t.Errorf("q8_0 quants %v, want [127 64 -64]", got)
	}
	// Q4_0 with a positive extreme: m = 4, d = -0.5, so 4 → q 0, -4 → 16
	// clamped to 15, 1 → trunc(-2+8.5) = 6.
	x = make([]float32, 32)
	x[0], x[1], x[2] = 4, -4, 1
	if b, err = Quantize(TypeQ4_0, x); err != nil {
		t.Fatal(err)
	}
	r := RawTensor{Name: "x", Type: TypeQ4_0, Dims: []int{32}, Data: b}
	scales, q, _ := Q4_0Blocks(r)
	if scales[0] != -0.5 || !slices.Equal(q[:3], []uint8{0, 15, 6}) || q[3] != 8 {
		t.Errorf("q4_0: scale %v quants %v, want -0.5 and [0 15 6 8]", scales[0], q[:4])
	}
	if _, err := Quantize(TypeQ8_0, []float32{1}); err == nil {
		t.Error("Quantize accepted a partial block")
	}
	nan := make([]float32, 32)
	nan[5] = float32(math.NaN())
	wantError(t, func() error { _, err := Quantize(TypeQ4_0, nan); return err }(), "element 5")
	wantError(t, func() error { _, err := Quantize(TypeQ4_K, x); return err }(), "q4_K")
}

func TestExpertSlice(t *testing.T) {
	vals := ramp(32*3*4, 0.5)
	f := parse(t, encode(t, nil, []WTensor{{Name: "exps", Type: TypeQ8_0, Dims: []int{32, 3, 4}, Values: vals}}))
	all, _ := f.ReadRaw("exps")
	whole, err := DequantizeF32(all)
	if err != nil {
		t.Fatal(err)
	}
	for e := range 4 {
		x, err := ExpertSlice(all, e)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(x.Dims, []int{32, 3}) || x.Type != TypeQ8_0 {
			t.Fatalf("expert %d: %s%v", e, x.Type, x.Dims)
		}
		got, err := DequantizeF32(x)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, whole[e*96:(e+1)*96]) {
			t.Errorf("expert %d differs from its part of the whole", e)
		}
	}
	wantError(t, func() error { _, err := ExpertSlice(all, 4); return err }(), "expert 4 out of range")
	two, _ := ExpertSlice(all, 0)
	wantError(t, func() error { _, err := ExpertSlice(two, 0); return err }(), "three")
}

func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, encode(t, []KV{{"k", Scalar("v")}}, []WTensor{{Name: "t", Type: TypeF16, Dims: []int{2}, Values: []float32{1, -2}}}), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := f.ReadRaw("t")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := DequantizeF32(r); !slices.Equal(v, []float32{1, -2}) {
		t.Errorf("t = %v", v)
	}
	wantError(t, func() error { _, err := f.ReadRaw("nope"); return err }(), "m.gguf", `"nope"`)
	_, err = Open(filepath.Join(t.TempDir(), "missing.gguf"))
	wantError(t, err, "missing.gguf")
}

func TestWriteErrors(t *testing.T) {
	f32 := func(name string, dims []int, n int) WTensor {
		return WTensor{Name: name, Type: TypeF32, Dims: dims, Values: make([]float32, n)}
	}
	tests := []struct {
		name    string
		kv      []KV
		tensors []WTensor
		want    string
	}{
		{"duplicate key", []KV{{"a", Scalar(1.0)}, {"a", Scalar(2.0)}}, nil, `key "a" given twice`},
		{"zero value", []KV{{"z", Value{}}}, nil, `key "z": value is unset`},
		{"nested non-array", []KV{{"n", Arrays(Scalar("x"))}}, nil, `key "n": element 0`},
		{"alignment type", []KV{{KeyAlignment, Scalar(uint64(32))}}, nil, "uint32 power of two"},
		{"alignment value", []KV{{KeyAlignment, Scalar(uint32(48))}}, nil, "uint32 power of two"},
		{"duplicate tensor", nil, []WTensor{f32("t", []int{1}, 1), f32("t", []int{1}, 1)}, `tensor "t" given twice`},
		{"wrong length", nil, []WTensor{f32("t", []int{2}, 3)}, `tensor "t"`},
		{"both set", nil, []WTensor{{Name: "t", Type: TypeF32, Dims: []int{1}, Values: []float32{1}, Data: []byte{0, 0, 0, 0}}}, "exactly one"},
		{"partial block", nil, []WTensor{{Name: "q", Type: TypeQ8_0, Dims: []int{16, 2}, Values: make([]float32, 32)}}, "row length 16"},
		{"raw size", nil, []WTensor{{Name: "k", Type: TypeQ4_K, Dims: []int{256}, Data: make([]byte, 143)}}, "needs 144 bytes"},
		{"no dims", nil, []WTensor{f32("t", nil, 0)}, "0 dimensions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b []byte
			err := Write(writerFunc(func(p []byte) (int, error) { b = append(b, p...); return len(p), nil }), tt.kv, tt.tensors)
			wantError(t, err, tt.want)
		})
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }
