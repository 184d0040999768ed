package tensor

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// blocksOf splits a q8_0 or q4_0 tensor Quantize made into the inputs of
// Q8_0FromBlocks and Q4_0FromBlocks: f16 scales widened to float32 and the
// quants in element order, as an importer gets them from a ggml file.
func blocksOf(t *Tensor) (scales []float32, q8 []int8, q4 []uint8) {
	nb := t.Elems() / qk
	a := splitArrays(t.DType, t.Data, nb)
	scales = make([]float32, nb)
	for b := range scales {
		scales[b] = f16At(a.scales, b)
	}
	if t.DType == Q8_0 {
		q8 = make([]int8, t.Elems())
		for i := range q8 {
			q8[i] = int8(a.qs[i])
		}
		return scales, q8, nil
	}
	q4 = make([]uint8, t.Elems())
	for b := range nb {
		for j := range qk / 2 {
			v := a.qs[qk/2*b+j]
			q4[qk*b+j], q4[qk*b+j+qk/2] = v&15, v>>4
		}
	}
	return scales, nil, q4
}

// rebuild is t (q8_0 or q4_0) taken apart by blocksOf and built again by
// Q8_0FromBlocks or Q4_0FromBlocks.
func rebuild(t *Tensor) (*Tensor, error) {
	scales, q8, q4 := blocksOf(t)
	if t.DType == Q8_0 {
		return Q8_0FromBlocks(t.Name, t.Rows(), t.Cols(), scales, q8)
	}
	return Q4_0FromBlocks(t.Name, t.Rows(), t.Cols(), scales, q4)
}

// TestFromBlocksRebuildsQuantize takes Quantize's q8_0 and q4_0 output
// apart into scales and quants and rebuilds it: the bytes must be identical,
// and so the dequantised values.
func TestFromBlocksRebuildsQuantize(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	shapes := []struct{ rows, cols int }{{1, 32}, {3, 32}, {5, 96}, {16, 256}}
	for _, sh := range shapes {
		x := make([]float32, sh.rows*sh.cols)
		for i := range x {
			x[i] = float32(r.NormFloat64()) / 16
		}
		x[0] = 0 // a block whose scale is not the block's only magnitude
		src := FromF32("w", []int{sh.rows, sh.cols}, x)
		for _, d := range []DType{Q8_0, Q4_0} {
			want, err := Quantize(src, d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := rebuild(want)
			if err != nil {
				t.Fatalf("%v %d×%d: %v", d, sh.rows, sh.cols, err)
			}
			if err := got.Check(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Data, want.Data) || got.DType != d || got.Rows() != sh.rows || got.Cols() != sh.cols {
				t.Errorf("%v %d×%d: rebuilt tensor differs from Quantize's", d, sh.rows, sh.cols)
			}
		}
	}
}

func TestFromBlocksErrors(t *testing.T) {
	scales := []float32{0.5, -0.25}
	q8 := make([]int8, 64)
	q4 := make([]uint8, 64)
	badNibble := make([]uint8, 64)
	badNibble[40] = 16
	tests := []struct {
		name string
		q4   bool
		rows int
		cols int
		sc   []float32
		q8   []int8
		n4   []uint8
		want string
	}{
		{"cols", false, 1, 48, []float32{1}, make([]int8, 48), nil, "multiple of 32"},
		{"few scales", false, 2, 32, scales[:1], q8, nil, "needs 2 scales and 64 quants, have 1 and 64"},
		{"few quants", true, 1, 64, scales, nil, q4[:63], "needs 2 scales and 64 quants, have 2 and 63"},
		{"inexact scale", false, 1, 64, []float32{0.5, 0.1}, q8, nil, "block 1 scale 0.1 is not a finite f16 value"},
		{"scale too large", true, 1, 64, []float32{1e6, 1}, nil, q4, "block 0 scale 1e+06"},
		{"nan scale", false, 1, 64, []float32{float32(math.NaN()), 1}, q8, nil, "block 0 scale NaN"},
		{"inf scale", true, 2, 32, []float32{1, float32(math.Inf(-1))}, nil, q4, "block 1 scale -Inf"},
		{"nibble", true, 1, 64, scales, nil, badNibble, "quant 40 is 16, beyond 4 bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.q4 {
				_, err = Q4_0FromBlocks("layers.0.wq", tt.rows, tt.cols, tt.sc, tt.n4)
			} else {
				_, err = Q8_0FromBlocks("layers.0.wq", tt.rows, tt.cols, tt.sc, tt.q8)
			}
			if err == nil || !strings.Contains(err.Error(), "tensor layers.0.wq: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming the tensor and mentioning %q", err, tt.want)
			}
		})
	}
}

