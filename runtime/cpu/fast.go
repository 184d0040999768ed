package cpu

import (
	"github.com/moderuntime/mode/internal/wasmsimd"
	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/runtime/vec"
)

// matmulFast is matmul without Options.Exact. Activations multiplying a
// q8_0, q4_0 or q4_k weight are quantised to 16 bits once per op
// (tensor.Q16Rows) and the products computed in integers; f16 rows are
// decoded to f32 once per op and, like f32 rows, multiplied with vec's
// tile kernels, four rows by three tokens at a time (mulRows).
//
// Work is split by output rows in chunks claimed by the pool's goroutines;
// each weight row is read once for all tokens. Every result is computed in
// the same order whatever the split and the number of tokens, so the fast
// path is as reproducible as the exact one across thread counts and
// batching, just not equal to it.
func (b *Backend) matmulFast(dst []float32, dstStride int, x []float32, rows, cols int, w *weight) {
	j := &b.mul
	j.act8 = b.act8 && rows == 1 && w.m != nil && w.m.CanMulQuantized8()
	if j.act8 {
		// One token: quantising on the calling goroutine costs less than
		// handing the blocks to the pool.
		b.xq8.Quantize(x, rows, cols)
	} else if w.quantised() {
		// Quantised once per op, on every goroutine of the pool when
		// there are tokens enough to share (prefill): on one it took an
		// eighth of a prefill's time.
		b.xq.ResizeForOnly(w.m, rows, cols) // w alone reads them
		q := &b.quant
		q.xq, q.x = &b.xq, x[:rows*cols]
		nb := rows * cols / 32
		b.split(nb, 8*rows*cols, (nb/(4*b.threads) + 1), q)
		q.xq, q.x = nil, nil
	}
	j.dst, j.stride, j.x, j.rows, j.cols, j.w = dst, dstStride, x, rows, cols, w
	// About four chunks per goroutine, in whole groups of four rows: enough
	// for the atomic counter to even out uneven goroutines, few enough that
	// claiming costs nothing.
	out := w.rows
	chunk := (out/(4*b.threads) + 3) &^ 3
	work := rows * out * cols
	if rows == 1 && w.m == nil && work < minWork && 4*work >= minWork {
		// One token through an f32 matrix too small by multiply-adds
		// to share, but not by bytes (OLMoE's router: 64×1024, 256 KB,
		// 10.7 µs on one goroutine): in one contiguous part a goroutine
		// (RATIONALE.md, "An f32 router's rows on both goroutines").
		work = minWork
		chunk = (out/b.threads + 3) &^ 3
	}
	b.split(out, work, chunk, j)
	j.dst, j.x, j.w = nil, nil, nil
}

// MatMuls is MatMul for each of ws (backend.MultiMatMuler). On the fast
// path, for one token and up to three weights in one block format (a
// decode step's q, k and v projections), none of them tiny, x is
// quantised once and all the
// weights' rows are one op for the pool, in the chunks MatMul would cut
// each into: one hand-off instead of three, each row computed as MatMul
// computes it (the same activations, the same kernels), so the same bits.
func (b *Backend) MatMuls(dsts []backend.Buf, x backend.Buf, ws, biases []backend.Weight) {
	s := x.(*buf)
	j := &b.muls
	j.n = 0
	if !b.exact && !b.act8 && s.rows == 1 && len(ws) <= len(j.w) {
		j.n = len(ws)
		for i, w := range ws {
			m := w.(*weight)
			// Products of a quarter of minWork or more join the op:
			// Mixtral's k and v (65,536 multiply-adds each), below
			// minWork, ran apart on this goroutine while the helper
			// waited; joined to q's op, the Mixtral-shaped q4_0 decode
			// ran about 1.07× faster (with attnCost's 1.03×: 964 → 1063
			// tok/s, medians of six alternating runs). Tinier ones
			// (stories260K's) still run with no hand-off at all.
			if !m.quantised() || m.m.DType() != ws[0].(*weight).m.DType() || m.m.Cols() != s.cols || m.rows*s.cols < minWork/4 {
				j.n = 0
				break
			}
			j.w[i] = m
		}
	}
	if j.n == 0 {
		for i := range ws {
			b.MatMul(dsts[i], x, ws[i], biases[i])
		}
		return
	}
	b.xq.QuantizeFor(j.w[0].m, s.f[:s.cols], 1, s.cols)
	j.b, j.x, j.cols = b, s.f[:s.cols], s.cols
	rows := 0
	for i := range j.n {
		j.dst[i] = dsts[i].(*buf).f
		j.off[i] = rows
		rows += (j.w[i].rows + 3) &^ 3 // each weight's rows from a multiple of four
	}
	j.off[j.n] = rows
	chunk := (j.w[0].rows/(4*b.threads) + 3) &^ 3
	b.split(rows, rows*s.cols, max(chunk, 4), j)
	for i := range j.n {
		addBias(dsts[i].(*buf), biases[i])
		j.dst[i], j.w[i] = nil, nil
	}
	j.x = nil
}

