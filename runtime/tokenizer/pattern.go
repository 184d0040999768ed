package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// pattern is a tokenizer.json pattern: {"String": "..."} matches the text
// literally, {"Regex": "..."} is an Oniguruma regular expression.
type pattern struct {
	literal string
	re      *regex // nil for a literal
}

func parsePattern(raw json.RawMessage) (pattern, error) {
	var p struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	}
	if isNull(raw) {
		return pattern{}, fmt.Errorf("missing pattern")
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return pattern{}, fmt.Errorf("pattern: %w", err)
	}
	switch {
	case p.String != nil && p.Regex == nil:
		return pattern{literal: *p.String}, nil
	case p.Regex != nil && p.String == nil:
		re, err := compileRegex(*p.Regex)
		if err != nil {
			return pattern{}, err
		}
		return pattern{re: re}, nil
	}
	return pattern{}, fmt.Errorf("pattern must have exactly one of \"String\" and \"Regex\"")
}

// findAll returns the non-overlapping matches of p in s, left to right.
func (p pattern) findAll(s string) [][2]int {
	if p.re != nil {
		return p.re.findAll(s)
	}
	if p.literal == "" {
		// An empty literal matches at every character boundary, as the
		// escaped empty regex does in the reference.
		var out [][2]int
		for i := range s {
			out = append(out, [2]int{i, i})
		}
		return append(out, [2]int{len(s), len(s)})
	}
	var out [][2]int
	for i := 0; ; {
		j := strings.Index(s[i:], p.literal)
		if j < 0 {
			return out
		}
		out = append(out, [2]int{i + j, i + j + len(p.literal)})
		i += j + len(p.literal)
	}
}

// replaceAll replaces every match of p in s with content.
func (p pattern) replaceAll(s, content string) string {
	if p.re == nil {
		return strings.ReplaceAll(s, p.literal, content)
	}
	var b strings.Builder
	last := 0
	for _, m := range p.re.findAll(s) {
		b.WriteString(s[last:m[0]])
		b.WriteString(content)
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// splitRanges turns matches into consecutive (start, end, isMatch) ranges
// covering s, as the reference's Pattern::find_matches does.
func splitRanges(s string, matches [][2]int) []matchRange {
	if s == "" {
		return []matchRange{{0, 0, false}}
	}
	out := make([]matchRange, 0, 2*len(matches)+1)
	prev := 0
	for _, m := range matches {
		if prev != m[0] {
			out = append(out, matchRange{prev, m[0], false})
		}
		out = append(out, matchRange{m[0], m[1], true})
		prev = m[1]
	}
	if prev != len(s) {
		out = append(out, matchRange{prev, len(s), false})
	}
	return out
}

type matchRange struct {
	start, end int
	match      bool
}

// charMatches returns one match per character of s satisfying pred, the
// way the reference treats a character predicate as a pattern.
func charMatches(s string, pred func(rune) bool) [][2]int {
	var out [][2]int
	for i, r := range s {
		if pred(r) {
			out = append(out, [2]int{i, i + utf8.RuneLen(r)})
		}
	}
	return out
}
