package tokenizer

import "unicode"

// runeSet is a set of characters matched by one regex atom.
type runeSet interface {
	has(r rune) bool
}

// literal matches one character exactly.
type literal rune

func (l literal) has(r rune) bool { return rune(l) == r }

// foldSet matches every character in one simple case-folding orbit, which is
// how Oniguruma matches a literal under (?i): (?i:'s) also matches "'S" and
// "'ſ" (U+017F), and the reference tokenizers rely on that.
type foldSet []rune

func (f foldSet) has(r rune) bool {
	for _, c := range f {
		if c == r {
			return true
		}
	}
	return false
}

// literalSet returns the set for literal r, case-folded if fold is set.
func literalSet(r rune, fold bool) runeSet {
	if !fold {
		return literal(r)
	}
	orbit := foldSet{r}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		orbit = append(orbit, f)
	}
	if len(orbit) == 1 {
		return literal(r)
	}
	return orbit
}

// tableSet matches a Unicode category or script.
type tableSet struct{ t *unicode.RangeTable }

func (s tableSet) has(r rune) bool { return unicode.Is(s.t, r) }

// notSet is the complement of a set.
type notSet struct{ s runeSet }

func (n notSet) has(r rune) bool { return !n.s.has(r) }

// spaceSet is \s: Unicode White_Space, as in Oniguruma's UTF-8 mode
// (it includes U+00A0, U+0085 and U+3000; the reference tokenizers agree).
type spaceSet struct{}

func (spaceSet) has(r rune) bool { return unicode.IsSpace(r) }

// wordSet is \w: letters, marks, decimal digits and connector punctuation.
type wordSet struct{}

func (wordSet) has(r rune) bool { return isWordRune(r) }

// notNewline is '.', which in Oniguruma matches anything but '\n'.
type notNewline struct{}

func (notNewline) has(r rune) bool { return r != '\n' }

// classSet is a bracket expression.
type classSet struct {
	ranges [][2]rune
	sets   []runeSet
	neg    bool
	fold   bool
}

func (c *classSet) has(r rune) bool {
	in := c.hasExact(r)
	if !in && c.fold {
		for f := unicode.SimpleFold(r); f != r && !in; f = unicode.SimpleFold(f) {
			in = c.hasExact(f)
		}
	}
	return in != c.neg
}

func (c *classSet) hasExact(r rune) bool {
	for _, rg := range c.ranges {
		if rg[0] <= r && r <= rg[1] {
			return true
		}
	}
	for _, s := range c.sets {
		if s.has(r) {
			return true
		}
	}
	return false
}

// isWordRune reports whether r is a word character as the Rust regex crate's
// Unicode \w defines it (Alphabetic, marks, Nd, Pc, Join_Control). Hugging
// Face uses that definition for added tokens' single_word flag.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Pc, r) ||
		unicode.Is(unicode.Other_Alphabetic, r) || unicode.Is(unicode.Join_Control, r)
}