// multiMulTask is one MatMuls: items are the rows of its weights one after
// another, each weight's starting at off[i].
type multiMulTask struct {
	b    *Backend
	x    []float32
	cols int
	n    int
	dst  [3][]float32
	w    [3]*weight
	off  [4]int
}

func (j *multiMulTask) run(worker, lo, hi int) {
	for i := range j.n {
		a, c := max(lo, j.off[i]), min(hi, j.off[i]+j.w[i].rows)
		if a < c {
			j.b.mulRange(worker, j.dst[i], j.w[i].rows, j.x, &j.b.xq, 1, j.cols, j.w[i], a-j.off[i], c-j.off[i])
		}
	}
}

// quantTask quantises the activations of one matmulFast, by blocks.
type quantTask struct {
	xq *tensor.Q16Rows
	x  []float32
}

func (q *quantTask) run(_, lo, hi int) { q.xq.QuantizeBlocks(q.x, lo, hi) }

// mulTask is one matmulFast; it lives in the Backend so that handing it to
// the pool allocates nothing.
type mulTask struct {
	b                  *Backend
	dst, x             []float32
	stride, rows, cols int
	w                  *weight
	act8               bool // multiply by b.xq8, not b.xq
}

func (j *mulTask) run(worker, lo, hi int) {
	if j.act8 {
		j.w.m.MulQuantized8(j.dst, j.stride, &j.b.xq8, lo, hi)
		return
	}
	j.b.mulRange(worker, j.dst, j.stride, j.x, &j.b.xq, j.rows, j.cols, j.w, lo, hi)
}

// quantised reports whether the fast path multiplies w with activations
// quantised by tensor.Q16Rows (every block format) rather than in f32.
func (w *weight) quantised() bool { return w.m != nil && w.m.DType() != tensor.F16 }

// mulRange computes outputs lo..hi (lo a multiple of four) of w times the
// rows tokens of x (row stride cols) into dst (row stride stride): from xq,
// x quantised, when w is in a block format, else from x with the SIMD128
// kernels where a wasm host loaded them, or the f32 tile kernels (f16 rows
// decoded into worker's scratch first).
func (b *Backend) mulRange(worker int, dst []float32, stride int, x []float32, xq *tensor.Q16Rows, rows, cols int, w *weight, lo, hi int) {
	m := w.m
	if w.quantised() {
		m.MulQuantized(dst, stride, xq, lo, hi)
		return
	}
	if simd() {
		// One SIMD128 kernel call for the whole range, f16 rows decoded
		// as they are read.
		d, xs := dst[lo:], x[:rows*cols]
		if m == nil {
			wasmsimd.MulF32(d, stride, w.f[lo*cols:hi*cols], xs, hi-lo, cols, rows)
		} else {
			wasmsimd.MulF16(d, stride, m.HalfRows(lo, hi), xs, hi-lo, cols, rows)
		}
		return
	}
	if m == nil && rows == 1 && vec.StreamRows {
		// Decode: each row whole, in memory order (see vec.DotRows).
		vec.DotRows(dst[lo:hi], w.f[lo*cols:hi*cols], cols, x[:cols], cols)
		return
	}
	s := &b.scratch[worker]
	for i := lo; i < hi; i += 4 {
		n := min(4, hi-i)
		if m == nil {
			mulRows(dst, stride, x, rows, cols, w.f[i*cols:], i, n)
			continue
		}
		// f16: decode the rows once for all tokens.
		s.row = grow(s.row, 4*cols)
		for r := range n {
			m.DequantizeRow(i+r, s.row[r*cols:(r+1)*cols])
		}
		mulRows(dst, stride, x, rows, cols, s.row, i, n)
	}
}