// TestFromBlocksValues checks the element order: element i is
// scales[i/32]·q[i] (q8_0) and scales[i/32]·(q[i]−8) (q4_0), with the
// subnormal and negative-zero scales ggml files can hold.
func TestFromBlocksValues(t *testing.T) {
	scales := []float32{0x1p-20, float32(math.Copysign(0, -1)), -3, 0.125}
	q8 := make([]int8, 4*qk)
	q4 := make([]uint8, 4*qk)
	for i := range q8 {
		q8[i] = int8(i*37%255 - 127)
		q4[i] = uint8(i * 7 % 16)
	}
	a, err := Q8_0FromBlocks("a", 2, 64, scales, q8)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Q4_0FromBlocks("b", 4, 32, scales, q4)
	if err != nil {
		t.Fatal(err)
	}
	va, _ := a.Float32s()
	vb, _ := b.Float32s()
	for i := range va {
		if w := scales[i/qk] * float32(q8[i]); va[i] != w {
			t.Fatalf("q8_0 element %d = %v, want %v", i, va[i], w)
		}
		if w := scales[i/qk] * float32(int(q4[i])-8); vb[i] != w {
			t.Fatalf("q4_0 element %d = %v, want %v", i, vb[i], w)
		}
	}
}

// interleave lays out a q8_0 or q4_0 tensor's blocks as ggml stores them:
// each block's f16 scale, then its quants.
func interleave(t *Tensor) []byte {
	nb := t.Elems() / qk
	a := splitArrays(t.DType, t.Data, nb)
	qb := len(a.qs) / nb
	var out []byte
	for b := range nb {
		out = append(out, a.scales[2*b:2*b+2]...)
		out = append(out, a.qs[qb*b:qb*(b+1)]...)
	}
	return out
}

// TestFromInterleaved checks that ggml's interleaved blocks, taken as they
// are, give the tensor the *FromBlocks constructors give for the same
// blocks unpacked — random quants and every kind of finite f16 scale
// (subnormal, ±0, the largest) — and that a NaN or infinite scale, a
// wrong length or another format is refused, naming the tensor.
func TestFromInterleaved(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, d := range []DType{Q8_0, Q4_0} {
		for _, sh := range []struct{ rows, cols int }{{1, 32}, {3, 64}, {7, 96}} {
			nb := sh.rows * sh.cols / qk
			qb := qk
			if d == Q4_0 {
				qb = qk / 2
			}
			raw := make([]byte, nb*(2+qb))
			for i := range raw {
				raw[i] = byte(r.IntN(256))
			}
			special := []uint16{0x0001, 0x8000, 0x0000, 0x7bff, 0xfbff, 0x03ff}
			for b := range nb {
				h := uint16(r.IntN(0x7c00)) | uint16(r.IntN(2))<<15
				if b < len(special) {
					h = special[b]
				}
				raw[(2+qb)*b], raw[(2+qb)*b+1] = byte(h), byte(h>>8)
			}
			got, err := FromInterleaved("w", d, sh.rows, sh.cols, raw)
			if err != nil {
				t.Fatalf("%v %d×%d: %v", d, sh.rows, sh.cols, err)
			}
			want, err := rebuild(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Data, want.Data) || !bytes.Equal(interleave(got), raw) {
				t.Errorf("%v %d×%d: the interleaved blocks give another tensor than their unpacked values", d, sh.rows, sh.cols)
			}
		}
	}
	q4 := make([]byte, 2*18)
	withScale := func(b int, h uint16) []byte {
		raw := bytes.Clone(q4)
		raw[18*b], raw[18*b+1] = byte(h), byte(h>>8)
		return raw
	}
	for _, tt := range []struct {
		name string
		d    DType
		raw  []byte
		want string
	}{
		{"length", Q4_0, q4[:35], "36 bytes of blocks, have 35"},
		{"format", F32, q4, "no interleaved blocks for f32"},
		{"inf scale", Q4_0, withScale(1, 0x7c00), "block 1 scale +Inf"},
		{"nan scale", Q4_0, withScale(0, 0xfe01), "block 0 scale NaN"},
	} {
		_, err := FromInterleaved("layers.0.wq", tt.d, 1, 64, tt.raw)
		if err == nil || !strings.Contains(err.Error(), "tensor layers.0.wq: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one naming the tensor and mentioning %q", tt.name, err, tt.want)
		}
	}
}

