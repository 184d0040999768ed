package wasmsimd

import "math"

// This file is a WebAssembly binary encoder for exactly what the kernels
// need: one imported (or, for tests, defined and exported) memory,
// functions of i32/f32 parameters, and the handful of core and SIMD128
// instructions they use. Opcodes follow the WebAssembly 2.0 core spec
// (§5.4) and its fixed-width SIMD extension.

// valType is a value type's encoding.
type valType byte

const (
	i32  valType = 0x7f
	f32  valType = 0x7d
	v128 valType = 0x7b
)

// fn is one function being assembled: its signature, locals beyond the
// parameters, and its body.
type fn struct {
	name    string
	params  []valType
	results []valType
	locals  []valType
	code    []byte
}

// local adds a local of type t and returns its index.
func (f *fn) local(t valType) uint32 {
	f.locals = append(f.locals, t)
	return uint32(len(f.params) + len(f.locals) - 1)
}

// localsOf adds n locals of type t and returns their indices.
func (f *fn) localsOf(t valType, n int) []uint32 {
	ls := make([]uint32, n)
	for k := range ls {
		ls[k] = f.local(t)
	}
	return ls
}

func (f *fn) op(b ...byte) { f.code = append(f.code, b...) }

func (f *fn) uleb(v uint32) { f.code = appendULEB(f.code, v) }

// simd emits a SIMD-prefixed instruction (0xfd, then its opcode as a
// u32 LEB128).
func (f *fn) simd(op uint32) { f.op(0xfd); f.uleb(op) }

// memarg is an alignment hint (log2 bytes) and a static offset.
func (f *fn) memarg(align, offset uint32) { f.uleb(align); f.uleb(offset) }

// Structured control. Blocks have no result (type 0x40).
func (f *fn) block()            { f.op(0x02, 0x40) }
func (f *fn) loop()             { f.op(0x03, 0x40) }
func (f *fn) end()              { f.op(0x0b) }
func (f *fn) br(depth uint32)   { f.op(0x0c); f.uleb(depth) }
func (f *fn) brIf(depth uint32) { f.op(0x0d); f.uleb(depth) }
func (f *fn) ret()              { f.op(0x0f) }
func (f *fn) sel()              { f.op(0x1b) }
func (f *fn) drop()             { f.op(0x1a) }

func (f *fn) get(i uint32) { f.op(0x20); f.uleb(i) }
func (f *fn) set(i uint32) { f.op(0x21); f.uleb(i) }
func (f *fn) tee(i uint32) { f.op(0x22); f.uleb(i) }

// rowPtr sets local to to base + nb·(idx+k)·scale: the address of row
// idx+k of a matrix whose rows are nb blocks of scale bytes.
func (f *fn) rowPtr(to, base, nb, idx uint32, scale int32, k int) {
	f.get(base)
	f.get(nb)
	f.get(idx)
	if k > 0 {
		f.i32Const(int32(k))
		f.i32Add()
	}
	f.i32Mul()
	f.i32Const(scale)
	f.i32Mul()
	f.i32Add()
	f.set(to)
}

func (f *fn) i32Const(v int32) { f.op(0x41); f.code = appendSLEB(f.code, int64(v)) }
func (f *fn) f32Const(v float32) {
	b := math.Float32bits(v)
	f.op(0x43, byte(b), byte(b>>8), byte(b>>16), byte(b>>24))
}

func (f *fn) i32Load16U(offset uint32) { f.op(0x2f); f.memarg(1, offset) }
func (f *fn) f32Load(offset uint32)    { f.op(0x2a); f.memarg(2, offset) }
func (f *fn) f32Store(offset uint32)   { f.op(0x38); f.memarg(2, offset) }
func (f *fn) i32Load8U(offset uint32)  { f.op(0x2d); f.memarg(0, offset) }

func (f *fn) i32Eqz()            { f.op(0x45) }
func (f *fn) i32Eq()             { f.op(0x46) }
func (f *fn) i32GeU()            { f.op(0x4f) }
func (f *fn) i32Add()            { f.op(0x6a) }
func (f *fn) i32Mul()            { f.op(0x6c) }
func (f *fn) i32And()            { f.op(0x71) }
func (f *fn) i32Or()             { f.op(0x72) }
func (f *fn) i32Shl()            { f.op(0x74) }
func (f *fn) i32ShrU()           { f.op(0x76) }
func (f *fn) f32Add()            { f.op(0x92) }
func (f *fn) f32Sub()            { f.op(0x93) }
func (f *fn) f32Mul()            { f.op(0x94) }
func (f *fn) f32ConvertI32U()    { f.op(0xb3) }
func (f *fn) i32ReinterpretF32() { f.op(0xbc) }
func (f *fn) f32ReinterpretI32() { f.op(0xbe) }

