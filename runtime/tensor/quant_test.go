package tensor

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// testData returns named rows×cols matrices shaped like the cases a
// quantiser must handle, each with the relative RMS error (RMSError over
// the data's RMS) each format must stay within.
//
// Measured on 64×512 (bounds are these plus ~15-30%):
//
//	             f16      bf16     q8_0     q4_0     q4_k
//	normal       0.00021  0.00165  0.00537  0.08592  0.06988
//	weights      0.00021  0.00165  0.00535  0.08637  0.06992
//	outliers     0.00020  0.00159  0.01127  0.14515  0.09963
//	positive     0.00021  0.00167  0.00451  0.07224  0.03472
//	constant     0.00000  0.00000  0.00019  0.00000  0.00019
//
// A quantiser that picks a poor scale or rounds to the wrong level lands
// well above these (q4_k without its least-squares refinement, for one,
// measures 0.078 on normal data, above its bound of 0.075).
func testData(rows, cols int) []struct {
	name   string
	x      []float32
	bounds map[DType]float64
} {
	r := rand.New(rand.NewPCG(1, 2))
	gen := func(f func(i int) float64) []float32 {
		x := make([]float32, rows*cols)
		for i := range x {
			x[i] = float32(f(i))
		}
		return x
	}
	gauss := map[DType]float64{F16: 0.0003, BF16: 0.002, Q8_0: 0.0065, Q4_0: 0.1, Q4_K: 0.075}
	exact := map[DType]float64{F16: 1e-6, BF16: 1e-6, Q8_0: 0.0003, Q4_0: 1e-6, Q4_K: 0.0003}
	return []struct {
		name   string
		x      []float32
		bounds map[DType]float64
	}{
		{"normal", gen(func(int) float64 { return r.NormFloat64() }), gauss},
		// weights of a 4096-wide layer: small enough that q4_k's d is an
		// f16 subnormal
		{"weights", gen(func(int) float64 { return r.NormFloat64() / 64 }), gauss},
		// one element in a hundred 20 times larger: about a quarter of the
		// blocks hold one, and their other elements lose resolution
		{"outliers", gen(func(int) float64 {
			if r.IntN(100) == 0 {
				return 20 * r.NormFloat64()
			}
			return r.NormFloat64()
		}), map[DType]float64{F16: 0.0003, BF16: 0.002, Q8_0: 0.014, Q4_0: 0.17, Q4_K: 0.12}},
		{"positive", gen(func(int) float64 { return math.Abs(r.NormFloat64()) + 0.5 }),
			map[DType]float64{F16: 0.0003, BF16: 0.002, Q8_0: 0.0055, Q4_0: 0.085, Q4_K: 0.042}},
		{"zeros", gen(func(int) float64 { return 0 }), exact},
		// integer-and-a-quarter constants, negative and positive
		{"constant rows", gen(func(i int) float64 { return float64(i/cols) - float64(rows)/2 + 0.25 }), exact},
	}
}

