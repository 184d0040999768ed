package sample

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Params configures a Sampler. The zero value is greedy decoding.
type Params struct {
	Temperature       float32 // 0 = greedy (argmax; ties -> lowest id)
	TopK              int     // 0 = off
	TopP              float32 // 0 or 1 = off
	MinP              float32 // 0 = off; keep tokens with p >= MinP * p_max
	RepetitionPenalty float32 // 0 or 1 = off; HF/CTRL rule: logit>0 ? logit/pen : logit*pen, for each distinct id in the window
	RepeatWindow      int     // how many most recent ids the penalty looks at; 0 = all given
	Seed              uint64
}

// Validate reports every field of p that is out of range, or nil.
func (p Params) Validate() error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("sample: invalid %s %v: want %s", field, v, want))
	}
	if !finite(p.Temperature) || p.Temperature < 0 {
		bad("Temperature", p.Temperature, "a finite value >= 0")
	}
	if p.TopK < 0 {
		bad("TopK", p.TopK, "a value >= 0")
	}
	// NaN fails both comparisons, so it must be rejected explicitly.
	if p.TopP != p.TopP || p.TopP < 0 || p.TopP > 1 {
		bad("TopP", p.TopP, "a value in [0, 1]")
	}
	if p.MinP != p.MinP || p.MinP < 0 || p.MinP > 1 {
		bad("MinP", p.MinP, "a value in [0, 1]")
	}
	if !finite(p.RepetitionPenalty) || p.RepetitionPenalty < 0 {
		bad("RepetitionPenalty", p.RepetitionPenalty, "a finite value >= 0")
	}
	if p.RepeatWindow < 0 {
		bad("RepeatWindow", p.RepeatWindow, "a value >= 0")
	}
	return errors.Join(errs...)
}

func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

// A Sampler picks token ids from logits according to its Params.
//
// A Sampler keeps scratch buffers and a draw counter, so it must not be used
// by more than one goroutine at a time; use one Sampler per sequence.
type Sampler struct {
	p     Params
	draws uint32 // index of the next Uniform draw; wraps after 2^32 draws

	// Scratch reused between calls so that steady-state sampling does not
	// allocate. x holds processed logits, later unnormalised probabilities;
	// keys holds candidates (see makeKey); heap holds the top-k heap.
	x    []float32
	keys []uint64
	heap []int32
}

// New returns a Sampler for p, or the error from p.Validate.
func New(p Params) (*Sampler, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Sampler{p: p}, nil
}

// Params returns the sampler's parameters.
func (s *Sampler) Params() Params { return s.p }

// NextDraw returns the draw number the next drawing Sample would use and
// advances past it, for a caller that draws that sample elsewhere (on a
// device) so the stream stays the same.
func (s *Sampler) NextDraw() uint32 {
	n := s.draws
	s.draws++
	return n
}

// Greedy reports whether Sample always returns the argmax of the logits it
// is given (temperature 0 and no repetition penalty), so an engine may
// compute it on the device instead.
func (s *Sampler) Greedy() bool {
	return s.p.Temperature == 0 && (s.p.RepetitionPenalty == 0 || s.p.RepetitionPenalty == 1)
}

// Reset restarts the random stream, so that the next Sample calls repeat
// the draws of a freshly created Sampler.
func (s *Sampler) Reset() { s.draws = 0 }

// Sample picks the next token id from logits. history is the ids so far
// (prompt and generated) and is only read by the repetition penalty; ids
// outside [0, len(logits)) are ignored. logits is not modified.
//
// NaN logits are treated as -Inf. If the largest logit is infinite after
// penalty and temperature (for example because a tiny temperature
// overflowed it), Sample returns the argmax of the penalised logits rather
// than forming a softmax of infinities.
//
// Every call with Temperature > 0 consumes exactly one draw of the random
// stream, even when only one token survives truncation, so the position in
// the stream depends only on the number of calls, never on the logits.
//
// Sample panics if logits is empty.
func (s *Sampler) Sample(logits []float32, history []int) int {
	if len(logits) == 0 {
		panic("sample: Sample called with empty logits")
	}
	if len(logits) > math.MaxInt32 {
		panic(fmt.Sprintf("sample: vocabulary of %d tokens exceeds int32 ids", len(logits)))
	}
	x := s.prepare(logits, history)
	if s.p.Temperature == 0 {
		return Argmax(x)
	}
	u := Uniform(s.p.Seed, s.draws)
	s.draws++
	return draw(s.truncate(x), u)
}

