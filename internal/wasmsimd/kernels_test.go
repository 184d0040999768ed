package wasmsimd

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/moderuntime/mode/runtime/vec"
)

// kernelHost runs the kernel module under wazero (SIMD128 on, as its
// compiler and interpreter both implement it) over a memory of its own.
type kernelHost struct {
	mod api.Module
	mem api.Memory
	top uint32 // next free byte
}

func newKernelHost(t testing.TB, pages uint32) *kernelHost {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	mod, err := rt.Instantiate(ctx, testModule(pages))
	if err != nil {
		t.Fatalf("instantiating the kernel module: %v", err)
	}
	return &kernelHost{mod: mod, mem: mod.ExportedMemory("mem"), top: 16}
}

// put copies b into memory at the next free address plus skew bytes (to
// exercise unaligned loads) and returns that address.
func (h *kernelHost) put(t testing.TB, b []byte, skew uint32) uint32 {
	t.Helper()
	p := h.top + skew
	if !h.mem.Write(p, b) {
		t.Fatalf("write of %d bytes at %d out of range", len(b), p)
	}
	h.top = (p + uint32(len(b)) + 15) &^ 15
	return p
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func i16Bytes(v []int16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(x))
	}
	return b
}

// randHalfs returns n f16 scales: finite, of every exponent including
// subnormals and zero, either sign.
func randHalfs(r *rand.Rand, n int) []byte {
	b := make([]byte, 2*n)
	for i := range n {
		h := uint16(r.IntN(0x7c00)) | uint16(r.IntN(2))<<15
		if r.IntN(3) > 0 { // mostly scales of realistic size
			h = uint16(0x1000+r.IntN(0x2000)) | uint16(r.IntN(2))<<15
		}
		binary.LittleEndian.PutUint16(b[2*i:], h)
	}
	return b
}

