package gguf

import (
	"bytes"
	"testing"
)

// TestReadErrors feeds hand-built malformed headers to NewReader and checks
// that each error names the file, the key or tensor, and the problem.
func TestReadErrors(t *testing.T) {
	// one builds a file with one metadata entry and one f32[4] tensor
	// named "w", letting a test change any part.
	type part struct {
		version      uint32
		tensors, kvs uint64
		kv           func(r *raw)
		name         string
		dims         []uint64
		typ          GGMLType
		off          uint64
		data         int
		second       bool   // add tensor "v" f32[4] at secondOff
		secondOff    uint64 // relative offset of "v"
		secondName   string
		skipPad      bool
	}
	build := func(p part) []byte {
		r := &raw{}
		r.header(p.version, p.tensors, p.kvs)
		p.kv(r)
		r.tensorInfo(p.name, p.dims, p.typ, p.off)
		if p.second {
			r.tensorInfo(p.secondName, []uint64{4}, TypeF32, p.secondOff)
		}
		if !p.skipPad {
			r.pad(32)
		}
		r.Write(make([]byte, p.data))
		return r.Bytes()
	}
	good := func() part {
		return part{
			version: 3, tensors: 1, kvs: 1,
			kv:   func(r *raw) { r.str("general.architecture").u32(uint32(TypeString)).str("llama") },
			name: "w", dims: []uint64{4}, typ: TypeF32, off: 0, data: 16,
		}
	}
	if _, err := NewReader(bytes.NewReader(build(good())), int64(len(build(good()))), "x.gguf"); err != nil {
		t.Fatalf("the base file does not parse: %v", err)
	}
	kvOf := func(write func(r *raw)) func(r *raw) { return write }
	tests := []struct {
		name string
		edit func(p *part)
		raw  []byte // used instead of build when set
		want []string
	}{
		{name: "empty", raw: []byte{}, want: []string{"reading magic"}},
		{name: "bad magic", raw: []byte("GGML\x03\x00\x00\x00"), want: []string{"bad magic"}},
		{name: "version 1", edit: func(p *part) { p.version = 1 }, want: []string{"version 1 is not supported"}},
		{name: "version 4", edit: func(p *part) { p.version = 4 }, want: []string{"version 4"}},
		{name: "big-endian", edit: func(p *part) { p.version = 3 << 24 }, want: []string{"big-endian"}},
		{name: "tensor count", edit: func(p *part) { p.tensors = 1 << 40 }, want: []string{"tensor count 1099511627776 is impossible"}},
		{name: "metadata count", edit: func(p *part) { p.kvs = 1 << 62 }, want: []string{"metadata count", "impossible"}},
		{name: "key length", edit: func(p *part) { p.kv = kvOf(func(r *raw) { r.u64(1 << 50) }) }, want: []string{"metadata entry 0", "string length 1125899906842624 exceeds"}},
		{name: "string value length", edit: func(p *part) {
			p.kv = kvOf(func(r *raw) { r.str("general.name").u32(uint32(TypeString)).u64(1 << 40) })
		}, want: []string{`key "general.name"`, "string length"}},
		{name: "unknown value type", edit: func(p *part) { p.kv = kvOf(func(r *raw) { r.str("k").u32(13) }) }, want: []string{`key "k"`, "unknown value type 13"}},
		{name: "unknown array type", edit: func(p *part) {
			p.kv = kvOf(func(r *raw) { r.str("k").u32(uint32(TypeArray)).u32(99).u64(0) })
		}, want: []string{`key "k"`, "array of unknown value type 99"}},
		{name: "array length", edit: func(p *part) {
			p.kv = kvOf(func(r *raw) { r.str("k").u32(uint32(TypeArray)).u32(uint32(TypeUint64)).u64(1 << 30) })
		}, want: []string{`key "k"`, "array length 1073741824 is impossible"}},
		{name: "array string element", edit: func(p *part) {
			p.kv = kvOf(func(r *raw) {
				r.str("tokens").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(2).str("a").u64(1 << 40)
			})
		}, want: []string{`key "tokens"`, "array element 1", "string length"}},
		{name: "deep nesting", edit: func(p *part) {
			p.kv = kvOf(func(r *raw) {
				r.str("deep").u32(uint32(TypeArray))
				for range maxNesting + 1 {
					r.u32(uint32(TypeArray)).u64(1)
				}
			})
		}, want: []string{`key "deep"`, "nested more than"}},
		{name: "bool byte", edit: func(p *part) { p.kv = kvOf(func(r *raw) { r.str("b").u32(uint32(TypeBool)).u8(2) }) }, want: []string{`key "b"`, "bool byte is 2"}},
		{name: "duplicate key", edit: func(p *part) {
			p.kvs = 2
			p.kv = kvOf(func(r *raw) { r.str("k").u32(uint32(TypeUint8)).u8(1).str("k").u32(uint32(TypeUint8)).u8(2) })
		}, want: []string{`key "k" appears twice`}},
		{name: "alignment type", edit: func(p *part) { p.kv = kvOf(func(r *raw) { r.str(KeyAlignment).u32(uint32(TypeUint64)).u64(32) }) }, want: []string{KeyAlignment, "is uint64, want uint32"}},
		{name: "alignment value", edit: func(p *part) { p.kv = kvOf(func(r *raw) { r.str(KeyAlignment).u32(uint32(TypeUint32)).u32(24) }) }, want: []string{KeyAlignment, "24 is not a power of two"}},
		{name: "no dims", edit: func(p *part) { p.dims = nil }, want: []string{`tensor 0 "w"`, "0 dimensions"}},
		{name: "too many dims", edit: func(p *part) { p.dims = []uint64{1, 1, 1, 1, 4} }, want: []string{`"w"`, "5 dimensions"}},
		{name: "zero dim", edit: func(p *part) { p.dims = []uint64{4, 0} }, want: []string{`"w"`, "dimension 1 is 0"}},
		{name: "huge dim", edit: func(p *part) { p.dims = []uint64{1 << 40} }, want: []string{`"w"`, "dimension 0 is 1099511627776"}},
		{name: "unknown ggml type", edit: func(p *part) { p.typ = 31 }, want: []string{`"w"`, "unknown ggml type 31"}},
		{name: "partial block", edit: func(p *part) { p.typ, p.dims = TypeQ4_K, []uint64{128} }, want: []string{`"w"`, "row length 128 is not a multiple of the q4_K block size 256"}},
		{name: "misaligned offset", edit: func(p *part) { p.off = 8 }, want: []string{`"w"`, "offset 8 is not a multiple of the alignment 32"}},
		{name: "data past EOF", edit: func(p *part) { p.data = 15 }, want: []string{`tensor "w"`, "runs past the end"}},
		{name: "offset past EOF", edit: func(p *part) { p.off = 1 << 60 }, want: []string{`tensor "w"`, "runs past the end"}},
		{name: "no data section", edit: func(p *part) { p.skipPad, p.data = true, 0 }, want: []string{"past the end of the"}},
		{name: "duplicate tensor", edit: func(p *part) {
			p.tensors, p.second, p.secondName, p.secondOff, p.data = 2, true, "w", 32, 48
		}, want: []string{`tensor "w" appears twice`}},
		{name: "overlap", edit: func(p *part) {
			p.tensors, p.second, p.secondName, p.secondOff, p.data, p.dims = 2, true, "v", 32, 64, []uint64{12}
		}, want: []string{`tensor "v"`, `overlaps tensor "w"`}},
		{name: "truncated tensor info", raw: build(good())[:74], want: []string{"tensor 0", "file ends early"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.raw
			if b == nil {
				p := good()
				tt.edit(&p)
				b = build(p)
			}
			_, err := NewReader(bytes.NewReader(b), int64(len(b)), "x.gguf")
			wantError(t, err, append([]string{"gguf: x.gguf: "}, tt.want...)...)
		})
	}
}

// TestDequantizeErrors checks that raw tensors whose bytes do not match
// their description, or whose type has no dequantiser, are refused.
func TestDequantizeErrors(t *testing.T) {
	tests := []struct {
		raw  RawTensor
		want string
	}{
		{RawTensor{Name: "short", Type: TypeQ8_0, Dims: []int{32}, Data: make([]byte, 33)}, `"short": q8_0[32] needs 34 bytes, has 33`},
		{RawTensor{Name: "iq", Type: TypeIQ2_XXS, Dims: []int{256}, Data: make([]byte, 66)}, `"iq": dequantising iq2_xxs is not supported`},
		{RawTensor{Name: "neg", Type: TypeF32, Dims: []int{-1}, Data: nil}, `"neg": bad dimensions`},
		{RawTensor{Name: "odd", Type: GGMLType(99), Dims: []int{1}, Data: nil}, `"odd": unknown ggml type 99`},
	}
	for _, tt := range tests {
		_, err := DequantizeF32(tt.raw)
		wantError(t, err, tt.want)
	}
}
