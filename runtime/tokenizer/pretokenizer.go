package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// piece is a span of (normalized) text on its way to the model.
type piece struct {
	text string
	// first is set when the piece starts at the beginning of the original
	// input; Metaspace's prepend_scheme "first" depends on it.
	first bool
}

// preTokenizer splits pieces into smaller pieces, like a Hugging Face
// pre-tokenizer. Empty pieces are dropped, as the reference does.
type preTokenizer interface {
	preTokenize(in []piece) []piece
}

type seqPreTokenizer []preTokenizer

func (q seqPreTokenizer) preTokenize(in []piece) []piece {
	for _, p := range q {
		in = p.preTokenize(in)
	}
	return in
}

// splitBehavior says what happens to the delimiters a pattern matches.
type splitBehavior uint8

const (
	splitRemoved splitBehavior = iota
	splitIsolated
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

func parseSplitBehavior(s string) (splitBehavior, error) {
	switch s {
	case "Removed":
		return splitRemoved, nil
	case "Isolated":
		return splitIsolated, nil
	case "MergedWithPrevious":
		return splitMergedWithPrevious, nil
	case "MergedWithNext":
		return splitMergedWithNext, nil
	case "Contiguous":
		return splitContiguous, nil
	}
	return 0, fmt.Errorf("unknown split behavior %q", s)
}

// splitPiece splits p at the given matches with behavior b, appending the
// non-empty results to out. It follows NormalizedString::split.
func splitPiece(out []piece, p piece, matches [][2]int, b splitBehavior, invert bool) []piece {
	ranges := splitRanges(p.text, matches)
	if invert {
		for i := range ranges {
			ranges[i].match = !ranges[i].match
		}
	}
	type span struct {
		start, end int
		remove     bool
	}
	var spans []span
	switch b {
	case splitIsolated:
		for _, r := range ranges {
			spans = append(spans, span{r.start, r.end, false})
		}
	case splitRemoved:
		for _, r := range ranges {
			spans = append(spans, span{r.start, r.end, r.match})
		}
	case splitContiguous:
		prevMatch := false
		for _, r := range ranges {
			if r.match == prevMatch && len(spans) > 0 {
				spans[len(spans)-1].end = r.end
			} else {
				spans = append(spans, span{r.start, r.end, false})
			}
			prevMatch = r.match
		}
	case splitMergedWithPrevious:
		prevMatch := false
		for _, r := range ranges {
			if r.match && !prevMatch && len(spans) > 0 {
				spans[len(spans)-1].end = r.end
			} else {
				spans = append(spans, span{r.start, r.end, false})
			}
			prevMatch = r.match
		}
	case splitMergedWithNext:
		prevMatch := false
		for i := len(ranges) - 1; i >= 0; i-- {
			r := ranges[i]
			if r.match && !prevMatch && len(spans) > 0 {
				spans[len(spans)-1].start = r.start
			} else {
				spans = append(spans, span{r.start, r.end, false})
			}
			prevMatch = r.match
		}
		for i, j := 0, len(spans)-1; i < j; i, j = i+1, j-1 {
			spans[i], spans[j] = spans[j], spans[i]
		}
	}
	for _, s := range spans {
		if s.remove || s.start == s.end {
			continue
		}
		out = append(out, piece{text: p.text[s.start:s.end], first: p.first && s.start == 0})
	}
	return out
}

// splitPreTokenizer is the Split pre-tokenizer.
type splitPreTokenizer struct {
	pat      pattern
	behavior splitBehavior
	invert   bool
}

func (s splitPreTokenizer) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in))
	for _, p := range in {
		out = splitPiece(out, p, s.pat.findAll(p.text), s.behavior, s.invert)
	}
	return out
}

// gpt2Pattern is the split regex of the ByteLevel pre-tokenizer.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// byteLevelPreTokenizer optionally adds a leading space, optionally splits
// with the GPT-2 regex, then maps every byte to its byte-level character.
type byteLevelPreTokenizer struct {
	addPrefixSpace bool
	re             *regex // nil when use_regex is false
}

func (b byteLevelPreTokenizer) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in))
	for _, p := range in {
		if b.addPrefixSpace && !strings.HasPrefix(p.text, " ") {
			p.text = " " + p.text
		}
		if b.re != nil {
			out = splitPiece(out, p, b.re.findAll(p.text), splitIsolated, false)
		} else if p.text != "" {
			out = append(out, p)
		}
	}
	for i := range out {
		out[i].text = byteLevelEncode(out[i].text)
	}
	return out
}

// prependScheme says when Metaspace adds the replacement character in front.
type prependScheme uint8

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

// metaspacePreTokenizer replaces spaces with the replacement character
// (normally "▁"), may prepend one, and may split before each.
type metaspacePreTokenizer struct {
	replacement rune
	scheme      prependScheme
	split       bool
}

