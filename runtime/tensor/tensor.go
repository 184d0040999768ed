package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// DType is the storage format of a tensor's elements.
type DType uint8

// The layouts of the block formats are documented in quant.go.
const (
	Invalid DType = iota
	F32
	F16
	BF16
	Q8_0  // blocks of 32: f16 scale, 32 int8
	Q4_0  // blocks of 32: f16 scale, 32 4-bit values
	Q4_K  // super-blocks of 256: f16 scale and min, 8 u8 sub-scales and sub-mins, 256 4-bit values
	MXFP4 // blocks of 32: e8m0 scale, 32 FP4 (e2m1) values
)

var dtypeNames = [...]string{Invalid: "invalid", F32: "f32", F16: "f16", BF16: "bf16", Q8_0: "q8_0", Q4_0: "q4_0", Q4_K: "q4_k", MXFP4: "mxfp4"}

func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// ParseDType accepts the names String returns, case-insensitively.
func ParseDType(s string) (DType, error) {
	for i, n := range dtypeNames {
		if i != int(Invalid) && strings.EqualFold(n, s) {
			return DType(i), nil
		}
	}
	return Invalid, fmt.Errorf("unknown dtype %q", s)
}

// ElemSize is the byte size of one element for the plain formats, 0 for
// block formats.
func (d DType) ElemSize() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// Tensor is a named, shaped array of elements stored as little-endian bytes.
// Matrices are row-major with Shape[0] rows (output features) and Shape[1]
// columns (input features), as both llama2.c and HF store linear weights.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// Elems is the number of elements the shape describes.
func (t *Tensor) Elems() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Rows and Cols view the tensor as a matrix; a vector is one row.
func (t *Tensor) Rows() int { return MatrixRows(t.Shape) }

// MatrixRows is the number of rows of a tensor of shape viewed as a matrix
// whose columns are its last dimension: the product of the others (1 for a
// vector).
func MatrixRows(shape []int) int {
	n := 1
	for _, d := range shape[:max(len(shape)-1, 0)] {
		n *= d
	}
	return n
}

func (t *Tensor) Cols() int {
	if len(t.Shape) == 0 {
		return 1
	}
	return t.Shape[len(t.Shape)-1]
}

// Check verifies that Data holds exactly what DType and Shape describe.
func (t *Tensor) Check() error {
	for _, d := range t.Shape {
		if d <= 0 {
			return fmt.Errorf("tensor %s: bad shape %v", t.Name, t.Shape)
		}
	}
	want, err := ByteSize(t.DType, t.Rows(), t.Cols())
	if err != nil {
		return fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	if len(t.Data) != want {
		return fmt.Errorf("tensor %s: %v%v needs %d bytes, has %d", t.Name, t.DType, t.Shape, want, len(t.Data))
	}
	if t.DType == MXFP4 {
		return checkMXFP4(t)
	}
	return nil
}

// FromF32 builds an f32 tensor that owns a copy of v.
func FromF32(name string, shape []int, v []float32) *Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return &Tensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// Float32s decodes (or dequantises) the elements to float32. It always
// returns a new slice.
func (t *Tensor) Float32s() ([]float32, error) {
	n := t.Elems()
	switch t.DType {
	case Q8_0, Q4_0, Q4_K, MXFP4:
		m, err := NewMatrix(t)
		if err != nil {
			return nil, err
		}
		out := make([]float32, n)
		for i := 0; i < m.rows; i++ {
			m.DequantizeRow(i, out[i*m.cols:(i+1)*m.cols])
		}
		return out, nil
	}
	out := make([]float32, n)
	switch t.DType {
	case F32:
		if len(t.Data) < 4*n {
			return nil, fmt.Errorf("tensor %s: short data", t.Name)
		}
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	case F16:
		if len(t.Data) < 2*n {
			return nil, fmt.Errorf("tensor %s: short data", t.Name)
		}
		for i := range out {
			out[i] = F16ToF32(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	case BF16:
		if len(t.Data) < 2*n {
			return nil, fmt.Errorf("tensor %s: short data", t.Name)
		}
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16)
		}
	default:
		return nil, fmt.Errorf("tensor %s: cannot decode %v", t.Name, t.DType)
	}
	return out, nil
}

// CheckFinite reports the first NaN or Inf element, naming the tensor.
func CheckFinite(name string, v []float32) error {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("tensor %s: element %d is %v", name, i, x)
		}
	}
	return nil
}
