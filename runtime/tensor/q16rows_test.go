package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/vec"
)

// u is float32's unit roundoff.
const u = 0x1p-24

// TestQuantizeQ16Rows checks the activation quantiser's error bound,
// |x − d·q| ≤ d/2 (plus the rounding of x/d: a few units of 32767·u), and
// d·Σq per block.
func TestQuantizeQ16Rows(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const rows, cols = 3, 96
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Exp(2*r.NormFloat64()))
	}
	x[5] = 0
	for j := 32; j < 64; j++ {
		x[j] = 0 // an all-zero block: scale 0
	}
	var q Q16Rows
	q.Quantize(x, rows, cols)
	for b := range rows * cols / qk {
		d := q.d[b]
		var s int32
		for j := qk * b; j < qk*(b+1); j++ {
			if e := math.Abs(float64(x[j]) - float64(d)*float64(q.qs[j])); e > float64(d)*(0.5+65536*u) || q.qs[j] == -32768 {
				t.Fatalf("x[%d] = %v quantised to %d×%v: error %.3g > d/2", j, x[j], q.qs[j], d, e)
			}
			s += int32(q.qs[j])
		}
		if g := d * float32(s); g != q.g[b] {
			t.Fatalf("block %d: d·Σq %v, want %v", b, q.g[b], g)
		}
	}
}

// TestMulQuantized compares MulQuantized with the exact Dot for every block format,
// on row counts that are not multiples of four and widths that are not
// multiples of the kernels' unrolling, several activation rows at once
// (through the tile kernels and the one-token ones, which must agree bit
// for bit with each token multiplied alone).
//
// The bound is derived, not tuned: MulQuantized computes Σ w·x̂ for the
// quantised x̂, |x − x̂| ≤ d/2 per element (d its block's scale), so the
// quantisation moves the result by at most Σ_j |w_j|·d_j/2. Both sums
// then round in float32: Dot over about cols+blocks operations, MulQuantized
// over a few per block, each within (ops)·u·Σ|w|·(|x|+d) — counted
// generously as 2·(cols+8)·u·Σ|w_j|·(|x_j|+d_j).
func TestMulQuantized(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct {
		d          DType
		rows, cols int
	}{
		{Q8_0, 7, 32}, {Q8_0, 5, 96}, {Q8_0, 13, 544},
		{Q4_0, 7, 32}, {Q4_0, 5, 96}, {Q4_0, 13, 544},
		{Q4_K, 3, 256}, {Q4_K, 6, 768},
	} {
		t.Run(fmt.Sprintf("%v/%dx%d", tc.d, tc.rows, tc.cols), func(t *testing.T) {
			w := make([]float32, tc.rows*tc.cols)
			for i := range w {
				w[i] = float32(r.NormFloat64() / math.Sqrt(float64(tc.cols)))
			}
			qt, err := Quantize(FromF32("w", []int{tc.rows, tc.cols}, w), tc.d)
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewMatrix(qt)
			if err != nil {
				t.Fatal(err)
			}
			// Nine tokens: two of the four-token tiles and one left over.
			const tokens = 9
			x := make([]float32, tokens*tc.cols)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			var q Q16Rows
			q.Quantize(x, tokens, tc.cols)
			got := make([]float32, tokens*tc.rows)
			m.MulQuantized(got, tc.rows, &q, 0, tc.rows)
			// The same rows again in two ranges: the split must not matter.
			split := make([]float32, tokens*tc.rows)
			m.MulQuantized(split, tc.rows, &q, 0, 2)
			m.MulQuantized(split, tc.rows, &q, 2, tc.rows)

			// Each token alone (the decode kernels) must give the batch's
			// (the tiles') bits.
			var q1 Q16Rows
			one := make([]float32, tc.rows)
			for tk := range tokens {
				q1.Quantize(x[tk*tc.cols:(tk+1)*tc.cols], 1, tc.cols)
				m.MulQuantized(one, tc.rows, &q1, 0, tc.rows)
				for i, v := range one {
					if g := got[tk*tc.rows+i]; math.Float32bits(g) != math.Float32bits(v) {
						t.Fatalf("token %d row %d: %v in a batch of %d, %v alone", tk, i, g, tokens, v)
					}
				}
			}

			row := make([]float32, tc.cols)
			xsum := make([]float32, tc.cols/qk)
			var worst float64
			for tk := range tokens {
				xt := x[tk*tc.cols : (tk+1)*tc.cols]
				BlockSums(xsum, xt)
				for i := range tc.rows {
					m.DequantizeRow(i, row)
					exact := m.Dot(i, xt, xsum)
					var quant, mag float64
					for j, wj := range row {
						d := float64(q.d[(tk*tc.cols+j)/qk])
						quant += math.Abs(float64(wj)) * d / 2
						mag += math.Abs(float64(wj)) * (math.Abs(float64(xt[j])) + d)
					}
					bound := quant + 2*float64(tc.cols+8)*u*mag
					g := got[tk*tc.rows+i]
					if g != split[tk*tc.rows+i] {
						t.Fatalf("token %d row %d: %v computed whole, %v split", tk, i, g, split[tk*tc.rows+i])
					}
					diff := math.Abs(float64(g) - float64(exact))
					if diff > bound {
						t.Errorf("token %d row %d: fast %v, exact %v: diff %.3g > bound %.3g", tk, i, g, exact, diff, bound)
					}
					worst = max(worst, diff/bound)
				}
			}
			t.Logf("largest diff / bound: %.3f", worst)
		})
	}
}