// TestKernelsMatchGo checks every kernel against runtime/vec's dot
// products, bit for bit, on random weights and activations of ragged
// sizes: one to sixteen rows (q4_0's groups of four and the rows left),
// one to nine activation rows (whole tiles of four and the rest), zero to
// 44 blocks (every count past whole runs: q4_0 sums blocks by their
// number mod 4), activation scales on either side of q4_0's bounds (2^-98
// and 2^112), Inf and NaN, an output stride wider than the rows,
// unaligned buffers.
func TestKernelsMatchGo(t *testing.T) {
	h := newKernelHost(t, 64)
	r := rand.New(rand.NewPCG(1, 2))
	for _, kc := range []struct {
		name string
		qb   int
		dot  func(wd, wq []byte, xd []float32, xq []int16) float32
	}{
		{KernelQ8_0, 32, vec.DotQ8_0},
		{KernelQ4_0, 16, vec.DotQ4_0},
	} {
		type size struct{ rows, nb, trows int }
		var cases []struct {
			size
			xd scaleRegime
		}
		for _, sz := range []size{
			{1, 1, 1}, {3, 1, 2}, {4, 2, 1}, {5, 3, 3}, {7, 16, 1}, {9, 11, 2}, {2, 0, 1}, {0, 4, 1}, {13, 44, 3},
			{2, 4, 4}, {3, 9, 5}, {5, 44, 9}, {1, 7, 8}, {8, 23, 1}, {6, 12, 2},
			// every count of blocks left past whole runs (q8_0's tile
			// takes runs of four, rowRuns of eight, then four; q4_0 runs
			// of eight, then four, then up to three blocks alone, each
			// block's accumulator its number mod 4), fewer than a run,
			// one row at a time (q4_0 below four rows)
			{3, 2, 4}, {2, 3, 4}, {3, 5, 5}, {3, 6, 5}, {3, 10, 6}, {2, 13, 4},
			{3, 14, 1}, {3, 15, 2}, {2, 17, 5}, {3, 19, 1}, {3, 21, 3}, {3, 30, 1},
			// and through q4_0's groups of four rows M = rows/4 apart, the
			// rows left (rows mod 4) one at a time: every count of blocks
			// mod 8, one to three activation rows
			{4, 1, 1}, {4, 3, 2}, {5, 4, 1}, {6, 5, 3}, {7, 6, 1}, {8, 7, 2},
			{9, 8, 1}, {10, 9, 3}, {11, 10, 1}, {12, 11, 2}, {4, 12, 1}, {5, 13, 2},
			{6, 14, 3}, {7, 15, 1}, {8, 16, 2}, {9, 17, 1}, {15, 27, 2}, {16, 30, 1},
		} {
			cases = append(cases, struct {
				size
				xd scaleRegime
			}{sz, scalesUsual})
		}
		for _, sz := range []size{{5, 44, 1}, {4, 13, 2}, {3, 9, 5}, {3, 3, 1}, {3, 6, 5}, {3, 7, 2}, {2, 10, 1}, {3, 17, 6}, {9, 21, 2}} {
			for _, reg := range []scaleRegime{scalesTiny, scalesBelow, scalesAtBound, scalesOneTiny, scalesHuge, scalesOneHuge, scalesInf} {
				cases = append(cases, struct {
					size
					xd scaleRegime
				}{sz, reg})
			}
		}
		for _, c := range cases {
			h.top = 16
			sz := c.size
			rows, nb, trows := sz.rows, sz.nb, sz.trows
			wd := randHalfs(r, rows*nb)
			wq := make([]byte, rows*nb*kc.qb)
			for i := range wq {
				wq[i] = byte(r.IntN(256))
			}
			xd := c.xd.scales(r, trows*nb)
			if c.xd == scalesHuge || c.xd == scalesOneHuge {
				// the largest f16 scales, whose products with scales near
				// 2^112 come nearest to overflowing
				for i := 0; i < len(wd); i += 2 {
					binary.LittleEndian.PutUint16(wd[i:], uint16(0x7800+r.IntN(0x3ff))|uint16(r.IntN(2))<<15)
				}
			}
			if c.xd.tiny() {
				// the smallest f16 scales, whose products with scales
				// near 2^-98 come nearest to 2^-122 (in every block: a
				// product rounded wrongly would vanish in a row's sum
				// beside larger ones)
				for i := 0; i < len(wd); i += 2 {
					binary.LittleEndian.PutUint16(wd[i:], uint16(1+r.IntN(7))|uint16(r.IntN(2))<<15)
				}
			}
			xq := make([]int16, trows*nb*32)
			for i := range xq {
				xq[i] = int16(r.IntN(65535) - 32767)
			}
			for b, d := range xd {
				if d >= 0x1p112 && d <= math.MaxFloat32 {
					// sums of zero with d·wd beyond the largest f32:
					// vec's d is Inf, and Inf·0 NaN
					clear(xq[32*b : 32*b+32])
				}
			}
			ds := rows + 3
			pdst := h.put(t, make([]byte, 4*ds*trows), 0)
			// the kernels take the scales as f32, decoded as the engine
			// decodes them (exactly: tensor.F16ToF32, vec's half)
			pwd := h.put(t, f32Bytes(halfsF32(wd)), 4)
			pwq := h.put(t, wq, 1)
			pxd := h.put(t, f32Bytes(xd), 4)
			pxq := h.put(t, i16Bytes(xq), 2)
			_, err := h.mod.ExportedFunction(kc.name).Call(context.Background(),
				uint64(pdst), uint64(ds), uint64(pwd), uint64(pwq), uint64(pxd), uint64(pxq),
				uint64(rows), uint64(nb), uint64(trows))
			if err != nil {
				t.Fatalf("%s %+v %v: %v", kc.name, sz, c.xd, err)
			}
			out, _ := h.mem.Read(pdst, uint32(4*ds*trows))
			for i := range rows {
				for tr := range trows {
					want := kc.dot(wd[2*nb*i:], wq[kc.qb*nb*i:], xd[nb*tr:nb*(tr+1)], xq[32*nb*tr:])
					got := math.Float32frombits(binary.LittleEndian.Uint32(out[4*(tr*ds+i):]))
					// a NaN's sign and payload are the last operand's or
					// the first's as the compiler orders a commutative
					// operation (Go's as much as wazero's): any NaN
					// matches any
					if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
						t.Errorf("%s %+v scales %v row %d act %d: SIMD %v (%#x), Go %v (%#x)", kc.name, sz, c.xd, i, tr,
							got, math.Float32bits(got), want, math.Float32bits(want))
					}
				}
			}
			// Outputs outside the rows stay untouched.
			for tr := range trows {
				for i := rows; i < ds; i++ {
					if v := binary.LittleEndian.Uint32(out[4*(tr*ds+i):]); v != 0 {
						t.Errorf("%s %+v: wrote %#x beyond the rows at [%d][%d]", kc.name, sz, v, tr, i)
					}
				}
			}
		}
	}
}

// scaleRegime is how TestKernelsMatchGo draws activation scales: the
// q4_0 kernel scales its sums by 16 and its scale products by 1/16,
// exact only while every nonzero finite scale is at least 2^-98 and
// below 2^112 (q4ScaleOK), and otherwise takes its unscaled copy.
type scaleRegime int

