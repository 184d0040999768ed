package cpu

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkMatVec multiplies a 4096×4096 weight in each format by one
// token, the shape of decoding; the throughput is of the weight's stored
// bytes, which bound decoding speed once the kernel keeps up with memory.
func BenchmarkMatVec(b *testing.B) {
	const n = 4096
	r := rand.New(rand.NewPCG(1, 2))
	for _, d := range formats {
		b.Run(d.String(), func(b *testing.B) {
			q, _ := quantized(b, r, d, n, n)
			be := New(Options{})
			w, err := be.Upload(q)
			if err != nil {
				b.Fatal(err)
			}
			x, _ := be.NewBuf(1, n)
			copy(x.(*buf).f, randomF32(r, n, 1))
			dst, _ := be.NewBuf(1, n)
			b.SetBytes(w.Bytes())
			for b.Loop() {
				be.MatMul(dst, x, w, nil)
			}
		})
	}
}