// TestMulQuantizedTokens checks that every token of a batch gets the bits
// it gets alone, for q4_0 and q8_0 matrices of ragged sizes and every batch
// size up to nine and a few past it, two whole tiles among them (q8_0's
// 2×8 tiles — on the DupQ16 layout where the machine has them — then the
// tokens short of a whole one through the 2×4 tiles and the four-row
// kernel; q4_0's rows in blocks of 64, token by token, on PrepQ4_0's
// layout where the machine's kernels read it), with the activations
// quantised for the matrix (QuantizeFor) and without (Quantize: q4_0's
// laid out inside MulQuantized), which must agree; and that a lone
// token's rows give the same bits in one range (one kernel call, past 64
// rows too) and in two.
func TestMulQuantizedTokens(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, d := range []DType{Q4_0, Q8_0} {
		for _, rows := range []int{1, 2, 3, 4, 5, 7, 8, 13, 19, 130} {
			for _, nb := range []int{1, 2, 7, 9, 17, 44} {
				cols := qk * nb
				m := randMatrix(t, r, d, rows, cols)
				for _, tokens := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 16, 19} {
					x := make([]float32, tokens*cols)
					for i := range x {
						x[i] = float32(r.NormFloat64())
					}
					var qf, qp, q1 Q16Rows
					qf.QuantizeFor(m, x, tokens, cols)
					qp.Quantize(x, tokens, cols)
					if want := vec.TilesAnyTokens() && d == Q8_0 && tokens >= 8; qf.dupOn != want {
						t.Fatalf("%v %d tokens: DupQ16 layout kept %v, want %v", d, tokens, qf.dupOn, want)
					}
					if want := vec.Q4_0Layout() && d == Q4_0; qf.q4On != want {
						t.Fatalf("%v %d tokens: PrepQ4_0 layout kept %v, want %v", d, tokens, qf.q4On, want)
					}
					got := make([]float32, tokens*rows)
					plain := make([]float32, tokens*rows)
					m.MulQuantized(got, rows, &qf, 0, rows)
					m.MulQuantized(plain, rows, &qp, 0, rows)
					one, split := make([]float32, rows), make([]float32, rows)
					for tk := range tokens {
						q1.QuantizeFor(m, x[tk*cols:(tk+1)*cols], 1, cols)
						m.MulQuantized(one, rows, &q1, 0, rows)
						// A lone token's rows in two ranges, as goroutines
						// split them (one kernel call each): the same bits.
						k := rows / 2 &^ 3
						m.MulQuantized(split, rows, &q1, 0, k)
						m.MulQuantized(split, rows, &q1, k, rows)
						for i, v := range one {
							g, p := got[tk*rows+i], plain[tk*rows+i]
							if math.Float32bits(g) != math.Float32bits(v) || math.Float32bits(p) != math.Float32bits(v) || math.Float32bits(split[i]) != math.Float32bits(v) {
								t.Fatalf("%v %dx%d, %d tokens: token %d row %d: %v in the batch (%v quantised for no matrix), %v alone (%v in two ranges)", d, rows, cols, tokens, tk, i, g, p, v, split[i])
							}
						}
					}
				}
			}
		}
	}
}