const (
	scalesUsual   scaleRegime = iota // max|x|/32767 of normal activations
	scalesTiny                       // all far below 2^-98, some subnormal
	scalesBelow                      // just below 2^-98: (1..2)·2^-99
	scalesAtBound                    // 2^-98 and just above, and zeros
	scalesOneTiny                    // usual, but for one just below 2^-98
	scalesHuge                       // just below 2^112, and zeros
	scalesOneHuge                    // usual, but for one of 2^113
	scalesInf                        // usual, but for some ±Inf and NaN
)

func (s scaleRegime) String() string {
	return [...]string{"usual", "tiny", "below 2^-98", "at 2^-98", "one tiny", "huge", "one huge", "inf"}[s]
}

// tiny reports whether s draws scales near 2^-98, which TestKernelsMatchGo
// pairs with the smallest weight scales.
func (s scaleRegime) tiny() bool {
	return s == scalesTiny || s == scalesBelow || s == scalesAtBound || s == scalesOneTiny
}

func (s scaleRegime) scales(r *rand.Rand, n int) []float32 {
	xd := make([]float32, n)
	for i := range xd {
		sign := float32(1 - 2*r.IntN(2))
		switch s {
		case scalesUsual, scalesOneTiny, scalesOneHuge, scalesInf:
			xd[i] = float32(r.NormFloat64()) / 32767
		case scalesTiny:
			xd[i] = sign * float32(r.Float64()*0x1p-110)
			if i%3 == 0 {
				xd[i] = sign * math.Float32frombits(uint32(1+r.IntN(1<<23)))
			}
		case scalesBelow:
			xd[i] = sign * float32((1+r.Float64())*0x1p-99)
		case scalesAtBound:
			xd[i] = sign * float32((1+r.Float64()/1024)*0x1p-98)
			if i%4 == 0 {
				xd[i] = sign * 0x1p-98
			}
			if i%5 == 1 {
				xd[i] = 0
			}
		case scalesHuge:
			xd[i] = sign * float32((1+r.Float64())*0x1p110)
			if i%4 == 0 {
				xd[i] = sign * math.Float32frombits(0x77800000-1) // just below 2^112
			}
			if i%7 == 3 {
				xd[i] = 0
			}
		}
		if s == scalesInf && i%5 == 2 {
			xd[i] = [...]float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}[r.IntN(3)]
		}
	}
	if n > 0 {
		switch s {
		case scalesOneTiny:
			xd[r.IntN(n)] = float32((1 + r.Float64()) * 0x1p-99)
		case scalesOneHuge:
			xd[r.IntN(n)] = 0x1p113
		}
	}
	return xd
}

// TestHalf checks the kernels' one-at-a-time f16 decoding (half, which
// q4_k's scales and the f16 kernel's last elements go through) on every
// finite f16 bit pattern and ±Inf: KernelF16 on one-element rows, each
// row one pattern, against an activation of 1.
func TestHalf(t *testing.T) {
	h := newKernelHost(t, 64)
	const n = 0x7c01 // finite magnitudes and Inf, with either sign
	rows := 2 * n
	wb := make([]byte, 2*rows)
	for i := range rows {
		binary.LittleEndian.PutUint16(wb[2*i:], uint16(i%n)|uint16(i/n)<<15)
	}
	wf := halfsF32(wb)
	pdst := h.put(t, make([]byte, 4*rows), 0)
	pw := h.put(t, wb, 0)
	px := h.put(t, f32Bytes([]float32{1}), 0)
	if _, err := h.mod.ExportedFunction(KernelF16).Call(context.Background(),
		uint64(pdst), uint64(rows), uint64(pw), uint64(px), uint64(rows), 1, 1); err != nil {
		t.Fatal(err)
	}
	out := readF32(t, h, pdst, rows)
	for i := range rows {
		if want := math.Float32bits(vec.DotLanesGo(wf[i:i+1], []float32{1})); out[i] != want {
			t.Fatalf("f16 %#04x: SIMD %#x, Go %#x", binary.LittleEndian.Uint16(wb[2*i:]), out[i], want)
		}
	}
}

// halfsF32 decodes the f16 values in b exactly (vec.HalfToFloat: no NaNs
// here, on which amd64's F16C form may differ from the engine's decoding
// in the quiet bit).
func halfsF32(b []byte) []float32 {
	f := make([]float32, len(b)/2)
	vec.HalfToFloat(f, b)
	return f
}

