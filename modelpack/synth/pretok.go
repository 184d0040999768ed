package synth

import "unicode"

// splitGPT2 splits text as the GPT-2 pre-tokenizer regex does:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Go's regexp has no lookahead, so the alternatives are matched by hand,
// in order, at each position.
func splitGPT2(text string) []string {
	rs := []rune(text)
	var out []string
	for i := 0; i < len(rs); {
		n := matchGPT2(rs, i)
		out = append(out, string(rs[i:i+n]))
		i += n
	}
	return out
}

// matchGPT2 returns the length in runes of the regex match at rs[i].
func matchGPT2(rs []rune, i int) int {
	if rs[i] == '\'' {
		for _, c := range []string{"s", "t", "re", "ve", "m", "ll", "d"} {
			if hasRunes(rs[i+1:], c) {
				return 1 + len(c)
			}
		}
	}
	// ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
	start := i
	if rs[i] == ' ' {
		start = i + 1
	}
	for _, class := range []func(rune) bool{unicode.IsLetter, unicode.IsNumber, isOther} {
		j := start
		for j < len(rs) && class(rs[j]) {
			j++
		}
		if j > start {
			return j - i
		}
	}
	// `\s+(?!\S)` then `\s+`: a run of white space, leaving its last
	// character to the word that follows it, if any.
	j := i
	for j < len(rs) && unicode.IsSpace(rs[j]) {
		j++
	}
	switch {
	case j == i:
		return 1 // unreachable: every rune is in one class; kept for safety
	case j == len(rs) || j-i == 1:
		return j - i
	}
	return j - 1 - i
}

func isOther(r rune) bool {
	return !unicode.IsSpace(r) && !unicode.IsLetter(r) && !unicode.IsNumber(r)
}

func hasRunes(rs []rune, s string) bool {
	i := 0
	for _, r := range s {
		if i >= len(rs) || rs[i] != r {
			return false
		}
		i++
	}
	return true
}