// TestMulQuantizedForAnother checks that activations quantised for one
// block format (QuantizeFor, which keeps the layouts that format's
// kernels read) multiply a matrix of the other format with the bits they
// get quantised for no matrix: an MoE layer quantises its input once, for
// its first expert, and its experts need not share a format.
func TestMulQuantizedForAnother(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	const rows, cols = 8, 96
	mats := map[DType]*Matrix{Q4_0: randMatrix(t, r, Q4_0, rows, cols), Q8_0: randMatrix(t, r, Q8_0, rows, cols)}
	for _, tokens := range []int{1, 3, 8, 9, 16} {
		x := make([]float32, tokens*cols)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		var plain Q16Rows
		plain.Quantize(x, tokens, cols)
		for _, pair := range [][2]DType{{Q8_0, Q4_0}, {Q4_0, Q8_0}} {
			var qf Q16Rows
			qf.QuantizeFor(mats[pair[0]], x, tokens, cols)
			m := mats[pair[1]]
			got, want := make([]float32, tokens*rows), make([]float32, tokens*rows)
			m.MulQuantized(got, rows, &qf, 0, rows)
			m.MulQuantized(want, rows, &plain, 0, rows)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%d tokens quantised for %v, times %v: output %d is %v, %v quantised for no matrix", tokens, pair[0], pair[1], i, got[i], want[i])
				}
			}
		}
	}
}