// mulRows computes outputs i..i+n (n ≤ 4) for every token from the f32
// weight rows w (row stride cols): four rows by three tokens at a time,
// then four rows by one, or one output at a time for fewer than four rows.
// The vec kernels sum each output the same way whatever the tile.
func mulRows(dst []float32, stride int, x []float32, rows, cols int, w []float32, i, n int) {
	if n < 4 {
		for r := range n {
			for t := range rows {
				dst[t*stride+i+r] = vec.DotLanes(w[r*cols:(r+1)*cols], x[t*cols:(t+1)*cols])
			}
		}
		return
	}
	t := 0
	var o12 [12]float32
	for ; t+3 <= rows; t += 3 {
		vec.Dot4x3(&o12, w, cols, x[t*cols:], cols, cols)
		for k := range 3 {
			copy(dst[(t+k)*stride+i:(t+k)*stride+i+4], o12[4*k:4*k+4])
		}
	}
	var o4 [4]float32
	for ; t < rows; t++ {
		vec.Dot4x1(&o4, w, cols, x[t*cols:(t+1)*cols], cols)
		copy(dst[t*stride+i:t*stride+i+4], o4[:])
	}
}

// attnTask is Attention without Options.Exact: the scores and the
// weighted sum of values use vec's kernels, reassociated and vectorised,
// instead of run.c's in-order sums (vec.Scores and vec.WeightedSum over an
// f32 cache in one call per head, vec.Dot and vec.Axpy per decoded row of
// an f16 one). Items are (token, head) pairs.
type attnTask struct {
	b            *Backend
	out, q       *buf
	c            *kv
	s            backend.AttnSpec
	kvDim, group int
	scale        float32
	sinks        []float32
}

func (j *attnTask) run(worker, lo, hi int) {
	if rowMajorFits(j.c, j.kvDim) {
		j.rowMajor(worker, lo, hi)
		return
	}
	j.perHead(worker, lo, hi)
}

// perHead is run one head after another, each over the whole cache.
// Outside the wasm SIMD build the heads of a token that share a KV head
// (grouped-query attention; Attention hands them out together) go
// together through heads, which reads a block of cache rows once for
// them all (an f16 cache's decoded a block at a time). The wasm SIMD
// build's kernels take one head's rows at a stride in one call.
func (j *attnTask) perHead(worker, lo, hi int) {
	sc := &j.b.scratch[worker]
	s, hd := j.s, j.s.HeadDim
	if !simd() {
		for n := lo; n < hi; {
			t, h := n/s.Heads, n%s.Heads
			// The heads from h on that share h's KV head, within [lo, hi).
			h1 := min(s.Heads, h+hi-n, (h/j.group+1)*j.group)
			j.heads(sc, t, h, h1)
			n += h1 - h
		}
		return
	}
	ring := j.c.lens[s.Layer]
	sc.kv = grow(sc.kv, hd)
	for n := lo; n < hi; n++ {
		t, h := n/s.Heads, n%s.Heads
		p := s.Pos0 + t
		first := window(p, s.Window)
		koff := (h / j.group) * hd
		sc.att = grow(sc.att, j.c.seq) // the whole context: allocated once
		qh := j.q.row(t)[h*hd : (h+1)*hd]
		att := sc.att[:p-first+1]
		o := j.out.row(t)[h*hd : (h+1)*hd]
		if j.c.k16 == nil {
			// One kernel call per contiguous run of slots, two when the
			// window wraps the ring.
			s0 := first % ring
			n1 := min(len(att), ring-s0)
			k, v := j.c.k[s.Layer], j.c.v[s.Layer]
			scores(att[:n1], qh, k[s0*j.kvDim+koff:], j.kvDim)
			scores(att[n1:], qh, k[koff:], j.kvDim)
			softmaxScaled(att, j.scale, j.sinks, h)
			weightedSum(o, att[:n1], v[s0*j.kvDim+koff:], j.kvDim)
			for i, a := range att[n1:] {
				vec.Axpy(o, a, v[i*j.kvDim+koff:i*j.kvDim+koff+hd])
			}
			continue
		}
		for i := range att {
			att[i] = vec.Dot(qh, j.c.row(s.Layer, false, ((first+i)%ring)*j.kvDim+koff, hd, sc.kv)) / j.scale
		}
		softmaxFast(att, j.sinks, h)
		clear(o)
		for i, a := range att {
			vec.Axpy(o, a, j.c.row(s.Layer, true, ((first+i)%ring)*j.kvDim+koff, hd, sc.kv))
		}
	}
}

