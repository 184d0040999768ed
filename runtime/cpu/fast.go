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
		b.xq.ResizeFor(w.m, rows, cols)
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
	b.split(out, rows*out*cols, chunk, j)
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
// Outside the wasm SIMD build, the heads of a token that share a KV head
// (grouped-query attention; Attention hands them out together) go
// together through vec.ScoresHeads and vec.AxpyHeads, which read a block
// of cache rows once for them all and keep every head's scores and
// outputs the bits vec.Scores and vec.WeightedSum give it alone; an f16
// cache's rows are decoded a block at a time for them (scoresF16,
// axpyF16).
func (j *attnTask) perHead(worker, lo, hi int) {
	sc := &j.b.scratch[worker]
	s, hd := j.s, j.s.HeadDim
	ring := j.c.lens[s.Layer]
	sc.kv = grow(sc.kv, hd)
	for n := lo; n < hi; {
		t, h := n/s.Heads, n%s.Heads
		p := s.Pos0 + t
		first := window(p, s.Window)
		cnt := p - first + 1
		koff := (h / j.group) * hd
		if !simd() {
			// The heads from h on that share h's KV head, within [lo, hi).
			h1 := min(s.Heads, h+hi-n, (h/j.group+1)*j.group)
			g := h1 - h
			sc.att = grow(sc.att, j.c.seq*j.group) // the whole context for a group: allocated once
			att := sc.att[:cnt*g]
			q, o := j.q.row(t)[h*hd:h1*hd], j.out.row(t)[h*hd:h1*hd]
			// The cache slots in one or two runs (two when the window
			// wraps the ring), from s0 and from 0.
			s0 := first % ring
			n1 := min(cnt, ring-s0)
			if j.c.k16 == nil {
				// f32 rows at stride kvDim: one kernel call per run.
				k, v := j.c.k[s.Layer], j.c.v[s.Layer]
				vec.ScoresHeads(att, cnt, q, k[s0*j.kvDim+koff:], j.kvDim, n1, g, hd, g, 0)
				vec.ScoresHeads(att[n1:], cnt, q, k[koff:], j.kvDim, cnt-n1, g, hd, g, 0)
				j.softmaxHeads(att, cnt, g, h)
				clear(o)
				vec.AxpyHeads(o, att, cnt, v[s0*j.kvDim+koff:], j.kvDim, n1, g, hd, g, 0)
				vec.AxpyHeads(o, att[n1:], cnt, v[koff:], j.kvDim, cnt-n1, g, hd, g, 0)
			} else {
				// f16 rows: decoded a block at a time (the heads' slice
				// only) into sc.kv, then the same kernels.
				k, v := j.c.k16[s.Layer], j.c.v16[s.Layer]
				j.scoresF16(sc, att, cnt, q, k[s0*j.kvDim+koff:], n1, g, g, 0)
				j.scoresF16(sc, att[n1:], cnt, q, k[koff:], cnt-n1, g, g, 0)
				j.softmaxHeads(att, cnt, g, h)
				clear(o)
				j.axpyF16(sc, o, att, cnt, v[s0*j.kvDim+koff:], n1, g, g, 0)
				j.axpyF16(sc, o, att[n1:], cnt, v[koff:], cnt-n1, g, g, 0)
			}
			n += g
			continue
		}
		n++
		sc.att = grow(sc.att, j.c.seq) // the whole context: allocated once
		qh := j.q.row(t)[h*hd : (h+1)*hd]
		att := sc.att[:cnt]
		o := j.out.row(t)[h*hd : (h+1)*hd]
		if j.c.k16 == nil {
			// The wasm SIMD build: its kernels take one head's rows at a
			// stride in one call.
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

// softmaxHeads is softmaxScaled for each of g heads' n scores in att, the
// first head h.
func (j *attnTask) softmaxHeads(att []float32, n, g, h int) {
	for i := range g {
		softmaxScaled(att[i*n:(i+1)*n], j.scale, j.sinks, h+i)
	}
}

// scoresF16 is vec.ScoresHeads(att, n, q, k, kvDim, rows, heads, hd,
// group, phase) over f16 cache rows: each block of f16Block rows, the
// span the heads read, decoded into sc.kv first, so the scores have the
// bits of ScoresHeads over the decoded rows.
func (j *attnTask) scoresF16(sc *scratch, att []float32, n int, q []float32, k []uint16, rows, heads, group, phase int) {
	hd := j.s.HeadDim
	span := ((phase+heads-1)/group + 1) * hd
	sc.kv = grow(sc.kv, f16Block*span)
	for b := 0; b < rows; b += f16Block {
		m := min(f16Block, rows-b)
		vec.HalfRows(sc.kv, k[b*j.kvDim:], j.kvDim, m, span)
		vec.ScoresHeads(att[b:], n, q, sc.kv, span, m, heads, hd, group, phase)
	}
}

// axpyF16 is vec.AxpyHeads over f16 cache rows as scoresF16 takes them.
func (j *attnTask) axpyF16(sc *scratch, o, att []float32, n int, v []uint16, rows, heads, group, phase int) {
	hd := j.s.HeadDim
	span := ((phase+heads-1)/group + 1) * hd
	sc.kv = grow(sc.kv, f16Block*span)
	for b := 0; b < rows; b += f16Block {
		m := min(f16Block, rows-b)
		vec.HalfRows(sc.kv, v[b*j.kvDim:], j.kvDim, m, span)
		vec.AxpyHeads(o, att[b:], n, sc.kv, span, m, heads, hd, group, phase)
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

// rowMajor is run for an f32 cache whose rows are a page or more (OLMoE's
// 16 heads of 64: 4 KB): head by head, each read 256 bytes of every row, 4
// KB apart, a new page each time, which the hardware prefetcher does not
// follow; the layer's rows (1.2 MB at 144 positions) then came from memory
// at about 9 GB/s. Here the items' heads of one token take their scores
// and then their weighted sums one cache row at a time, the row read
// front to back, all the heads of a row in one kernel step
// (vec.ScoresHeads, vec.AxpyHeads: a call per run of rows, where a call
// per row and head cost more than its 64 multiply-adds). Each score is
// vec.Scores' of one row (its rows are independent) and each head's sum is
// vec.Axpy's in order of position from zero, which vec.WeightedSum equals
// (TestAttentionKernels, TestHeadsKernels): the same bits as perHead's.
// Over 64 layers of such a cache (75 MB, from memory), one thread: 91–126
// against 142–151 µs a layer (before the kernels took whole rows).
func (j *attnTask) rowMajor(worker, lo, hi int) {
	sc := &j.b.scratch[worker]
	s, hd := j.s, j.s.HeadDim
	ring := j.c.lens[s.Layer]
	for lo < hi {
		t, h0 := lo/s.Heads, lo%s.Heads
		h1 := min(s.Heads, h0+hi-lo) // this token's heads in [lo, hi)
		if h1 == h0+1 {
			// One head: perHead's weighted sum holds the head's outputs in
			// registers across the rows, where AxpyHeads loads and stores
			// them for each row.
			j.perHead(worker, lo, lo+1)
			lo++
			continue
		}
		lo += h1 - h0
		p := s.Pos0 + t
		first := window(p, s.Window)
		n := p - first + 1
		sc.att = grow(sc.att, j.c.seq*(h1-h0))[:n*(h1-h0)] // the whole context: allocated once
		q, out := j.q.row(t)[h0*hd:h1*hd], j.out.row(t)[h0*hd:h1*hd]
		// The cache slots in one or two runs (two when the window wraps
		// the ring), each one call per kernel.
		s0, n1 := first%ring, min(n, ring-first%ring)
		koff, phase, g := (h0/j.group)*hd, h0%j.group, h1-h0
		if j.c.k16 == nil {
			k, v := j.c.k[s.Layer], j.c.v[s.Layer]
			vec.ScoresHeads(sc.att, n, q, k[s0*j.kvDim+koff:], j.kvDim, n1, g, hd, j.group, phase)
			vec.ScoresHeads(sc.att[n1:], n, q, k[koff:], j.kvDim, n-n1, g, hd, j.group, phase)
			j.softmaxHeads(sc.att, n, g, h0)
			clear(out)
			vec.AxpyHeads(out, sc.att, n, v[s0*j.kvDim+koff:], j.kvDim, n1, g, hd, j.group, phase)
			vec.AxpyHeads(out, sc.att[n1:], n, v[koff:], j.kvDim, n-n1, g, hd, j.group, phase)
			continue
		}
		// An f16 cache: blocks of rows decoded (the heads' span) first.
		k, v := j.c.k16[s.Layer], j.c.v16[s.Layer]
		j.scoresF16(sc, sc.att, n, q, k[s0*j.kvDim+koff:], n1, g, j.group, phase)
		j.scoresF16(sc, sc.att[n1:], n, q, k[koff:], n-n1, g, j.group, phase)
		j.softmaxHeads(sc.att, n, g, h0)
		clear(out)
		j.axpyF16(sc, out, sc.att, n, v[s0*j.kvDim+koff:], n1, g, j.group, phase)
		j.axpyF16(sc, out, sc.att[n1:], n, v[koff:], n-n1, g, j.group, phase)
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
