package tensor

import (
	"bytes"
	"fmt"
	"testing"
)

// TestEncoderMatchesQuantize: fed a matrix's own values column by column,
// an Encoder writes exactly Quantize's bytes, and every Set returns the
// value the stored tensor decodes to at that position.
func TestEncoderMatchesQuantize(t *testing.T) {
	const rows, cols = 3, 512
	for _, data := range testData(rows, cols) {
		for _, d := range []DType{Q8_0, Q4_0, Q4_K} {
			t.Run(fmt.Sprintf("%s/%v", data.name, d), func(t *testing.T) {
				want, err := Quantize(FromF32("w", []int{rows, cols}, data.x), d)
				if err != nil {
					t.Fatal(err)
				}
				e, err := NewEncoder("w", d, rows, cols)
				if err != nil {
					t.Fatal(err)
				}
				set := make([]float32, rows*cols)
				for r := range rows {
					row := data.x[r*cols : (r+1)*cols]
					for c := range cols {
						if c%FitSize == 0 {
							e.Fit(r, c, row[c:])
						}
						set[r*cols+c] = e.Set(r, c, row[c])
					}
				}
				got := e.Tensor()
				if !bytes.Equal(got.Data, want.Data) {
					t.Fatalf("encoder bytes differ from Quantize's")
				}
				dec, err := got.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				for i := range dec {
					if dec[i] != set[i] {
						t.Fatalf("element %d: Set returned %v, tensor decodes to %v", i, set[i], dec[i])
					}
				}
			})
		}
	}
}

// TestEncoderFeedback: values changed after Fit still decode to what Set
// returned (the parameters stay fixed; nibbles follow the new values).
func TestEncoderFeedback(t *testing.T) {
	const cols = 256
	x := testData(1, cols)[0].x
	for _, d := range []DType{Q8_0, Q4_0, Q4_K} {
		e, err := NewEncoder("w", d, 1, cols)
		if err != nil {
			t.Fatal(err)
		}
		set := make([]float32, cols)
		for c := range cols {
			if c%FitSize == 0 {
				e.Fit(0, c, x[c:])
			}
			set[c] = e.Set(0, c, 0.7*x[c]+0.01)
		}
		dec, err := e.Tensor().Float32s()
		if err != nil {
			t.Fatal(err)
		}
		for i := range dec {
			if dec[i] != set[i] {
				t.Fatalf("%v element %d: Set returned %v, tensor decodes to %v", d, i, set[i], dec[i])
			}
		}
	}
	if _, err := NewEncoder("w", F16, 1, cols); err == nil {
		t.Errorf("NewEncoder accepted f16")
	}
}