// attnChunk is how many (token, head) items of attention the pool hands
// out at a time: the heads that share a KV head, which perHead takes
// together (a block of cache rows read once for them all; handed out one
// at a time, two goroutines never saw a group), or, where rowMajor runs,
// several heads, about two chunks per goroutine, which it reads each
// cache row once for.
func attnChunk(c *kv, kvDim, heads, group, threads int) int {
	if rowMajorFits(c, kvDim) {
		return max(1, heads/(2*threads))
	}
	return group
}

// f16Block is how many f16 cache rows perHead decodes at a time: their
// slice of a head (f32) stays in L1 for the heads that share it.
const f16Block = 32

// heads is attention for token t's heads h0 ≤ h < h1 through
// vec.ScoresHeads and vec.AxpyHeads: each block of cache rows read once
// for them all, every head's scores and outputs the bits vec.Scores and
// vec.WeightedSum give it alone. The heads are a KV head's (perHead) or
// any run of a token's heads (rowMajor).
func (j *attnTask) heads(sc *scratch, t, h0, h1 int) {
	s, hd := j.s, j.s.HeadDim
	ring := j.c.lens[s.Layer]
	p := s.Pos0 + t
	first := window(p, s.Window)
	n, g := p-first+1, h1-h0
	att := grow(sc.att, j.c.seq*g)[:n*g] // the whole context: allocated once
	sc.att = att
	q, o := j.q.row(t)[h0*hd:h1*hd], j.out.row(t)[h0*hd:h1*hd]
	koff, phase := (h0/j.group)*hd, h0%j.group
	// The cache slots in one or two runs (two when the window wraps the
	// ring), from s0 and from 0: one kernel call per run.
	s0 := first % ring
	n1 := min(n, ring-s0)
	j.scores(sc, att, n, q, s0*j.kvDim+koff, n1, g, phase)
	j.scores(sc, att[n1:], n, q, koff, n-n1, g, phase)
	for i := range g {
		softmaxScaled(att[i*n:(i+1)*n], j.scale, j.sinks, h0+i)
	}
	clear(o)
	j.sums(sc, o, att, n, s0*j.kvDim+koff, n1, g, phase)
	j.sums(sc, o, att[n1:], n, koff, n-n1, g, phase)
}

// scores is vec.ScoresHeads(att, n, q, k, kvDim, rows, g, hd, group,
// phase) over the layer's cache rows from index off of its keys. An f16
// cache's rows are decoded f16Block at a time (halfBlocks), so the scores
// have the bits of ScoresHeads over the decoded rows.
func (j *attnTask) scores(sc *scratch, att []float32, n int, q []float32, off, rows, g, phase int) {
	hd, l := j.s.HeadDim, j.s.Layer
	if j.c.k16 == nil {
		vec.ScoresHeads(att, n, q, j.c.k[l][off:], j.kvDim, rows, g, hd, j.group, phase)
		return
	}
	j.halfBlocks(sc, j.c.k16[l][off:], rows, g, phase, func(b, m int, kv []float32, span int) {
		vec.ScoresHeads(att[b:], n, q, kv, span, m, g, hd, j.group, phase)
	})
}

// sums is vec.AxpyHeads over the layer's value rows as scores takes its
// keys.
func (j *attnTask) sums(sc *scratch, o, att []float32, n, off, rows, g, phase int) {
	hd, l := j.s.HeadDim, j.s.Layer
	if j.c.k16 == nil {
		vec.AxpyHeads(o, att, n, j.c.v[l][off:], j.kvDim, rows, g, hd, j.group, phase)
		return
	}
	j.halfBlocks(sc, j.c.v16[l][off:], rows, g, phase, func(b, m int, kv []float32, span int) {
		vec.AxpyHeads(o, att[b:], n, kv, span, m, g, hd, j.group, phase)
	})
}

