package tensor

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkQuantize measures quantising a 256×4096 f32 matrix; bytes are
// those of the f32 input.
func BenchmarkQuantize(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 256*4096)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	src := FromF32("w", []int{256, 4096}, x)
	for _, d := range []DType{F16, Q8_0, Q4_0, Q4_K} {
		b.Run(d.String(), func(b *testing.B) {
			b.SetBytes(int64(len(src.Data)))
			for b.Loop() {
				if _, err := Quantize(src, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
