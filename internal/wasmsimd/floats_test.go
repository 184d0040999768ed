package wasmsimd

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/moderuntime/mode/runtime/vec"
)

// randFloats returns n normal floats with, now and then, a subnormal, a
// zero of either sign or a large value, so that rounding, subnormal
// arithmetic and cancellation all come up.
func randFloats(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		switch r.IntN(16) {
		case 0:
			v[i] = math.Float32frombits(uint32(r.IntN(1<<23)) | uint32(r.IntN(2))<<31) // subnormal
		case 1:
			v[i] = float32(math.Copysign(0, float64(r.IntN(2))-0.5))
		case 2:
			v[i] = float32(r.NormFloat64() * 1e4)
		default:
			v[i] = float32(r.NormFloat64())
		}
	}
	return v
}

func halfBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, 2*n)
	for i := range n {
		h := uint16(r.IntN(1 << 16))
		if h&0x7c00 == 0x7c00 && r.IntN(8) > 0 { // mostly finite
			h &^= 0x4000
		}
		binary.LittleEndian.PutUint16(b[2*i:], h)
	}
	return b
}

func readF32(t *testing.T, h *kernelHost, p uint32, n int) []uint32 {
	t.Helper()
	b, ok := h.mem.Read(p, uint32(4*n))
	if !ok {
		t.Fatalf("read of %d floats at %d out of range", n, p)
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

// same compares float bits, NaNs equal to any NaN (WebAssembly leaves a
// NaN's payload to the engine; vec's NaNs come only from NaN inputs).
func same(a, b uint32) bool {
	fa, fb := math.Float32frombits(a), math.Float32frombits(b)
	return a == b || fa != fa && fb != fb
}

// TestFloatKernelsMatchGo checks KernelF32 and KernelF16 against
// vec.DotLanesGo (of vec.HalfToFloat's rows for f16), bit for bit, on
// ragged sizes (below, at and past the eight lanes, with tails), one to
// three activation rows, a wide output stride and unaligned buffers.
func TestFloatKernelsMatchGo(t *testing.T) {
	h := newKernelHost(t, 64)
	r := rand.New(rand.NewPCG(5, 6))
	for _, half := range []bool{false, true} {
		name := KernelF32
		if half {
			name = KernelF16
		}
		for _, sz := range []struct{ rows, n, trows int }{
			{1, 1, 1}, {3, 7, 2}, {4, 8, 1}, {5, 9, 3}, {2, 33, 1}, {7, 64, 2}, {3, 100, 3}, {0, 8, 1}, {2, 0, 1}, {6, 515, 2},
		} {
			h.top = 16
			rows, n, trows := sz.rows, sz.n, sz.trows
			var wf []float32
			var wb []byte
			if half {
				wb = halfBytes(r, rows*n)
				wf = make([]float32, rows*n)
				vec.HalfToFloat(wf, wb)
			} else {
				wf = randFloats(r, rows*n)
				wb = f32Bytes(wf)
			}
			x := randFloats(r, trows*n)
			ds := rows + 3
			pdst := h.put(t, make([]byte, 4*ds*trows), 0)
			pw := h.put(t, wb, 2)
			px := h.put(t, f32Bytes(x), 4)
			if _, err := h.mod.ExportedFunction(name).Call(context.Background(),
				uint64(pdst), uint64(ds), uint64(pw), uint64(px), uint64(rows), uint64(n), uint64(trows)); err != nil {
				t.Fatalf("%s %+v: %v", name, sz, err)
			}
			out := readF32(t, h, pdst, ds*trows)
			for tr := range trows {
				for i := range ds {
					got := out[tr*ds+i]
					if i >= rows {
						if got != 0 {
							t.Errorf("%s %+v: wrote %#x beyond the rows at [%d][%d]", name, sz, got, tr, i)
						}
						continue
					}
					want := math.Float32bits(vec.DotLanesGo(wf[n*i:n*(i+1)], x[n*tr:n*(tr+1)]))
					if !same(got, want) {
						t.Errorf("%s %+v row %d act %d: SIMD %v (%#x), Go %v (%#x)", name, sz, i, tr,
							math.Float32frombits(got), got, math.Float32frombits(want), want)
					}
				}
			}
		}
	}
}

// TestHalfLanes checks the f16 kernel's vector decoding on every f16 bit
// pattern: 65536 one-element... rows of eight, each row's weights one
// pattern then zeros, against an activation of 1 then zeros, so each
// result is the decoded value itself (NaNs compared as NaNs).
func TestHalfLanes(t *testing.T) {
	h := newKernelHost(t, 64)
	const rows = 1 << 16
	w := make([]byte, 16*rows)
	for i := range rows {
		binary.LittleEndian.PutUint16(w[16*i+2*(i%8):], uint16(i)) // in every lane position
	}
	pdst := h.put(t, make([]byte, 4*rows), 0)
	pw := h.put(t, w, 0)
	x := make([]float32, 8*8)
	for l := range 8 {
		x[8*l+l] = 1 // activation row l picks lane l
	}
	px := h.put(t, f32Bytes(x), 0)
	// One call per lane position: rows whose pattern sits in lane l.
	for l := range 8 {
		if _, err := h.mod.ExportedFunction(KernelF16).Call(context.Background(),
			uint64(pdst), 0, uint64(pw), uint64(px+uint32(32*l)), uint64(rows), 8, 1); err != nil {
			t.Fatal(err)
		}
		out := readF32(t, h, pdst, rows)
		for i := l; i < rows; i += 8 {
			var want [1]float32
			vec.HalfToFloat(want[:], w[16*i+2*l:16*i+2*l+2])
			// 1·v + zeros: v itself, except that -0 + +0 products give +0
			// in the lane sum, as they do in vec.DotLanesGo.
			wb := math.Float32bits(vec.DotLanesGo(want[:], []float32{1}))
			if v := want[0]; v == 0 {
				wb = 0
			}
			if !same(out[i], wb) {
				t.Fatalf("f16 %#04x in lane %d: SIMD %#x, Go %#x", i, l, out[i], wb)
			}
		}
	}
}

// TestAttentionKernelsMatchGo checks KernelScores and KernelWeightedSum
// against vec.ScoresGo and vec.WeightedSumGo, bit for bit, on head sizes
// around the four lanes, row counts from one up and strides wider than a
// head (the grouped heads of a KV cache row); sizes on either side of the
// kernels' blocks of four rows and sixteen outputs.
func TestAttentionKernelsMatchGo(t *testing.T) {
	h := newKernelHost(t, 64)
	r := rand.New(rand.NewPCG(9, 10))
	for _, sz := range []struct{ n, hd, stride int }{
		{1, 1, 1}, {1, 4, 4}, {3, 5, 5}, {7, 8, 16}, {17, 33, 40}, {64, 64, 256}, {5, 3, 7}, {0, 8, 8}, {4, 0, 8}, {200, 128, 128},
		{4, 16, 16}, {6, 20, 24}, {9, 37, 37}, {11, 50, 64}, {8, 3, 3}, {13, 64, 128},
	} {
		h.top = 16
		n, hd, stride := sz.n, sz.hd, sz.stride
		q := randFloats(r, hd)
		cache := randFloats(r, max(0, (n-1)*stride+hd))
		a := randFloats(r, n)
		pq := h.put(t, f32Bytes(q), 4)
		pk := h.put(t, f32Bytes(cache), 8)
		pa := h.put(t, f32Bytes(a), 12)
		pdst := h.put(t, make([]byte, 4*(n+1)), 0)
		po := h.put(t, make([]byte, 4*(hd+1)), 0)
		ctx := context.Background()
		if _, err := h.mod.ExportedFunction(KernelScores).Call(ctx, uint64(pdst), uint64(pq), uint64(pk), uint64(n), uint64(hd), uint64(stride)); err != nil {
			t.Fatal(err)
		}
		if _, err := h.mod.ExportedFunction(KernelWeightedSum).Call(ctx, uint64(po), uint64(pa), uint64(pk), uint64(n), uint64(hd), uint64(stride)); err != nil {
			t.Fatal(err)
		}
		scores, o := make([]float32, n), make([]float32, hd)
		if n > 0 && hd > 0 {
			vec.ScoresGo(scores, q, cache, stride)
			vec.WeightedSumGo(o, a, cache, stride)
		}
		for _, c := range []struct {
			name string
			got  []uint32
			want []float32
		}{{KernelScores, readF32(t, h, pdst, n+1), scores}, {KernelWeightedSum, readF32(t, h, po, hd+1), o}} {
			for i, w := range c.want {
				if !same(c.got[i], math.Float32bits(w)) {
					t.Errorf("%s %+v [%d]: SIMD %v (%#x), Go %v", c.name, sz, i, math.Float32frombits(c.got[i]), c.got[i], w)
				}
			}
			if len(c.want) > 0 && c.got[len(c.want)] != 0 {
				t.Errorf("%s %+v: wrote past the end", c.name, sz)
			}
		}
	}
}

// TestExpKernelsMatchGo checks KernelExp against vec.Exp(x − m) and
// KernelSiLU against vec.SiLUMul, bit for bit (NaNs as NaNs), on the
// whole groups of four of ragged lengths, with inputs across and past the
// clamp, subnormals, zeros of both signs, infinities and NaNs; and that
// neither touches the elements past n&^3.
func TestExpKernelsMatchGo(t *testing.T) {
	h := newKernelHost(t, 64)
	r := rand.New(rand.NewPCG(11, 12))
	special := []float32{0, float32(math.Copysign(0, -1)), 88.72, -87.33, 88.73, -87.34, 100, -100, 1e-40, -1e-40,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 0.5, -0.5, 1e30, -1e30}
	for _, n := range []int{0, 1, 3, 4, 5, 8, 13, 64, 67, 1408, 4099} {
		x := randFloats(r, n)
		for i := range x {
			switch r.IntN(8) {
			case 0:
				x[i] = special[r.IntN(len(special))]
			case 1:
				x[i] *= 40 // across the clamp
			}
		}
		u := randFloats(r, n)
		m := []float32{0, 1.5, -3, float32(math.Copysign(0, -1))}[n%4]
		h.top = 16
		px := h.put(t, f32Bytes(x), 4)
		pdst := h.put(t, make([]byte, 4*n), 8)
		pg := h.put(t, f32Bytes(x), 12)
		pu := h.put(t, f32Bytes(u), 0)
		ctx := context.Background()
		if _, err := h.mod.ExportedFunction(KernelExp).Call(ctx, uint64(pdst), uint64(px), uint64(n), uint64(math.Float32bits(m))); err != nil {
			t.Fatal(err)
		}
		if _, err := h.mod.ExportedFunction(KernelSiLU).Call(ctx, uint64(pg), uint64(pu), uint64(n)); err != nil {
			t.Fatal(err)
		}
		n4 := n &^ 3
		silu := slices.Clone(x)
		vec.SiLUMul(silu[:n4], slices.Clone(u[:n4]))
		gotExp, gotSiLU := readF32(t, h, pdst, n), readF32(t, h, pg, n)
		for i := range n {
			wantExp, wantSiLU := float32(0), x[i] // past n4: untouched
			if i < n4 {
				wantExp, wantSiLU = vec.Exp(x[i]-m), silu[i]
			}
			if !same(gotExp[i], math.Float32bits(wantExp)) {
				t.Errorf("exp n=%d [%d] Exp(%v − %v): SIMD %v (%#x), Go %v", n, i, x[i], m, math.Float32frombits(gotExp[i]), gotExp[i], wantExp)
			}
			if !same(gotSiLU[i], math.Float32bits(wantSiLU)) {
				t.Errorf("silu n=%d [%d] g=%v u=%v: SIMD %v (%#x), Go %v", n, i, x[i], u[i], math.Float32frombits(gotSiLU[i]), gotSiLU[i], wantSiLU)
			}
		}
	}
}

// TestQ16KernelMatchesGo checks KernelQ16 against vec.QuantizeQ16 on
// finite blocks (random, large, tiny and subnormal values, all-zero
// blocks, ±0), bit for bit in q, d and g, and that it writes no further.
func TestQ16KernelMatchesGo(t *testing.T) {
	h := newKernelHost(t, 64)
	r := rand.New(rand.NewPCG(13, 14))
	for _, nb := range []int{0, 1, 2, 3, 7, 16, 45} {
		x := randFloats(r, 32*nb)
		for b := range nb {
			switch b % 5 {
			case 1:
				clear(x[32*b : 32*b+32])
				x[32*b+3] = float32(math.Copysign(0, -1))
			case 2:
				x[32*b+r.IntN(32)] = 3e38
			case 3:
				for i := range 32 {
					x[32*b+i] *= 1e-34 // d subnormal, 1/d finite
				}
			}
		}
		h.top = 16
		px := h.put(t, f32Bytes(x), 4)
		pq := h.put(t, make([]byte, 64*nb+2), 0)
		pd := h.put(t, make([]byte, 4*nb+4), 8)
		pg := h.put(t, make([]byte, 4*nb+4), 12)
		if _, err := h.mod.ExportedFunction(KernelQ16).Call(context.Background(), uint64(pq), uint64(pd), uint64(pg), uint64(px), uint64(nb)); err != nil {
			t.Fatal(err)
		}
		wq, wd, wg := make([]int16, 32*nb), make([]float32, nb), make([]float32, nb)
		vec.QuantizeQ16(wq, wd, wg, x)
		qb, _ := h.mem.Read(pq, uint32(64*nb+2))
		for i, w := range wq {
			if got := int16(binary.LittleEndian.Uint16(qb[2*i:])); got != w {
				t.Fatalf("nb=%d q[%d]: SIMD %d, Go %d", nb, i, got, w)
			}
		}
		if qb[64*nb] != 0 || qb[64*nb+1] != 0 {
			t.Errorf("nb=%d: wrote past q", nb)
		}
		gd, gg := readF32(t, h, pd, nb+1), readF32(t, h, pg, nb+1)
		for b := range nb {
			if gd[b] != math.Float32bits(wd[b]) || gg[b] != math.Float32bits(wg[b]) {
				t.Errorf("nb=%d block %d: SIMD d %#x g %#x, Go %#x %#x", nb, b, gd[b], gg[b], math.Float32bits(wd[b]), math.Float32bits(wg[b]))
			}
		}
		if gd[nb] != 0 || gg[nb] != 0 {
			t.Errorf("nb=%d: wrote past d or g", nb)
		}
	}
	// A block so small that 1/d overflows: every nonzero product is ±Inf
	// and Go's wasm port (i64.trunc_sat, then the low 32 bits) gives −1
	// for +Inf and 0 for −Inf, as does 0·Inf = NaN; amd64's Go differs,
	// so the expected quants are that rule's, not vec's here.
	x := make([]float32, 32)
	for i := range x {
		x[i] = float32(i%3-1) * 3e-41
	}
	h.top = 16
	px := h.put(t, f32Bytes(x), 0)
	pq := h.put(t, make([]byte, 64), 0)
	pd := h.put(t, make([]byte, 4), 0)
	pg := h.put(t, make([]byte, 4), 0)
	if _, err := h.mod.ExportedFunction(KernelQ16).Call(context.Background(), uint64(pq), uint64(pd), uint64(pg), uint64(px), 1); err != nil {
		t.Fatal(err)
	}
	qb, _ := h.mem.Read(pq, 64)
	for i, v := range x {
		want := int16(0)
		if v > 0 {
			want = -1
		}
		if got := int16(binary.LittleEndian.Uint16(qb[2*i:])); got != want {
			t.Errorf("tiny block q[%d] (x %v): SIMD %d, Go on wasm %d", i, v, got, want)
		}
	}
}