// randMatrix is a rows×cols matrix of normal weights quantised to d.
func randMatrix(t *testing.T, r *rand.Rand, d DType, rows, cols int) *Matrix {
	t.Helper()
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	qt, err := Quantize(FromF32("w", []int{rows, cols}, w), d)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMatrix(qt)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestQ16Arena checks that Q16Rows taking their storage from an arena
// hold what Q16Rows of their own do (every layout: one row, a few, eight
// or more, for q4_0, q8_0, q4_k and no matrix), that they do not overlap
// (each is compared after all are written), that products read them as
// the others, and that a second round of the same sizes allocates nothing.
func TestQ16Arena(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const cols = 256
	var ms []*Matrix
	for _, d := range []DType{Q4_0, Q8_0, Q4_K} {
		w := make([]float32, 6*cols)
		for i := range w {
			w[i] = float32(r.NormFloat64())
		}
		qt, err := Quantize(FromF32("w", []int{6, cols}, w), d)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewMatrix(qt)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	ms = append(ms, nil)
	type part struct {
		m    *Matrix
		rows int
	}
	var parts []part
	for _, m := range ms {
		for _, rows := range []int{1, 3, 9} {
			parts = append(parts, part{m, rows})
		}
	}
	xs := make([][]float32, len(parts))
	for i, p := range parts {
		xs[i] = make([]float32, p.rows*cols)
		for j := range xs[i] {
			xs[i][j] = float32(r.NormFloat64())
		}
	}
	var a Q16Arena
	qs := make([]Q16Rows, len(parts))
	round := func() {
		for _, p := range parts {
			a.Plan(p.m, p.rows, cols)
		}
		a.Reset()
		for i, p := range parts {
			qs[i].ResizeIn(&a, p.m, p.rows, cols)
			qs[i].QuantizeBlocks(xs[i], 0, p.rows*cols/qk)
		}
	}
	round()
	for i, p := range parts {
		var own Q16Rows
		own.QuantizeFor(p.m, xs[i], p.rows, cols)
		q := &qs[i]
		if q.dupOn != own.dupOn || q.rowsOn != own.rowsOn || q.q4On != own.q4On {
			t.Fatalf("part %d (%d rows): layouts dup/xp/q4 %v %v %v, want %v %v %v", i, p.rows, q.dupOn, q.rowsOn, q.q4On, own.dupOn, own.rowsOn, own.q4On)
		}
		same := func(name string, got, want any) {
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("part %d (%d rows): %s differs from a Q16Rows of its own", i, p.rows, name)
			}
		}
		// Arena rows are for their matrix's format alone: q4_0's with
		// PrepQ4_0's layout keep no qs (the kernels read q4 alone).
		wantQS, wantLen := !own.q4On, 0
		if wantQS {
			wantLen = len(own.qs)
		}
		if q.qsOn != wantQS || len(q.qs) != wantLen {
			t.Fatalf("part %d (%d rows): qs kept %v (%d values), want %v (%d)", i, p.rows, q.qsOn, len(q.qs), wantQS, wantLen)
		}
		if q.qsOn {
			same("qs", q.qs, own.qs)
		}
		same("d", q.d, own.d)
		same("g", q.g, own.g)
		if own.dupOn {
			same("dup", q.dup, own.dup)
		}
		if own.rowsOn {
			same("xp", q.xp, own.xp)
		}
		if own.q4On {
			same("q4", q.q4, own.q4)
			same("off", q.off, own.off)
		}
		if p.m != nil {
			got, want := make([]float32, p.rows*6), make([]float32, p.rows*6)
			p.m.MulQuantized(got, 6, q, 0, 6)
			p.m.MulQuantized(want, 6, &own, 0, 6)
			same("the product", got, want)
		}
	}
	if n := testing.AllocsPerRun(5, round); n != 0 {
		t.Errorf("a round of the same sizes allocated %v times", n)
	}
}

// TestQ16ArenaOtherFormat: rows an arena laid out for q4_0 products
// alone (no plain copy) refuse a product with a matrix of another format
// by name, rather than reading past a slice.
func TestQ16ArenaOtherFormat(t *testing.T) {
	if !vec.Q4_0Layout() {
		t.Skip("where no q4_0 kernel reads PrepQ4_0's layout every layout keeps the plain copy")
	}
	r := rand.New(rand.NewPCG(35, 36))
	const cols = 64
	q4, q8 := randMatrix(t, r, Q4_0, 4, cols), randMatrix(t, r, Q8_0, 4, cols)
	var a Q16Arena
	var q Q16Rows
	a.Plan(q4, 3, cols)
	a.Reset()
	q.ResizeIn(&a, q4, 3, cols)
	q.QuantizeBlocks(make([]float32, 3*cols), 0, 3*cols/qk)
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "laid out for q4_0 products alone") {
			t.Errorf("q8_0 product of q4_0-only rows: panic %v", p)
		}
	}()
	q8.MulQuantized(make([]float32, 12), 4, &q, 0, 4)
}

// TestResizeForOnly: activations laid out for one format's products
// alone give those products the bits of the layout every format reads,
// and drop the plain copy exactly where a q4_0 product has PrepQ4_0's.
func TestResizeForOnly(t *testing.T) {
	r := rand.New(rand.NewPCG(37, 38))
	const cols = 256
	for _, d := range []DType{Q4_0, Q8_0, Q4_K} {
		m := randMatrix(t, r, d, 6, cols)
		for _, tokens := range []int{1, 2, 3, 8, 9, 17} {
			x := make([]float32, tokens*cols)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			var only, all Q16Rows
			only.ResizeForOnly(m, tokens, cols)
			only.QuantizeBlocks(x, 0, tokens*cols/qk)
			all.QuantizeFor(m, x, tokens, cols)
			if want := !all.q4On; only.qsOn != want {
				t.Errorf("%v, %d tokens: plain copy kept %v, want %v", d, tokens, only.qsOn, want)
			}
			got, want := make([]float32, 6*tokens), make([]float32, 6*tokens)
			m.MulQuantized(got, 6, &only, 0, 6)
			m.MulQuantized(want, 6, &all, 0, 6)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%v, %d tokens: output %d is %v, %v from the full layout", d, tokens, i, got[i], want[i])
				}
			}
		}
	}
}