// SIMD128 instructions (opcode after the 0xfd prefix).
func (f *fn) v128Load(offset uint32)       { f.simd(0x00); f.memarg(4, offset) }
func (f *fn) v128Load32Zero(offset uint32) { f.simd(0x5c); f.memarg(2, offset) }
func (f *fn) v128Load64Zero(offset uint32) { f.simd(0x5d); f.memarg(3, offset) }
func (f *fn) i8x16Splat()                  { f.simd(0x0f) }
func (f *fn) i32x4Splat()                  { f.simd(0x11) }
func (f *fn) f32x4Splat()                  { f.simd(0x13) }
func (f *fn) f32x4ExtractLane(l byte)      { f.simd(0x1f); f.op(l) }
func (f *fn) v128And()                     { f.simd(0x4e) }
func (f *fn) i8x16ShrU()                   { f.simd(0x6d) }
func (f *fn) i8x16Sub()                    { f.simd(0x71) }
func (f *fn) i16x8ExtendLowI8x16S()        { f.simd(0x87) }
func (f *fn) i16x8ExtendHighI8x16S()       { f.simd(0x88) }
func (f *fn) i16x8ExtendLowI8x16U()        { f.simd(0x89) }
func (f *fn) i16x8ExtendHighI8x16U()       { f.simd(0x8a) }
func (f *fn) i32x4Add()                    { f.simd(0xae) }
func (f *fn) f32x4Sub()                    { f.simd(0xe5) }
func (f *fn) i32x4DotI16x8S()              { f.simd(0xba) }
func (f *fn) f32x4Add()                    { f.simd(0xe4) }
func (f *fn) f32x4Mul()                    { f.simd(0xe6) }
func (f *fn) f32x4ConvertI32x4S()          { f.simd(0xfa) }

// i16x8ShrU is i16x8.shr_u, which wazero compiles to one psrlw
// (i8x16.shr_u has no x86 instruction: a psrlw and a mask from a table).
func (f *fn) i16x8ShrU() { f.simd(0x8d) }

// v128Splat8 pushes a constant with every byte b. A constant rather than
// a local: wazero loads it from its constant pool where it is used, so
// it holds no register through the loops (with the kernels' locals
// beyond the 16 xmm registers, the accumulators went to the stack).
func (f *fn) v128Splat8(b byte) {
	f.simd(0x0c)
	for range 16 {
		f.op(b)
	}
}

// v128Splat32 pushes a constant with every 32-bit lane v.
func (f *fn) v128Splat32(v uint32) {
	f.simd(0x0c)
	for range 4 {
		f.op(byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	}
}

// v128Zero pushes an all-zero vector (i32x4.splat of 0).
func (f *fn) v128Zero() { f.i32Const(0); f.i32x4Splat() }

// module is a set of functions over one memory.
type module struct {
	// memImport names the memory to import (module, field); when empty
	// the module defines memPages pages of its own and exports them as
	// "mem" (the tests' stand-in for the Go instance's memory).
	memImport [2]string
	memPages  uint32
	funcs     []*fn
}

// encode returns the module's binary form (spec §5.5).
func (m *module) encode() []byte {
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	section := func(id byte, body []byte) {
		out = append(out, id)
		out = appendULEB(out, uint32(len(body)))
		out = append(out, body...)
	}
	// Types: one per function, duplicates and all (a handful of them).
	var b []byte
	b = appendULEB(b, uint32(len(m.funcs)))
	for _, f := range m.funcs {
		b = append(b, 0x60)
		b = appendTypes(b, f.params)
		b = appendTypes(b, f.results)
	}
	section(1, b)
	if m.memImport[0] != "" {
		b = appendULEB(nil, 1)
		b = appendName(b, m.memImport[0])
		b = appendName(b, m.memImport[1])
		b = append(b, 0x02, 0x00, 0x00) // memory, limits {min 0, no max}
		section(2, b)
	}
	b = appendULEB(nil, uint32(len(m.funcs)))
	for i := range m.funcs {
		b = appendULEB(b, uint32(i))
	}
	section(3, b)
	if m.memImport[0] == "" {
		b = appendULEB(nil, 1)
		b = append(b, 0x00)
		b = appendULEB(b, m.memPages)
		section(5, b)
	}
	n := len(m.funcs)
	if m.memImport[0] == "" {
		n++
	}
	b = appendULEB(nil, uint32(n))
	for i, f := range m.funcs {
		b = appendName(b, f.name)
		b = append(b, 0x00)
		b = appendULEB(b, uint32(i))
	}
	if m.memImport[0] == "" {
		b = appendName(b, "mem")
		b = append(b, 0x02, 0x00)
	}
	section(7, b)
	b = appendULEB(nil, uint32(len(m.funcs)))
	for _, f := range m.funcs {
		var body []byte
		body = appendULEB(body, uint32(len(f.locals)))
		for _, t := range f.locals {
			body = append(body, 0x01, byte(t))
		}
		body = append(body, f.code...)
		body = append(body, 0x0b)
		b = appendULEB(b, uint32(len(body)))
		b = append(b, body...)
	}
	section(10, b)
	return out
}

func appendTypes(b []byte, ts []valType) []byte {
	b = appendULEB(b, uint32(len(ts)))
	for _, t := range ts {
		b = append(b, byte(t))
	}
	return b
}

func appendName(b []byte, s string) []byte {
	b = appendULEB(b, uint32(len(s)))
	return append(b, s...)
}

func appendULEB(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// More SIMD128 instructions, for the float kernels (floats.go).
func (f *fn) v128Store(offset uint32) { f.simd(0x0b); f.memarg(4, offset) }
func (f *fn) v128Or()                 { f.simd(0x50) }
func (f *fn) v128Bitselect()          { f.simd(0x52) }
func (f *fn) i32x4Eq()                { f.simd(0x37) }
func (f *fn) i32x4ExtendLowI16x8U()   { f.simd(0xa9) }
func (f *fn) i32x4ExtendLowI16x8S()   { f.simd(0xa7) }
func (f *fn) i32x4ExtendHighI16x8U()  { f.simd(0xaa) }
func (f *fn) i32x4Shl()               { f.simd(0xab) }
func (f *fn) i32LtU()                 { f.op(0x49) }
func (f *fn) i32Sub()                 { f.op(0x6b) }
