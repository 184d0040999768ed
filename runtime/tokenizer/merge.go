package tokenizer

// pairFunc reports whether adjacent symbols a and b merge, into which id, and
// with what priority key (lower merges first).
type pairFunc func(a, b int) (id int, key float64, ok bool)

// mergeByScore applies llama2.c's merge rule: repeatedly merge the adjacent
// pair whose result has the highest score, leftmost on ties.
func mergeByScore(ids []int, pair func(a, b int) (int, float32, bool)) []int {
	return mergePairs(ids, func(a, b int) (int, float64, bool) {
		id, score, ok := pair(a, b)
		return id, -float64(score), ok
	})
}

// mergePairs repeatedly merges the adjacent pair with the lowest key, leftmost
// on ties, until no pair merges, and returns the surviving ids (reusing ids).
//
// Rescanning all pairs after every merge, as llama2.c does, is quadratic; this
// keeps candidate pairs in a heap ordered by (key, position) and discards
// entries made stale by earlier merges, which picks the same pair at every
// step in O(n log n). The staleness test (does the pair now at that position
// still merge into the same id?) is the one Hugging Face's BPE Word uses.
func mergePairs(ids []int, pair pairFunc) []int {
	n := len(ids)
	if n < 2 {
		return ids
	}
	prev := make([]int32, n)
	next := make([]int32, n)
	dead := make([]bool, n)
	for i := range ids {
		prev[i] = int32(i - 1)
		next[i] = int32(i + 1)
	}
	next[n-1] = -1

	h := make(mergeHeap, 0, n)
	for i := 0; i+1 < n; i++ {
		if id, key, ok := pair(ids[i], ids[i+1]); ok {
			h.push(mergeCandidate{key: key, pos: int32(i), id: int32(id)})
		}
	}
	for len(h) > 0 {
		c := h.pop()
		p := int(c.pos)
		r := next[p]
		if dead[p] || r < 0 {
			continue
		}
		if id, _, ok := pair(ids[p], ids[r]); !ok || id != int(c.id) {
			continue
		}
		ids[p] = int(c.id)
		dead[r] = true
		next[p] = next[r]
		if next[r] >= 0 {
			prev[next[r]] = int32(p)
		}
		if l := prev[p]; l >= 0 {
			if id, key, ok := pair(ids[l], ids[p]); ok {
				h.push(mergeCandidate{key: key, pos: l, id: int32(id)})
			}
		}
		if nx := next[p]; nx >= 0 {
			if id, key, ok := pair(ids[p], ids[nx]); ok {
				h.push(mergeCandidate{key: key, pos: int32(p), id: int32(id)})
			}
		}
	}
	out := ids[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}

type mergeCandidate struct {
	key float64
	pos int32 // index of the left symbol in the original sequence
	id  int32 // id the pair merges into
}

func (a mergeCandidate) less(b mergeCandidate) bool {
	if a.key != b.key {
		return a.key < b.key
	}
	return a.pos < b.pos
}

// mergeHeap is a binary min-heap of candidates. It is hand-written rather than
// container/heap to avoid boxing every candidate in an interface.
type mergeHeap []mergeCandidate

func (h *mergeHeap) push(c mergeCandidate) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !s[i].less(s[parent]) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *mergeHeap) pop() mergeCandidate {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s[r].less(s[l]) {
			m = r
		}
		if !s[m].less(s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