// TestGGMLQ4_K checks the Q4_K super-blocks GGMLQ4_K writes: read back
// through Q4_KFromGGML (whose bits TestQ4_KFromGGML in the importer holds
// to ggml's own decoder) they stay within a bound of the values, close to
// q4_k's own error, every sub-scale and sub-minimum fits ggml's six bits,
// and the largest of a super-block uses them (d = max/63, not /255).
func TestGGMLQ4_K(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 4, 1024
	x := make([]float32, rows*cols)
	for i := range x {
		// rows of different scales, sub-blocks with offsets of either sign
		x[i] = float32(math.Exp(float64(i/cols)-2) * (r.NormFloat64() + float64(i/32%5) - 2))
	}
	b, err := GGMLQ4_K(x)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Q4_KFromGGML("w", rows, cols, b)
	if err != nil {
		t.Fatal(err)
	}
	own, err := Quantize(FromF32("w", []int{rows, cols}, x), Q4_K)
	if err != nil {
		t.Fatal(err)
	}
	e6, e8 := RMSError(x, got), RMSError(x, own)
	t.Logf("RMS error: 6-bit fields %.5f, q4_k's bytes %.5f", e6, e8)
	// Measured 1.0x–1.1x of q4_k's: the fit is the same, only the
	// sub-scales are coarser.
	if !(e6 <= 1.25*e8) {
		t.Errorf("RMS error %.5f, above 1.25x q4_k's %.5f", e6, e8)
	}
	a := splitArrays(Q4_K, got.Data, rows*cols/qkK)
	for sb := range rows * cols / qkK {
		var top byte
		for s := range 8 {
			sc, mn := a.sub[8*sb+s], a.mins[8*sb+s]
			if sc > 63 || mn > 63 {
				t.Fatalf("super-block %d sub-block %d: scale %d, min %d: beyond six bits", sb, s, sc, mn)
			}
			top = max(top, sc)
		}
		if top < 62 {
			t.Errorf("super-block %d: largest sub-scale %d, want about 63", sb, top)
		}
	}
	if _, err := GGMLQ4_K(x[:100]); err == nil {
		t.Error("a partial super-block: no error")
	}
	x[7] = float32(math.NaN())
	if _, err := GGMLQ4_K(x); err == nil {
		t.Error("NaN: no error")
	}
}

// FuzzQ4_KFromGGML feeds Q4_KFromGGML any bytes as a GGUF's Q4_K
// super-blocks: it must refuse them with an error or build a matrix whose
// values are finite and whose products run.
func FuzzQ4_KFromGGML(f *testing.F) {
	f.Add(uint8(0), make([]byte, 144))
	f.Add(uint8(1), bytes.Repeat([]byte{0x3c, 0x00, 0xff}, 96))
	f.Add(uint8(0), append([]byte{0x00, 0x7c}, make([]byte, 142)...)) // d = +Inf
	f.Fuzz(func(t *testing.T, rows uint8, blocks []byte) {
		r := int(rows%4) + 1
		m, err := Q4_KFromGGML("w", r, 256, blocks)
		if err != nil {
			return
		}
		mat := finiteMatrix(t, m)
		x := make([]float32, 4*256)
		for i := range x {
			x[i] = float32(i%7) - 3
		}
		var q Q16Rows
		q.QuantizeFor(mat, x, 4, 256)
		out := make([]float32, 4*r)
		mat.MulQuantized(out, r, &q, 0, r)
	})
}

// finiteMatrix checks that a tensor a fuzzer got built has finite values
// and returns it as a Matrix.
func finiteMatrix(t *testing.T, m *Tensor) *Matrix {
	t.Helper()
	v, err := m.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFinite(m.Name, v); err != nil {
		t.Fatal(err)
	}
	mat, err := NewMatrix(m)
	if err != nil {
		t.Fatal(err)
	}
	return mat
}
