package cpu

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/tensor"
)

// TestAdopt checks that an adopted weight computes what an uploaded copy
// does, in every format, and that it really uses the tensor's memory
// (a change to the tensor shows in the adopted weight's products and not
// in the uploaded one's), except for f32 data at an odd address, which it
// must copy.
func TestAdopt(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const out, in, tokens = 7, 256, 3
	x := randomF32(r, tokens*in, 1)
	b := New(Options{Threads: 2})
	defer b.Close()
	product := func(w backend.Weight) []float32 {
		t.Helper()
		xb, _ := b.NewBuf(tokens, in)
		copy(xb.(*buf).f, x)
		dst, _ := b.NewBuf(tokens, out)
		b.MatMul(dst, xb, w, nil)
		got := make([]float32, tokens*out)
		if err := b.Read(dst, got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	weights := func(q *tensor.Tensor) (adopted, uploaded backend.Weight) {
		t.Helper()
		a, err := b.Adopt(q)
		if err != nil {
			t.Fatal(err)
		}
		u, err := b.Upload(q)
		if err != nil {
			t.Fatal(err)
		}
		return a, u
	}
	// scribble changes the last quarter of the tensor's bytes: quants of
	// the last rows in every format.
	scribble := func(data []byte) {
		for i := len(data) * 3 / 4; i < len(data); i++ {
			data[i] ^= 0x5a
		}
	}
	for _, d := range formats {
		t.Run(d.String(), func(t *testing.T) {
			q, _ := quantized(t, r, d, out, in)
			a, u := weights(q)
			before := product(u)
			if got := product(a); !slices.Equal(got, before) {
				t.Fatalf("adopted weight computes %v, uploaded %v", got, before)
			}
			scribble(q.Data)
			if slices.Equal(product(a), before) {
				t.Errorf("the adopted %v weight did not see a change to the tensor: it holds a copy", d)
			}
			if !slices.Equal(product(u), before) {
				t.Errorf("the uploaded %v weight saw a change to the tensor: it shares its memory", d)
			}
		})
	}
	t.Run("f32 at an odd address is copied", func(t *testing.T) {
		q, _ := quantized(t, r, tensor.F32, out, in)
		odd := make([]byte, len(q.Data)+1)
		copy(odd[1:], q.Data)
		q.Data = odd[1:]
		a, u := weights(q)
		before := product(u)
		if got := product(a); !slices.Equal(got, before) {
			t.Fatalf("adopted weight computes %v, uploaded %v", got, before)
		}
		scribble(q.Data)
		if !slices.Equal(product(a), before) {
			t.Error("a misaligned f32 tensor was viewed in place")
		}
	})
}
