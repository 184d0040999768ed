package tensor

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestMXFP4HandWorked decodes blocks worked out by hand from the e2m1 code
// table (0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives for codes 8..15)
// and the e8m0 scale 2^(e−127).
func TestMXFP4HandWorked(t *testing.T) {
	blocks := make([]byte, 3*16)
	// block 0, scale 2^(128−127) = 2
	blocks[0] = 0x21 // el 0: code 1 (0.5)·2 = 1; el 1: code 2 (1)·2 = 2
	blocks[1] = 0xF8 // el 2: code 8 (−0); el 3: code 15 (−6)·2 = −12
	blocks[2] = 0x7A // el 4: code 10 (−1)·2 = −2; el 5: code 7 (6)·2 = 12
	// block 1, scale 2^(124−127) = 1/8
	blocks[16] = 0x53 // el 0: code 3 (1.5)/8 = 0.1875; el 1: code 5 (3)/8 = 0.375
	blocks[31] = 0xC4 // el 30: code 4 (2)/8 = 0.25; el 31: code 12 (−2)/8 = −0.25
	blocks[32] = 0x07 // block 2, scale 2^−127: el 0: 6·2^−127
	scales := []byte{128, 124, 0}
	m, err := MXFP4FromBlocks("w", 1, 96, scales, blocks)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, 96)
	want[0], want[1], want[3], want[4], want[5] = 1, 2, -12, -2, 12
	want[32], want[33], want[62], want[63] = 0.1875, 0.375, 0.25, -0.25
	want[64] = float32(6 * math.Pow(2, -127))
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("element %d = %v, want %v", i, got[i], want[i])
		}
	}
	if !math.Signbit(float64(got[2])) {
		t.Errorf("element 2 = %v, want −0", got[2])
	}
	// Dot with x = 1 at every position: the sum of the row.
	x := make([]float32, 96)
	for i := range x {
		x[i] = 1
	}
	mat, err := NewMatrix(m)
	if err != nil {
		t.Fatal(err)
	}
	if d := mat.Dot(0, x, nil); math.Abs(float64(d)-(1+2-12-2+12+0.1875+0.375)) > 1e-6 {
		t.Errorf("Dot = %v, want %v", d, 1+2-12-2+12+0.1875+0.375)
	}
}

// TestMXFP4NaNScale: scale 0xFF is e8m0's NaN and is refused, naming the
// tensor and the block.
func TestMXFP4NaNScale(t *testing.T) {
	_, err := MXFP4FromBlocks("layers.0.experts.1.up", 2, 32, []byte{127, 0xFF}, make([]byte, 32))
	if err == nil || !strings.Contains(err.Error(), "0xFF") || !strings.Contains(err.Error(), "layers.0.experts.1.up") || !strings.Contains(err.Error(), "row 1") {
		t.Fatalf("err = %v, want the NaN scale of row 1 refused", err)
	}
	// A tensor built another way is caught by Check too.
	tt := &Tensor{Name: "x", DType: MXFP4, Shape: []int{1, 32}, Data: make([]byte, 4+16)}
	tt.Data[0] = 0xFF
	if err := tt.Check(); err == nil {
		t.Fatal("Check accepted a NaN scale")
	}
}

// TestMXFP4QuantizeAndKernels quantises Gaussian rows, checks the round
// trip's error, that values already on the grid survive exactly, and that
// the exact Dot and the fast 16-bit product agree with f32 over the
// dequantised weights.
func TestMXFP4QuantizeAndKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rows, cols := 8, 128
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	q, err := Quantize(FromF32("w", []int{rows, cols}, x), MXFP4)
	if err != nil {
		t.Fatal(err)
	}
	if e := RMSError(x, q); e > 0.2 { // e2m1 has 1 mantissa bit: about 0.1 relative
		t.Errorf("rms error %v", e)
	}
	deq, _ := q.Float32s()
	q2, err := Quantize(FromF32("w", []int{rows, cols}, deq), MXFP4)
	if err != nil {
		t.Fatal(err)
	}
	if string(q2.Data) != string(q.Data) {
		t.Error("requantising dequantised values changed them")
	}
	m, err := NewMatrix(q)
	if err != nil {
		t.Fatal(err)
	}
	act := make([]float32, 3*cols)
	for i := range act {
		act[i] = float32(r.NormFloat64())
	}
	var xq Q16Rows
	xq.Quantize(act, 3, cols)
	fast := make([]float32, 3*rows)
	m.MulQuantized(fast, rows, &xq, 0, rows)
	for tk := range 3 {
		for i := range rows {
			var want float64
			for j := range cols {
				want += float64(deq[i*cols+j]) * float64(act[tk*cols+j])
			}
			exact := m.Dot(i, act[tk*cols:(tk+1)*cols], nil)
			if math.Abs(float64(exact)-want) > 1e-4*(1+math.Abs(want)) {
				t.Errorf("Dot row %d token %d = %v, want %v", i, tk, exact, want)
			}
			// 16-bit activations: relative error 2^-16 of each block's max.
			if math.Abs(float64(fast[tk*rows+i])-want) > 2e-3*(1+math.Abs(want)) {
				t.Errorf("fast row %d token %d = %v, want %v", i, tk, fast[tk*rows+i], want)
			}
		}
	}
}

// FuzzMXFP4FromBlocks: any scales and block bytes either are refused or
// give a tensor whose values are finite and whose exact and fast products
// run.
func FuzzMXFP4FromBlocks(f *testing.F) {
	f.Add(uint8(1), []byte{127}, make([]byte, 16))
	f.Add(uint8(2), []byte{0, 254}, []byte("0123456789abcdef0123456789abcdef"))
	f.Add(uint8(1), []byte{0xFF}, make([]byte, 16))
	f.Fuzz(func(t *testing.T, rows uint8, scales, blocks []byte) {
		r := int(rows%8) + 1
		m, err := MXFP4FromBlocks("w", r, 32, scales, blocks)
		if err != nil {
			return
		}
		mat := finiteMatrix(t, m)
		x := make([]float32, 32)
		for i := range x {
			x[i] = 1
		}
		_ = mat.Dot(r-1, x, nil)
		var q Q16Rows
		q.Quantize(x, 1, 32)
		out := make([]float32, r)
		mat.MulQuantized(out, r, &q, 0, r)
	})
}