func rms(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

// TestQuantizeRoundTrip quantises each data set to each format and bounds
// the RMS error of the dequantised values relative to the data's RMS (zero
// data must come back exactly).
func TestQuantizeRoundTrip(t *testing.T) {
	const rows, cols = 64, 512
	for _, ds := range testData(rows, cols) {
		for _, d := range []DType{F16, BF16, Q8_0, Q4_0, Q4_K} {
			t.Run(ds.name+"/"+d.String(), func(t *testing.T) {
				src := FromF32("w", []int{rows, cols}, ds.x)
				q, err := Quantize(src, d)
				if err != nil {
					t.Fatal(err)
				}
				if err := q.Check(); err != nil {
					t.Fatal(err)
				}
				e := RMSError(ds.x, q)
				scale := rms(ds.x)
				if scale == 0 {
					if e != 0 {
						t.Fatalf("RMS error %g on all zeros", e)
					}
					return
				}
				rel := e / scale
				t.Logf("relative RMS error %.5f", rel)
				if bound := ds.bounds[d]; !(rel <= bound) {
					t.Errorf("relative RMS error %.5f, want ≤ %g", rel, bound)
				}
			})
		}
	}
}

// TestQuantizeSources quantises the same values from f32, f16 and bf16 and
// expects identical blocks (the values are exact in all three).
func TestQuantizeSources(t *testing.T) {
	x := make([]float32, 2*256)
	for i := range x {
		x[i] = float32(i%37-18) / 8
	}
	f32 := FromF32("w", []int{2, 256}, x)
	for _, d := range []DType{Q8_0, Q4_0, Q4_K} {
		want, err := Quantize(f32, d)
		if err != nil {
			t.Fatal(err)
		}
		for _, from := range []DType{F16, BF16} {
			src, err := Quantize(f32, from)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Quantize(src, d)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Data) != string(want.Data) {
				t.Errorf("%v from %v differs from %v from f32", d, from, d)
			}
		}
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		d          DType
		rows, cols int
		want       int
		err        string
	}{
		{F32, 3, 5, 60, ""},
		{F16, 3, 5, 30, ""},
		{BF16, 1, 7, 14, ""},
		{Q8_0, 1, 32, 4 + 32, ""},          // one f16 scale padded to 4 bytes
		{Q8_0, 2, 32, 4 + 64, ""},          // two scales fill 4 bytes
		{Q8_0, 3, 64, 12 + 6*32, ""},       // six scales
		{Q4_0, 1, 96, 8 + 3*16, ""},        // three scales padded to 8
		{Q4_0, 4, 32, 8 + 4*16, ""},        //
		{Q4_K, 1, 256, 148, ""},            // 4 + 8 + 8 + 128
		{Q4_K, 3, 512, 6 * 148, ""},        //
		{Q8_0, 1, 48, 0, "multiple of 32"}, //
		{Q4_K, 2, 128, 0, "multiple of 256"},
		{Invalid, 1, 32, 0, "unknown dtype 0"},
		{DType(99), 1, 32, 0, "unknown dtype 99"},
		{F32, 0, 4, 0, "bad matrix size"},
	}
	for _, tt := range tests {
		got, err := ByteSize(tt.d, tt.rows, tt.cols)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ByteSize(%v, %d, %d) error = %v, want it to mention %q", tt.d, tt.rows, tt.cols, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ByteSize(%v, %d, %d) = %d, %v, want %d", tt.d, tt.rows, tt.cols, got, err, tt.want)
		}
		if got%4 != 0 && BlockSize(tt.d) > 1 {
			t.Errorf("ByteSize(%v, %d, %d) = %d is not a whole number of u32", tt.d, tt.rows, tt.cols, got)
		}
	}
}

func TestCanQuantize(t *testing.T) {
	tests := []struct {
		d    DType
		cols int
		want bool
	}{
		{F32, 7, true}, {F16, 7, true}, {BF16, 1, true},
		{Q8_0, 32, true}, {Q8_0, 4096, true}, {Q8_0, 48, false},
		{Q4_0, 64, true}, {Q4_0, 16, false},
		{Q4_K, 256, true}, {Q4_K, 5504, false}, {Q4_K, 11008, true},
		{Invalid, 32, false}, {Q8_0, 0, false},
	}
	for _, tt := range tests {
		if got := CanQuantize(tt.d, tt.cols); got != tt.want {
			t.Errorf("CanQuantize(%v, %d) = %v, want %v", tt.d, tt.cols, got, tt.want)
		}
	}
}