// TestQ4_KMatchesGo is TestKernelsMatchGo for the q4_k kernel.
func TestQ4_KMatchesGo(t *testing.T) {
	h := newKernelHost(t, 64)
	r := rand.New(rand.NewPCG(7, 8))
	for _, sz := range []struct{ rows, nb, trows int }{
		{1, 8, 1}, {3, 16, 2}, {5, 8, 3}, {2, 0, 1}, {9, 64, 2},
	} {
		h.top = 16
		rows, nb, trows := sz.rows, sz.nb, sz.trows
		dm := randHalfs(r, rows*nb/8*2)
		sc, mn := make([]byte, rows*nb), make([]byte, rows*nb)
		for i := range sc {
			sc[i], mn[i] = byte(r.IntN(64)), byte(r.IntN(64))
		}
		qs := make([]byte, 16*rows*nb)
		for i := range qs {
			qs[i] = byte(r.IntN(256))
		}
		xd, g := make([]float32, trows*nb), make([]float32, trows*nb)
		for i := range xd {
			xd[i], g[i] = float32(r.NormFloat64())/32767, float32(r.NormFloat64())
		}
		xq := make([]int16, trows*nb*32)
		for i := range xq {
			xq[i] = int16(r.IntN(65535) - 32767)
		}
		ds := rows + 2
		pdst := h.put(t, make([]byte, 4*ds*trows), 0)
		args := []uint64{uint64(pdst), uint64(ds), uint64(h.put(t, dm, 2)), uint64(h.put(t, sc, 1)), uint64(h.put(t, mn, 3)),
			uint64(h.put(t, qs, 1)), uint64(h.put(t, f32Bytes(xd), 4)), uint64(h.put(t, f32Bytes(g), 8)), uint64(h.put(t, i16Bytes(xq), 2)),
			uint64(rows), uint64(nb), uint64(trows)}
		if _, err := h.mod.ExportedFunction(KernelQ4_K).Call(context.Background(), args...); err != nil {
			t.Fatalf("%+v: %v", sz, err)
		}
		out, _ := h.mem.Read(pdst, uint32(4*ds*trows))
		for i := range rows {
			for tr := range trows {
				want := vec.DotQ4_K(dm[4*nb/8*i:], sc[nb*i:], mn[nb*i:], qs[16*nb*i:], xd[nb*tr:nb*(tr+1)], g[nb*tr:nb*(tr+1)], xq[32*nb*tr:])
				got := binary.LittleEndian.Uint32(out[4*(tr*ds+i):])
				if got != math.Float32bits(want) {
					t.Errorf("%+v row %d act %d: SIMD %v, Go %v", sz, i, tr, math.Float32frombits(got), want)
				}
			}
		}
	}
}

// TestQ4_0AtMemoryEnd checks the q4_0 kernel with its weights' last byte
// the memory's last: its groups of rows read a byte past each block, so
// the last row must go without (q4Body), and the results still match.
func TestQ4_0AtMemoryEnd(t *testing.T) {
	const pages = 4
	r := rand.New(rand.NewPCG(3, 4))
	for _, sz := range []struct{ rows, nb, trows int }{{8, 9, 2}, {4, 16, 1}, {5, 3, 1}, {12, 8, 3}} {
		h := newKernelHost(t, pages)
		rows, nb, trows := sz.rows, sz.nb, sz.trows
		wd := randHalfs(r, rows*nb)
		wq := make([]byte, 16*rows*nb)
		for i := range wq {
			wq[i] = byte(r.IntN(256))
		}
		xd := scalesUsual.scales(r, trows*nb)
		xq := make([]int16, trows*nb*32)
		for i := range xq {
			xq[i] = int16(r.IntN(65535) - 32767)
		}
		pdst := h.put(t, make([]byte, 4*rows*trows), 0)
		pwd := h.put(t, f32Bytes(halfsF32(wd)), 0)
		pxd := h.put(t, f32Bytes(xd), 0)
		pxq := h.put(t, i16Bytes(xq), 0)
		pwq := uint32(pages*65536 - len(wq))
		if pwq < h.top || !h.mem.Write(pwq, wq) {
			t.Fatalf("%+v: no room for the weights at the memory's end", sz)
		}
		_, err := h.mod.ExportedFunction(KernelQ4_0).Call(context.Background(),
			uint64(pdst), uint64(rows), uint64(pwd), uint64(pwq), uint64(pxd), uint64(pxq),
			uint64(rows), uint64(nb), uint64(trows))
		if err != nil {
			t.Fatalf("%+v: %v", sz, err)
		}
		out := readF32(t, h, pdst, rows*trows)
		for tr := range trows {
			for i := range rows {
				want := math.Float32bits(vec.DotQ4_0(wd[2*nb*i:], wq[16*nb*i:], xd[nb*tr:nb*(tr+1)], xq[32*nb*tr:]))
				if got := out[tr*rows+i]; got != want {
					t.Errorf("%+v row %d act %d: SIMD %#x, Go %#x", sz, i, tr, got, want)
				}
			}
		}
	}
}