// Argmax returns the index of the largest value in logits, the lowest such
// index on ties, or -1 if logits is empty. NaN is treated as -Inf.
func Argmax(logits []float32) int {
	if len(logits) == 0 {
		return -1
	}
	best, bv := 0, logits[0]
	if bv != bv {
		bv = float32(math.Inf(-1))
	}
	for i, v := range logits[1:] {
		if v > bv { // strict: earlier ids win ties; NaN never wins
			best, bv = i+1, v
		}
	}
	return best
}

// prepare copies logits into scratch, replacing NaN by -Inf, and applies the
// repetition penalty.
func (s *Sampler) prepare(logits []float32, history []int) []float32 {
	n := len(logits)
	if cap(s.x) < n {
		s.x = make([]float32, n)
		s.keys = make([]uint64, n)
	}
	x := s.x[:n]
	negInf := float32(math.Inf(-1))
	for i, v := range logits {
		if v != v {
			v = negInf
		}
		x[i] = v
	}
	if pen := s.p.RepetitionPenalty; pen != 0 && pen != 1 {
		w := history
		if k := s.p.RepeatWindow; k > 0 && k < len(w) {
			w = w[len(w)-k:]
		}
		penalize(x, logits, w, pen)
	}
	return x
}

// penalize applies the CTRL repetition penalty to x once for each distinct
// id in window. x must hold a copy of orig (with NaN replaced).
//
// An id is penalised only while x[id] still equals orig[id]; a repeat of an
// already penalised id then finds a changed value and is skipped. This
// needs no set of seen ids (which would cost memory or O(window²) time).
// When the penalty leaves a value unchanged (0, or rounding), reapplying it
// gives that same value, so the check never penalises twice in effect.
func penalize(x, orig []float32, window []int, pen float32) {
	for _, id := range window {
		if id < 0 || id >= len(x) {
			continue
		}
		v := x[id]
		if v != orig[id] {
			continue
		}
		if v > 0 {
			x[id] = v / pen
		} else {
			x[id] = v * pen
		}
	}
}

// truncate scales x by the temperature, applies top-k, softmax, top-p and
// min-p, and returns the kept tokens as keys in ascending order, that is in
// descending probability order with ties by lower id. Probabilities are
// unnormalised, exp(logit - max), so the largest is exactly 1. Tokens of
// probability 0 are never kept, and at least one token always is.
func (s *Sampler) truncate(x []float32) []uint64 {
	// The argmax is taken before scaling because a tiny temperature can
	// overflow several logits to +Inf, erasing their order; the unscaled
	// argmax is then the zero-temperature limit. Division by T > 0 is
	// monotone, so best still holds the maximum after scaling.
	best := Argmax(x)
	t := s.p.Temperature
	for i := range x {
		x[i] /= t
	}
	m := x[best]
	if math.IsInf(float64(m), 0) {
		keys := s.keys[:1]
		keys[0] = makeKey(1, best)
		return keys
	}
	if k := s.p.TopK; k > 0 && k < len(x) {
		return s.truncateTopK(x, m, k)
	}
	return s.truncateAll(x, m)
}

// truncateTopK handles TopK in (0, len(x)): only k tokens need a softmax
// and a sort, found by a size-k heap in O(n log k) instead of sorting the
// whole vocabulary. m is the finite maximum of x.
func (s *Sampler) truncateTopK(x []float32, m float32, k int) []uint64 {
	if cap(s.heap) < k {
		s.heap = make([]int32, k)
	}
	keys := s.keys[:0]
	for _, id := range selectTopK(x, s.heap[:k]) {
		if e := float32(math.Exp(float64(x[id] - m))); e > 0 {
			keys = append(keys, makeKey(e, int(id)))
		}
	}
	slices.Sort(keys)
	if p := s.p.TopP; p > 0 && p < 1 {
		var sum float64
		for _, k := range keys {
			sum += float64(keyProb(k))
		}
		n, _ := topPLen(keys, float64(p)*sum)
		keys = keys[:n]
	}
	if mp := s.p.MinP; mp > 0 {
		// p >= MinP*p_max is e >= MinP, because e_max is exactly 1 and the
		// normaliser cancels; so renormalising after top-p changes nothing.
		n := 1
		for n < len(keys) && keyProb(keys[n]) >= mp {
			n++
		}
		keys = keys[:n]
	}
	return keys
}