// TestQuantizeErrors checks that every refusal names the tensor and says
// why.
func TestQuantizeErrors(t *testing.T) {
	good := FromF32("layers.0.wq", []int{2, 64}, make([]float32, 128))
	nan := FromF32("layers.0.wk", []int{1, 32}, append(make([]float32, 31), float32(math.NaN())))
	q8, err := Quantize(good, Q8_0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		t    *Tensor
		to   DType
		want []string
	}{
		{"cols not a block multiple", FromF32("layers.0.wv", []int{2, 48}, make([]float32, 96)), Q4_0, []string{"layers.0.wv", "q4_0", "multiple of 32", "48"}},
		{"cols not a super-block multiple", good, Q4_K, []string{"layers.0.wq", "q4_k", "multiple of 256"}},
		{"unknown target", good, DType(42), []string{"layers.0.wq", "unknown dtype 42"}},
		{"too large", FromF32("layers.0.w1", []int{1, 32}, append(make([]float32, 31), -1e6)), Q8_0, []string{"layers.0.w1", "element 31 is -1e+06", "524032"}},
		{"quantised source", q8, Q4_0, []string{"layers.0.wq", "cannot quantise from q8_0"}},
		{"truncated source", &Tensor{Name: "layers.0.wo", DType: F32, Shape: []int{2, 32}, Data: make([]byte, 255)}, Q8_0, []string{"layers.0.wo", "needs 256 bytes, has 255"}},
		{"NaN", nan, Q8_0, []string{"layers.0.wk", "element 31 is NaN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Quantize(tt.t, tt.to)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestDecodeErrors checks Check, Float32s and NewMatrix on malformed block
// tensors.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		t    *Tensor
		want []string
	}{
		{"truncated q8_0", &Tensor{Name: "output", DType: Q8_0, Shape: []int{2, 32}, Data: make([]byte, 67)}, []string{"output", "needs 68 bytes, has 67"}},
		{"long q4_0", &Tensor{Name: "output", DType: Q4_0, Shape: []int{1, 32}, Data: make([]byte, 21)}, []string{"output", "needs 20 bytes, has 21"}},
		{"truncated q4_k", &Tensor{Name: "w2", DType: Q4_K, Shape: []int{1, 256}, Data: make([]byte, 147)}, []string{"w2", "needs 148 bytes"}},
		{"q4_k cols", &Tensor{Name: "w3", DType: Q4_K, Shape: []int{2, 128}, Data: make([]byte, 148)}, []string{"w3", "multiple of 256"}},
		{"unknown dtype", &Tensor{Name: "w4", DType: DType(77), Shape: []int{1, 32}, Data: make([]byte, 64)}, []string{"w4", "77"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for what, err := range map[string]error{
				"Check":     tt.t.Check(),
				"Float32s":  func() error { _, err := tt.t.Float32s(); return err }(),
				"NewMatrix": func() error { _, err := NewMatrix(tt.t); return err }(),
			} {
				if err == nil {
					t.Errorf("%s: no error", what)
					continue
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: error %q does not mention %q", what, err, w)
					}
				}
			}
		})
	}
	if _, err := NewMatrix(FromF32("embed", []int{2, 2}, make([]float32, 4))); err == nil || !strings.Contains(err.Error(), "embed") {
		t.Errorf("NewMatrix of f32: error %v, want one naming the tensor", err)
	}
}

func TestRMSError(t *testing.T) {
	x := []float32{1, 2, 3, 4}
	if e := RMSError(x, FromF32("x", []int{4}, x)); e != 0 {
		t.Errorf("RMSError of an exact copy = %g", e)
	}
	if e := RMSError(x, FromF32("x", []int{4}, []float32{2, 3, 4, 5})); math.Abs(e-1) > 1e-12 {
		t.Errorf("RMSError off by one everywhere = %g, want 1", e)
	}
	if e := RMSError(x[:3], FromF32("x", []int{4}, x)); !math.IsNaN(e) {
		t.Errorf("RMSError of mismatched lengths = %g, want NaN", e)
	}
}

// le16 and friends build hand-made block data.
func le16(h ...uint16) []byte {
	b := make([]byte, 0, 2*len(h))
	for _, v := range h {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func repeat(v byte, n int) []byte { return []byte(strings.Repeat(string([]byte{v}), n)) }

func decode(t *testing.T, tn *Tensor) []float32 {
	t.Helper()
	f, err := tn.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLayoutQ8_0 builds two blocks by hand: scales 0.5 (0x3800) and −2
// (0xC000), padded to 4 bytes, then the int8 quants j−16 and j.
func TestLayoutQ8_0(t *testing.T) {
	qs := make([]byte, 64)
	var want []float32
	for j := range 32 {
		qs[j] = byte(int8(j - 16))
		want = append(want, 0.5*float32(j-16))
	}
	for j := range 32 {
		qs[32+j] = byte(int8(j))
		want = append(want, -2*float32(j))
	}
	data := cat(le16(0x3800, 0xC000), qs)
	got := decode(t, &Tensor{Name: "q", DType: Q8_0, Shape: []int{1, 64}, Data: data})
	if !equalF32(got, want) {
		t.Errorf("decoded %v\nwant %v", got, want)
	}
	// The quantiser picks the scale amax/127 itself: with amax = 127 it is
	// 1 (0x3C00, padded), and integer values become their own quants.
	x := make([]float32, 32)
	for j := range x {
		x[j] = float32(j*8 - 127) // −127..121
	}
	x[31] = 127
	q, err := Quantize(FromF32("q", []int{1, 32}, x), Q8_0)
	if err != nil {
		t.Fatal(err)
	}
	wantQ := make([]byte, 32)
	for j, v := range x {
		wantQ[j] = byte(int8(v))
	}
	if wantData := cat(le16(0x3C00, 0), wantQ); string(q.Data) != string(wantData) {
		t.Errorf("quantised to % x\nwant % x", q.Data, wantData)
	}
}

// TestLayoutQ4_0 builds one block of scale 0.25 (0x3400): byte j holds
// nibble j in the low half (element j) and 15−j in the high half
// (element j+16).
func TestLayoutQ4_0(t *testing.T) {
	qs := make([]byte, 16)
	want := make([]float32, 32)
	for j := range 16 {
		qs[j] = byte(j) | byte(15-j)<<4
		want[j] = 0.25 * float32(j-8)
		want[j+16] = 0.25 * float32(15-j-8)
	}
	got := decode(t, &Tensor{Name: "q", DType: Q4_0, Shape: []int{1, 32}, Data: cat(le16(0x3400, 0), qs)})
	if !equalF32(got, want) {
		t.Errorf("decoded %v\nwant %v", got, want)
	}
	// Quantising those values back: the largest magnitude is −2 (nibble 0),
	// so the quantiser chooses d = −2/−8 = 0.25 and reproduces the bytes.
	q, err := Quantize(FromF32("q", []int{1, 32}, want), Q4_0)
	if err != nil {
		t.Fatal(err)
	}
	if wantData := cat(le16(0x3400, 0), qs); string(q.Data) != string(wantData) {
		t.Errorf("quantised to % x\nwant % x", q.Data, wantData)
	}
}

// TestLayoutQ4_K builds one super-block by hand: d = 2⁻⁶ (0x2400), dmin =
// 2⁻⁷ (0x2000), sub-scales and sub-mins chosen so that the largest of each
// is 255, and in every sub-block nibble j mod 16 for element j < 16 and
// 15 − j mod 16 above. Every value is exact in float32, and each sub-block
// spans its grid from nibble 0 to 15, so the quantiser must find exactly
// these bytes again.
func TestLayoutQ4_K(t *testing.T) {
	const d, dmin = 1.0 / 64, 1.0 / 128
	sc := []byte{255, 200, 150, 100, 64, 32, 16, 1}
	mn := []byte{0, 255, 3, 40, 0, 128, 7, 200}
	qs := make([]byte, 128)
	want := make([]float32, 256)
	for s := range 8 {
		for j := range 16 {
			qs[16*s+j] = byte(j) | byte(15-j)<<4
			want[32*s+j] = d*float32(sc[s])*float32(j) - dmin*float32(mn[s])
			want[32*s+16+j] = d*float32(sc[s])*float32(15-j) - dmin*float32(mn[s])
		}
	}
	data := cat(le16(0x2400, 0x2000), sc, mn, qs)
	if len(data) != 148 {
		t.Fatalf("hand-built block is %d bytes", len(data))
	}
	got := decode(t, &Tensor{Name: "q", DType: Q4_K, Shape: []int{1, 256}, Data: data})
	if !equalF32(got, want) {
		t.Errorf("decoded %v\nwant %v", got, want)
	}
	q, err := Quantize(FromF32("q", []int{1, 256}, want), Q4_K)
	if err != nil {
		t.Fatal(err)
	}
	if string(q.Data) != string(data) {
		t.Errorf("quantised to % x\nwant % x", q.Data, data)
	}
}

// TestQ4_KTwoSuperBlocks checks the array order across super-blocks and
// rows: all (d, dmin) pairs first, then all scales, all mins, all quants.
func TestQ4_KTwoSuperBlocks(t *testing.T) {
	// Row 0 is 1.0 everywhere, row 1 is −3.0 everywhere.
	x := make([]float32, 512)
	for i := range 256 {
		x[i], x[256+i] = 1, -3
	}
	q, err := Quantize(FromF32("q", []int{2, 256}, x), Q4_K)
	if err != nil {
		t.Fatal(err)
	}
	d := q.Data
	dm0, dm1 := binary.LittleEndian.Uint32(d[0:]), binary.LittleEndian.Uint32(d[4:])
	// Row 0: min 0, scale 1/15, so d > 0, dmin = 0, every nibble 15.
	if uint16(dm0>>16) != 0 || uint16(dm0) == 0 {
		t.Errorf("row 0 (d, dmin) = %#08x, want d > 0 and dmin = 0", dm0)
	}
	// Row 1: constant negative: scale 0 (d = 0), min 3, nibbles 0.
	if uint16(dm1) != 0 || uint16(dm1>>16) == 0 {
		t.Errorf("row 1 (d, dmin) = %#08x, want d = 0 and dmin > 0", dm1)
	}
	scales, mins, qs := d[8:24], d[24:40], d[40:]
	if string(scales) != string(cat(repeat(255, 8), repeat(0, 8))) {
		t.Errorf("scales % x", scales)
	}
	if string(mins) != string(cat(repeat(0, 8), repeat(255, 8))) {
		t.Errorf("mins % x", mins)
	}
	if string(qs) != string(cat(repeat(0xff, 128), repeat(0, 128))) {
		t.Errorf("quants % x", qs)
	}
	// Both come back within f16's precision of the unit (2⁻¹¹ relative).
	if got := decode(t, q); math.Abs(float64(got[0]-1)) > 5e-4 || math.Abs(float64(got[256]+3)) > 1.5e-3 {
		t.Errorf("decoded %v, %v; want 1, −3", got[0], got[256])
	}
}
