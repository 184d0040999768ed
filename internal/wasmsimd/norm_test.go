package wasmsimd

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/moderuntime/mode/runtime/vec"
)

// softmaxGo is attention's division by s and then runtime/cpu's
// softmaxFast without sinks (max is its vec.Max for these inputs), the
// reference KernelSoftmax reproduces.
func softmaxGo(x []float32, s float32) {
	for i := range x {
		x[i] /= s
	}
	m := x[0]
	for _, v := range x {
		m = max(m, v)
	}
	inv := 1 / vec.ExpShift(x, x, m)
	for i := range x {
		x[i] *= inv
	}
}

// TestNormKernelsMatchGo checks KernelRMSNorm, KernelRMSNormLanes and
// KernelSoftmax against the Go code they replace, bit for bit, on ragged
// sizes (tails of one to seven past the four or eight lanes), unaligned
// buffers, values with subnormals, zeros of both signs and large ones,
// scores across exp's clamp, and that none writes past its n elements;
// the RMSNorms also in place.
func TestNormKernelsMatchGo(t *testing.T) {
	h := newKernelHost(t, 64)
	r := rand.New(rand.NewPCG(15, 16))
	ctx := context.Background()
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 15, 16, 17, 64, 67, 511, 512, 1026} {
		x, w := randFloats(r, n), randFloats(r, n)
		eps := []float32{1e-5, 1e-6, 0}[n%3]
		for _, k := range []struct {
			name string
			ref  func(o, x, w []float32, eps float32)
		}{{KernelRMSNorm, vec.RMSNorm}, {KernelRMSNormLanes, vec.RMSNormLanes}} {
			for _, inPlace := range []bool{false, true} {
				h.top = 16
				px := h.put(t, f32Bytes(append(slices.Clone(x), 7)), 4)
				pw := h.put(t, f32Bytes(w), 8)
				po := px
				if !inPlace {
					po = h.put(t, f32Bytes(make([]float32, n+1)), 12)
				}
				if _, err := h.mod.ExportedFunction(k.name).Call(ctx, uint64(po), uint64(px), uint64(pw), uint64(n), uint64(math.Float32bits(eps))); err != nil {
					t.Fatal(err)
				}
				want := make([]float32, n)
				k.ref(want, x, w, eps)
				got := readF32(t, h, po, n+1)
				for i := range n {
					if !same(got[i], math.Float32bits(want[i])) {
						t.Errorf("%s n=%d in place %v [%d]: SIMD %v (%#x), Go %v (%#x)", k.name, n, inPlace, i,
							math.Float32frombits(got[i]), got[i], want[i], math.Float32bits(want[i]))
					}
				}
				if past := []float32{0, 7}[btoi(inPlace)]; got[n] != math.Float32bits(past) {
					t.Errorf("%s n=%d in place %v wrote past the end: %#x", k.name, n, inPlace, got[n])
				}
			}
		}

		// attention scores: mostly moderate, some large (past exp's clamp
		// once divided), some equal to the maximum, ±0
		sc := make([]float32, n)
		for i := range sc {
			sc[i] = float32(r.NormFloat64() * 4)
			switch r.IntN(16) {
			case 0:
				sc[i] *= 300
			case 1:
				sc[i] = sc[r.IntN(i+1)]
			case 2:
				sc[i] = float32(math.Copysign(0, float64(r.IntN(2))-0.5))
			case 3:
				sc[i] = math.Float32frombits(uint32(r.IntN(1<<23)) | uint32(r.IntN(2))<<31) // subnormal
			}
		}
		s := []float32{8, 11.313708, 0.75}[n%3]
		h.top = 16
		px := h.put(t, f32Bytes(append(slices.Clone(sc), 7)), 4)
		if _, err := h.mod.ExportedFunction(KernelSoftmax).Call(ctx, uint64(px), uint64(n), uint64(math.Float32bits(s))); err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(sc)
		softmaxGo(want, s)
		got := readF32(t, h, px, n+1)
		for i := range n {
			if !same(got[i], math.Float32bits(want[i])) {
				t.Errorf("softmax n=%d [%d] of %v/%v: SIMD %v (%#x), Go %v (%#x)", n, i, sc[i], s,
					math.Float32frombits(got[i]), got[i], want[i], math.Float32bits(want[i]))
			}
		}
		if got[n] != math.Float32bits(7) {
			t.Errorf("softmax n=%d wrote past the end: %#x", n, got[n])
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
