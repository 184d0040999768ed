package manifest

import (
	"bytes"
	"fmt"

	"github.com/moderuntime/mode/runtime/model"
)

// countCheck names an array key and the most elements any one such array
// may have.
type countCheck struct {
	key string
	max int
}

// arrayBounds are the per-layer lists a hostile manifest can make long
// cheaply (two bytes an element), checked before the JSON is decoded:
// decoding a million-element list costs far more than scanning it, and
// model.Config.Validate would refuse it anyway.
var arrayBounds = []countCheck{
	{"expert_widths", model.MaxExperts},
	{"shared_widths", model.MaxShared},
	{"expert_arch", model.MaxExperts},
}

// checkCounts scans b once, tracking strings, and returns an error when
// an array under one of arrayBounds' keys has more elements than its
// bound, as soon as it has counted one too many. It only fails fast:
// Validate checks the same bounds on the decoded manifest, so a key this
// scan does not recognise (encoding/json matches keys case-insensitively)
// is still refused there.
func checkCounts(b []byte) error {
	inString, escaped := false, false
	strStart := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
				if err := checkArrayAfter(b, strStart, i); err != nil {
					return err
				}
			}
			continue
		}
		if c == '"' {
			inString, strStart = true, i+1
		}
	}
	return nil
}

// checkArrayAfter looks at the string b[start:end] (its closing quote at
// end): when it is a bounded key followed by ':' and '[', it counts that
// array's elements.
func checkArrayAfter(b []byte, start, end int) error {
	key := b[start:end]
	var bound countCheck
	found := false
	for _, a := range arrayBounds {
		if bytes.Equal(key, []byte(a.key)) {
			bound, found = a, true
			break
		}
	}
	if !found {
		return nil
	}
	i := skipSpace(b, end+1)
	if i >= len(b) || b[i] != ':' {
		return nil // a value, not a key
	}
	i = skipSpace(b, i+1)
	if i >= len(b) || b[i] != '[' {
		return nil
	}
	if n := countElements(b, i, bound.max+1); n > bound.max {
		return fmt.Errorf("manifest: %s at byte %d lists more than the %d entries a layer may have", bound.key, start-1, bound.max)
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// countElements counts the elements of the array opening at b[open],
// stopping once it reaches limit.
func countElements(b []byte, open, limit int) int {
	depth, n := 0, 0
	inString, escaped, empty := false, false, true
	for i := open; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				if !empty {
					n++
				}
				return n
			}
		case ',':
			if depth == 1 {
				if n++; n >= limit {
					return n
				}
			}
		case ' ', '\t', '\n', '\r':
			continue
		}
		if i > open {
			empty = false
		}
	}
	return n
}