// truncateAll handles the case without top-k. Sorting up to 150k
// candidates dominates the cost, so candidates are first filtered by a
// floor that provably cannot remove a token the later steps would keep:
//
//   - min-p removes exactly the tokens with e < MinP, all of which sort
//     after every kept token, so filtering first and running top-p on the
//     survivors gives the same set as top-p followed by min-p.
//   - top-p: as in llama2.c's sample_topp, a token with p < (1-TopP)/(n-1)
//     cannot be in the top-p set, since at most n-1 such tokens hold less
//     than 1-TopP of the mass together. That argument relies on exact
//     arithmetic and on the top token passing the floor (false when
//     TopP < 1/n), so if the filtered tokens do not reach TopP the filter
//     is dropped and the walk is redone; correctness never depends on it.
//
// Without top-p or min-p every token with non-zero probability is sorted.
// m is the finite maximum of x.
func (s *Sampler) truncateAll(x []float32, m float32) []uint64 {
	var sum float64
	for i, v := range x {
		e := float32(math.Exp(float64(v - m)))
		x[i] = e
		sum += float64(e)
	}

	minP := s.p.MinP
	topP := s.p.TopP
	useTopP := topP > 0 && topP < 1
	floor, cut := minP, false
	if n := len(x); useTopP && n > 1 {
		if c := float32((1 - float64(topP)) / float64(n-1) * sum); c > floor {
			floor, cut = c, true
		}
	}
	keys := gather(x, floor, s.keys)
	slices.Sort(keys)
	if !useTopP {
		return keys
	}
	target := float64(topP) * sum
	n, ok := topPLen(keys, target)
	if !ok && cut {
		keys = gather(x, minP, s.keys)
		slices.Sort(keys)
		n, _ = topPLen(keys, target)
	}
	return keys[:n]
}

// makeKey packs a token's unnormalised probability e >= 0 and its id into
// one integer whose ascending order is descending e, ties by lower id: the
// order in which top-p accumulates and the draw walks. Sorting keys needs
// no comparison callback and no lookups into the vocabulary-sized buffer,
// which is what dominated sorting ids by probability. For e >= 0 the IEEE
// bits order like the values, so inverting them reverses the order.
func makeKey(e float32, id int) uint64 {
	return uint64(^math.Float32bits(e))<<32 | uint64(uint32(id))
}

func keyProb(k uint64) float32 { return math.Float32frombits(^uint32(k >> 32)) }

func keyID(k uint64) int { return int(uint32(k)) }

// selectTopK fills h with the ids of the len(h) largest values of x (ties
// by lower id), in heap order. It keeps a min-heap whose root is the worst
// of the best so far; scanning ids in increasing order means a newcomer
// that only ties the root ranks below it and is skipped.
func selectTopK(x []float32, h []int32) []int32 {
	k := len(h)
	for i := range h {
		h[i] = int32(i)
	}
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(h, i, x)
	}
	for i := k; i < len(x); i++ {
		if x[i] > x[h[0]] {
			h[0] = int32(i)
			siftDown(h, 0, x)
		}
	}
	return h
}

// worse reports whether id a ranks below id b: smaller value, or equal
// value and higher id.
func worse(a, b int32, x []float32) bool {
	return x[a] < x[b] || x[a] == x[b] && a > b
}

func siftDown(h []int32, i int, x []float32) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && worse(h[r], h[c], x) {
			c = r
		}
		if !worse(h[c], h[i], x) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// gather returns, in buf, the keys of the tokens whose probability is
// non-zero and at least floor.
func gather(x []float32, floor float32, buf []uint64) []uint64 {
	keys := buf[:0]
	for i, e := range x {
		if e > 0 && e >= floor {
			keys = append(keys, makeKey(e, i))
		}
	}
	return keys
}

// topPLen returns the length of the shortest prefix of keys whose mass
// reaches target, and whether there is one; if not, it returns len(keys).
func topPLen(keys []uint64, target float64) (int, bool) {
	var cum float64
	for i, k := range keys {
		cum += float64(keyProb(k))
		if cum >= target {
			return i + 1, true
		}
	}
	return len(keys), false
}

// draw walks keys (sorted) and returns the id at which the cumulative mass
// first exceeds u times the total. Scaling u by the total renormalises
// without dividing every probability. Rounding can in principle leave the
// walk short of the target, so it falls back to the last kept id.
func draw(keys []uint64, u float32) int {
	if len(keys) == 1 {
		return keyID(keys[0])
	}
	var total float64
	for _, k := range keys {
		total += float64(keyProb(k))
	}
	target := float64(u) * total
	var cum float64
	for _, k := range keys {
		cum += float64(keyProb(k))
		if cum > target {
			return keyID(k)
		}
	}
	return keyID(keys[len(keys)-1])
}
