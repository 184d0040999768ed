package tokenizer

import "unicode/utf8"

// reMatcher runs one search of a regex over an input.
//
// Backtracking can be slow for unusual patterns, so each attempt at a start
// position has a step budget. Oniguruma likewise gives up after a retry
// limit; here an exhausted budget counts as "no match at this position".
// The patterns of real tokenizer files stay far below it.
type reMatcher struct {
	in     string
	steps  int
	budget int
}

// findAt returns the leftmost match starting at or after start.
func (re *regex) findAt(in string, start int) (s, e int, ok bool) {
	m := &reMatcher{in: in, budget: 10000 + 64*len(in)}
	for p := start; p <= len(in); {
		m.steps = 0
		end := -1
		if m.match(re.root, p, func(q int) bool { end = q; return true }) {
			return p, end, true
		}
		if p == len(in) {
			break
		}
		_, n := utf8.DecodeRuneInString(in[p:])
		p += n
	}
	return 0, 0, false
}

// findAll returns the matches of re in in, as the onig crate's find_iter
// yields them: left to right, non-overlapping, and skipping an empty match
// that starts where the previous match ended.
func (re *regex) findAll(in string) [][2]int {
	var out [][2]int
	from, lastEnd := 0, -1
	for from <= len(in) {
		s, e, ok := re.findAt(in, from)
		if !ok {
			break
		}
		if s == e && e == lastEnd {
			if from >= len(in) {
				break
			}
			_, n := utf8.DecodeRuneInString(in[from:])
			from += n
			continue
		}
		out = append(out, [2]int{s, e})
		from, lastEnd = e, e
	}
	return out
}

// match reports whether n matches at pos with k accepting the end position.
// k is the continuation: the rest of the pattern after n.
func (m *reMatcher) match(n *reNode, pos int, k func(int) bool) bool {
	m.steps++
	if m.steps > m.budget {
		return false
	}
	switch n.kind {
	case reChar:
		if pos >= len(m.in) {
			return false
		}
		r, size := utf8.DecodeRuneInString(m.in[pos:])
		return n.set.has(r) && k(pos+size)
	case reSeq:
		return m.matchSeq(n.subs, pos, k)
	case reAlt:
		for _, sub := range n.subs {
			if m.match(sub, pos, k) {
				return true
			}
			if m.steps > m.budget {
				return false
			}
		}
		return false
	case reRepeat:
		return m.matchRepeat(n, pos, k)
	case reGroupRepeat:
		return m.matchGroupRepeat(n, pos, 0, k)
	case reLook:
		found := m.match(n.subs[0], pos, func(int) bool { return true })
		if m.steps > m.budget {
			return false
		}
		if found == n.neg {
			return false
		}
		return k(pos)
	}
	return false
}

func (m *reMatcher) matchSeq(subs []*reNode, pos int, k func(int) bool) bool {
	if len(subs) == 0 {
		return k(pos)
	}
	if len(subs) == 1 {
		return m.match(subs[0], pos, k)
	}
	return m.match(subs[0], pos, func(q int) bool {
		return m.matchSeq(subs[1:], q, k)
	})
}

// matchRepeat matches a repeated single-character atom. Because the atom is
// one character, the candidate end positions are simply the character
// boundaries after pos, so no recursion per repetition is needed.
func (m *reMatcher) matchRepeat(n *reNode, pos int, k func(int) bool) bool {
	if n.lazy {
		end, count := pos, 0
		for {
			if count >= n.min && k(end) {
				return true
			}
			if n.max >= 0 && count >= n.max || end >= len(m.in) {
				return false
			}
			r, size := utf8.DecodeRuneInString(m.in[end:])
			if !n.set.has(r) {
				return false
			}
			end += size
			count++
			m.steps++
			if m.steps > m.budget {
				return false
			}
		}
	}
	end, count := pos, 0
	for (n.max < 0 || count < n.max) && end < len(m.in) {
		r, size := utf8.DecodeRuneInString(m.in[end:])
		if !n.set.has(r) {
			break
		}
		end += size
		count++
	}
	m.steps += count
	for count >= n.min {
		if k(end) {
			return true
		}
		if count == n.min {
			return false
		}
		m.steps++
		if m.steps > m.budget {
			return false
		}
		_, size := utf8.DecodeLastRuneInString(m.in[pos:end])
		end -= size
		count--
	}
	return false
}

// matchGroupRepeat matches iterations count.. of a quantified group at pos:
// greedy tries one more iteration before handing pos to k, lazy the other
// way round, backtracking into each iteration's alternatives as Oniguruma
// does. An iteration that matches empty ends the loop (Oniguruma's check
// for empty loops), except while the minimum is still to be reached, so a
// bounded loop cannot spin in place.
func (m *reMatcher) matchGroupRepeat(n *reNode, pos, count int, k func(int) bool) bool {
	more := func() bool {
		if count >= n.max {
			return false
		}
		return m.match(n.subs[0], pos, func(q int) bool {
			if q == pos && count+1 >= n.min {
				return k(q)
			}
			return m.matchGroupRepeat(n, q, count+1, k)
		})
	}
	if n.lazy {
		if count >= n.min && k(pos) {
			return true
		}
		return m.steps <= m.budget && more()
	}
	if more() {
		return true
	}
	return count >= n.min && m.steps <= m.budget && k(pos)
}
