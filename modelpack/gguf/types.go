package gguf

import "fmt"

// GGMLType is a ggml tensor element type as stored in a GGUF tensor info.
type GGMLType uint32

// The ggml types, numbered as in ggml.h. Gaps are types ggml has removed.
const (
	TypeF32     GGMLType = 0
	TypeF16     GGMLType = 1
	TypeQ4_0    GGMLType = 2
	TypeQ4_1    GGMLType = 3
	TypeQ5_0    GGMLType = 6
	TypeQ5_1    GGMLType = 7
	TypeQ8_0    GGMLType = 8
	TypeQ8_1    GGMLType = 9
	TypeQ2_K    GGMLType = 10
	TypeQ3_K    GGMLType = 11
	TypeQ4_K    GGMLType = 12
	TypeQ5_K    GGMLType = 13
	TypeQ6_K    GGMLType = 14
	TypeQ8_K    GGMLType = 15
	TypeIQ2_XXS GGMLType = 16
	TypeIQ2_XS  GGMLType = 17
	TypeIQ3_XXS GGMLType = 18
	TypeIQ1_S   GGMLType = 19
	TypeIQ4_NL  GGMLType = 20
	TypeIQ3_S   GGMLType = 21
	TypeIQ2_S   GGMLType = 22
	TypeIQ4_XS  GGMLType = 23
	TypeI8      GGMLType = 24
	TypeI16     GGMLType = 25
	TypeI32     GGMLType = 26
	TypeI64     GGMLType = 27
	TypeF64     GGMLType = 28
	TypeIQ1_M   GGMLType = 29
	TypeBF16    GGMLType = 30
	TypeTQ1_0   GGMLType = 34
	TypeTQ2_0   GGMLType = 35
	TypeMXFP4   GGMLType = 39
)

// qkK is the number of elements in a k-quant super-block.
const qkK = 256

// typeTraits is a type's name and block geometry.
type typeTraits struct {
	name       string
	blockElems int // elements per block
	blockBytes int // bytes per block
}

// traits returns what ggml's type_traits table says about t. The byte sizes
// are those of ggml-common.h's block structs.
func traits(t GGMLType) (typeTraits, bool) {
	switch t {
	case TypeF32:
		return typeTraits{"f32", 1, 4}, true
	case TypeF16:
		return typeTraits{"f16", 1, 2}, true
	case TypeQ4_0:
		return typeTraits{"q4_0", 32, 2 + 16}, true
	case TypeQ4_1:
		return typeTraits{"q4_1", 32, 2 + 2 + 16}, true
	case TypeQ5_0:
		return typeTraits{"q5_0", 32, 2 + 4 + 16}, true
	case TypeQ5_1:
		return typeTraits{"q5_1", 32, 2 + 2 + 4 + 16}, true
	case TypeQ8_0:
		return typeTraits{"q8_0", 32, 2 + 32}, true
	case TypeQ8_1:
		return typeTraits{"q8_1", 32, 2 + 2 + 32}, true
	case TypeQ2_K:
		return typeTraits{"q2_K", qkK, qkK/16 + qkK/4 + 2 + 2}, true
	case TypeQ3_K:
		return typeTraits{"q3_K", qkK, qkK/8 + qkK/4 + 12 + 2}, true
	case TypeQ4_K:
		return typeTraits{"q4_K", qkK, 2 + 2 + 12 + qkK/2}, true
	case TypeQ5_K:
		return typeTraits{"q5_K", qkK, 2 + 2 + 12 + qkK/8 + qkK/2}, true
	case TypeQ6_K:
		return typeTraits{"q6_K", qkK, qkK/2 + qkK/4 + qkK/16 + 2}, true
	case TypeQ8_K:
		return typeTraits{"q8_K", qkK, 4 + qkK + qkK/16*2}, true
	case TypeIQ2_XXS:
		return typeTraits{"iq2_xxs", qkK, 2 + qkK/8*2}, true
	case TypeIQ2_XS:
		return typeTraits{"iq2_xs", qkK, 2 + qkK/8*2 + qkK/32}, true
	case TypeIQ3_XXS:
		return typeTraits{"iq3_xxs", qkK, 2 + 3*qkK/8}, true
	case TypeIQ1_S:
		return typeTraits{"iq1_s", qkK, 2 + qkK/8 + qkK/16}, true
	case TypeIQ4_NL:
		return typeTraits{"iq4_nl", 32, 2 + 16}, true
	case TypeIQ3_S:
		return typeTraits{"iq3_s", qkK, 2 + 13*qkK/32 + qkK/64}, true
	case TypeIQ2_S:
		return typeTraits{"iq2_s", qkK, 2 + qkK/4 + qkK/16}, true
	case TypeIQ4_XS:
		return typeTraits{"iq4_xs", qkK, 2 + 2 + qkK/64 + qkK/2}, true
	case TypeI8:
		return typeTraits{"i8", 1, 1}, true
	case TypeI16:
		return typeTraits{"i16", 1, 2}, true
	case TypeI32:
		return typeTraits{"i32", 1, 4}, true
	case TypeI64:
		return typeTraits{"i64", 1, 8}, true
	case TypeF64:
		return typeTraits{"f64", 1, 8}, true
	case TypeIQ1_M:
		return typeTraits{"iq1_m", qkK, qkK/8 + qkK/16 + qkK/32}, true
	case TypeBF16:
		return typeTraits{"bf16", 1, 2}, true
	case TypeTQ1_0:
		return typeTraits{"tq1_0", qkK, (qkK-4*qkK/64)/5 + qkK/64 + 2}, true
	case TypeTQ2_0:
		return typeTraits{"tq2_0", qkK, qkK/4 + 2}, true
	case TypeMXFP4:
		return typeTraits{"mxfp4", 32, 1 + 16}, true
	}
	return typeTraits{}, false
}

// String returns ggml's name for the type ("q4_K", "f16", ...).
func (t GGMLType) String() string {
	if tr, ok := traits(t); ok {
		return tr.name
	}
	return fmt.Sprintf("ggml_type(%d)", uint32(t))
}

// Known reports whether the type is one this package knows the block
// geometry of, so that tensors of it can be sized and read raw.
func (t GGMLType) Known() bool {
	_, ok := traits(t)
	return ok
}

// BlockElems is the number of elements in one block (1 for plain types),
// or 0 for an unknown type.
func (t GGMLType) BlockElems() int {
	tr, _ := traits(t)
	return tr.blockElems
}

// BlockBytes is the byte size of one block, or 0 for an unknown type.
func (t GGMLType) BlockBytes() int {
	tr, _ := traits(t)
	return tr.blockBytes
}

// RowBytes returns the byte size of a row of n elements, or an error when
// the type is unknown or n is not a whole number of blocks.
func (t GGMLType) RowBytes(n int) (int, error) {
	tr, ok := traits(t)
	if !ok {
		return 0, fmt.Errorf("unknown ggml type %d", uint32(t))
	}
	if n < 0 || n%tr.blockElems != 0 {
		return 0, fmt.Errorf("a row of %d elements is not a whole number of %s blocks of %d", n, tr.name, tr.blockElems)
	}
	return n / tr.blockElems * tr.blockBytes, nil
}
