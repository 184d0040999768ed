package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// normalizer rewrites text before pre-tokenization, like a Hugging Face
// normalizer. Offsets are not tracked: Encode only needs ids.
type normalizer interface {
	normalize(s string) string
}

type seqNormalizer []normalizer

func (q seqNormalizer) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}

// prependNormalizer prepends its text to non-empty input (Llama-2 uses "▁").
type prependNormalizer string

func (p prependNormalizer) normalize(s string) string {
	if s == "" {
		return s
	}
	return string(p) + s
}

// replaceNormalizer replaces every match of a pattern.
type replaceNormalizer struct {
	pat     pattern
	content string
}

func (r replaceNormalizer) normalize(s string) string { return r.pat.replaceAll(s, r.content) }

type nfcNormalizer struct{}

func (nfcNormalizer) normalize(s string) string { return nfc(s) }

// stripNormalizer trims whitespace as Rust's trim_start/trim_end do.
type stripNormalizer struct{ left, right bool }

func (n stripNormalizer) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

// parseNormalizer builds a normalizer from its tokenizer.json object. A JSON
// null yields nil.
func parseNormalizer(raw json.RawMessage, depth int) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	if depth > maxConfigDepth {
		return nil, fmt.Errorf("normalizers nested deeper than %d", maxConfigDepth)
	}
	var c struct {
		Type        string            `json:"type"`
		Normalizers []json.RawMessage `json:"normalizers"`
		Prepend     *string           `json:"prepend"`
		Pattern     json.RawMessage   `json:"pattern"`
		Content     *string           `json:"content"`
		StripLeft   *bool             `json:"strip_left"`
		StripRight  *bool             `json:"strip_right"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	switch c.Type {
	case "Sequence":
		seq := seqNormalizer{}
		for i, sub := range c.Normalizers {
			n, err := parseNormalizer(sub, depth+1)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "Prepend":
		if c.Prepend == nil {
			return nil, fmt.Errorf("Prepend normalizer without \"prepend\"")
		}
		return prependNormalizer(*c.Prepend), nil
	case "Replace":
		pat, err := parsePattern(c.Pattern)
		if err != nil {
			return nil, fmt.Errorf("Replace normalizer: %w", err)
		}
		if c.Content == nil {
			return nil, fmt.Errorf("Replace normalizer without \"content\"")
		}
		return replaceNormalizer{pat: pat, content: *c.Content}, nil
	case "NFC":
		return nfcNormalizer{}, nil
	case "Strip":
		return stripNormalizer{left: c.StripLeft == nil || *c.StripLeft, right: c.StripRight == nil || *c.StripRight}, nil
	}
	return nil, fmt.Errorf("unsupported normalizer type %q", c.Type)
}