func (m metaspacePreTokenizer) preTokenize(in []piece) []piece {
	rep := string(m.replacement)
	out := make([]piece, 0, len(in))
	for _, p := range in {
		p.text = strings.ReplaceAll(p.text, " ", rep)
		if !strings.HasPrefix(p.text, rep) {
			if m.scheme == prependAlways || m.scheme == prependFirst && p.first {
				p.text = rep + p.text
			}
		}
		if m.split {
			out = splitPiece(out, p, charMatches(p.text, func(r rune) bool { return r == m.replacement }), splitMergedWithNext, false)
		} else if p.text != "" {
			out = append(out, p)
		}
	}
	return out
}

// digitsPreTokenizer separates numeric characters from the rest, one piece
// per digit when individual is set.
type digitsPreTokenizer struct{ individual bool }

func (d digitsPreTokenizer) preTokenize(in []piece) []piece {
	b := splitContiguous
	if d.individual {
		b = splitIsolated
	}
	out := make([]piece, 0, len(in))
	for _, p := range in {
		// Rust's char::is_numeric is the Unicode N category.
		out = splitPiece(out, p, charMatches(p.text, unicode.IsNumber), b, false)
	}
	return out
}

// parsePreTokenizer builds a pre-tokenizer from its tokenizer.json object. A
// JSON null yields nil.
func parsePreTokenizer(raw json.RawMessage, depth int) (preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	if depth > maxConfigDepth {
		return nil, fmt.Errorf("pre-tokenizers nested deeper than %d", maxConfigDepth)
	}
	var c struct {
		Type           string            `json:"type"`
		PreTokenizers  []json.RawMessage `json:"pretokenizers"`
		Pattern        json.RawMessage   `json:"pattern"`
		Behavior       string            `json:"behavior"`
		Invert         bool              `json:"invert"`
		AddPrefixSpace *bool             `json:"add_prefix_space"`
		UseRegex       *bool             `json:"use_regex"`
		Replacement    *string           `json:"replacement"`
		PrependScheme  *string           `json:"prepend_scheme"`
		Split          *bool             `json:"split"`
		Individual     bool              `json:"individual_digits"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("pre-tokenizer: %w", err)
	}
	switch c.Type {
	case "Sequence":
		seq := seqPreTokenizer{}
		for i, sub := range c.PreTokenizers {
			p, err := parsePreTokenizer(sub, depth+1)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "Split":
		pat, err := parsePattern(c.Pattern)
		if err != nil {
			return nil, fmt.Errorf("Split pre-tokenizer: %w", err)
		}
		b, err := parseSplitBehavior(c.Behavior)
		if err != nil {
			return nil, fmt.Errorf("Split pre-tokenizer: %w", err)
		}
		return splitPreTokenizer{pat: pat, behavior: b, invert: c.Invert}, nil
	case "ByteLevel":
		b := byteLevelPreTokenizer{addPrefixSpace: c.AddPrefixSpace == nil || *c.AddPrefixSpace}
		if c.UseRegex == nil || *c.UseRegex {
			re, err := compileRegex(gpt2Pattern)
			if err != nil {
				return nil, err
			}
			b.re = re
		}
		return b, nil
	case "Metaspace":
		r, scheme, err := parseMetaspace(c.Replacement, c.PrependScheme, c.AddPrefixSpace)
		if err != nil {
			return nil, fmt.Errorf("Metaspace pre-tokenizer: %w", err)
		}
		return metaspacePreTokenizer{replacement: r, scheme: scheme, split: c.Split == nil || *c.Split}, nil
	case "Digits":
		return digitsPreTokenizer{individual: c.Individual}, nil
	}
	return nil, fmt.Errorf("unsupported pre-tokenizer type %q", c.Type)
}

// parseMetaspace reads the settings Metaspace pre-tokenizers and decoders
// share. Old files have add_prefix_space instead of prepend_scheme; false
// there means "never".
func parseMetaspace(replacement, scheme *string, addPrefixSpace *bool) (rune, prependScheme, error) {
	if replacement == nil || utf8.RuneCountInString(*replacement) != 1 {
		return 0, 0, fmt.Errorf("replacement must be one character")
	}
	r, _ := utf8.DecodeRuneInString(*replacement)
	s := prependAlways
	if addPrefixSpace != nil && !*addPrefixSpace {
		if scheme != nil && *scheme != "never" {
			return 0, 0, fmt.Errorf("add_prefix_space=false contradicts prepend_scheme %q", *scheme)
		}
		return r, prependNever, nil
	}
	if scheme != nil {
		switch *scheme {
		case "always":
			s = prependAlways
		case "first":
			s = prependFirst
		case "never":
			s = prependNever
		default:
			return 0, 0, fmt.Errorf("unknown prepend_scheme %q", *scheme)
		}
	}
	return r, s, nil
}