// halfBlocks decodes rows cache rows of an f16 cache (row stride kvDim)
// f16Block at a time into sc.kv, only the span of each row that heads
// phase..phase+g−1 of a KV head group read, and calls each with the
// block's first row b, its m rows and the decoded span (row stride span).
func (j *attnTask) halfBlocks(sc *scratch, cache []uint16, rows, g, phase int, each func(b, m int, kv []float32, span int)) {
	span := ((phase+g-1)/j.group + 1) * j.s.HeadDim
	sc.kv = grow(sc.kv, f16Block*span)
	for b := 0; b < rows; b += f16Block {
		m := min(f16Block, rows-b)
		vec.HalfRows(sc.kv, cache[b*j.kvDim:], j.kvDim, m, span)
		each(b, m, sc.kv, span)
	}
}

// rowMajorKV is the cache row width, in floats (4 KB), from which
// attention reads each cache row once for all the heads of an item rather
// than one head at a time (attnTask.rowMajor).
const rowMajorKV = 1024

// rowMajorFits reports whether attention over cache c, rows of kvDim
// values, goes through attnTask.rowMajor: rows of rowMajorKV or more, in
// a build without the wasm SIMD kernels (whose scores take one head's
// rows at a stride in one call).
func rowMajorFits(c *kv, kvDim int) bool {
	return kvDim >= rowMajorKV && !simd()
}

// rowMajor is run for a cache whose rows are rowMajorKV values or more
// (OLMoE's 16 heads of 64: 4 KB in f32): head by head, each read 256 bytes
// of every row, 4 KB apart, a new page each time, which the hardware
// prefetcher does not follow; the layer's rows (1.2 MB at 144 positions)
// then came from memory at about 9 GB/s. Here all the item's heads of one
// token go through heads at once, whatever KV head they belong to, so a
// block of rows is read once for them all (vec.ScoresHeads,
// vec.AxpyHeads: a call per run of rows, where a call per row and head
// cost more than its 64 multiply-adds). Each score is
// vec.Scores' of one row (its rows are independent) and each head's sum is
// vec.Axpy's in order of position from zero, which vec.WeightedSum equals
// (TestAttentionKernels, TestHeadsKernels): the same bits as perHead's.
// Over 64 layers of such a cache (75 MB, from memory), one thread: 91–126
// against 142–151 µs a layer (before the kernels took whole rows).
func (j *attnTask) rowMajor(worker, lo, hi int) {
	sc := &j.b.scratch[worker]
	for lo < hi {
		t, h0 := lo/j.s.Heads, lo%j.s.Heads
		h1 := min(j.s.Heads, h0+hi-lo) // this token's heads in [lo, hi)
		j.heads(sc, t, h0, h1)
		lo += h1 - h0
	}
}

// softmaxScaled divides x by s, then softmaxFast: in one call to
// wasmsimd's KernelSoftmax, with the same bits, where it is loaded and
// there are no sinks. vec.DivMax divides and finds the maximum in one
// pass (AVX2 where there is some, each quotient and the maximum the
// scalar loops' bits) and vec.Scale applies the reciprocal.
func softmaxScaled(x []float32, s float32, sinks []float32, h int) {
	if len(x) == 0 {
		return
	}
	if sinks == nil && simd() {
		wasmsimd.Softmax(x, s)
		return
	}
	softmaxFrom(x, vec.DivMax(x, s), sinks, h)
}

// softmaxFast is softmaxSink with vec.Exp and one reciprocal: each weight
// is within 2^-21 + 3 float32 roundings of softmaxSink's, relative.
func softmaxFast(x, sinks []float32, h int) {
	if len(x) == 0 {
		return
	}
	m := x[0]
	for _, v := range x {
		m = vec.Max(m, v)
	}
	softmaxFrom(x, m, sinks, h)
}

// softmaxFrom is softmaxFast given x's maximum m (vec.Max's value, which
// does not depend on the order it is found in).
func softmaxFrom(x []float32, m float32, sinks []float32, h int) {
	if sinks != nil {
		m = vec.Max(m, sinks[h])
	}
	sum := expShift(x, x, m)
	if sinks != nil {
		sum += vec.Exp(sinks[h] - m)
	}
	vec.Scale(x, 1/sum)
}
