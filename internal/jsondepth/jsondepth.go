package jsondepth

import "fmt"

// Max is the nesting the pack format and the files it reads allow
// (docs/pack-format.md, "Bounds").
const Max = 128

// Check reports an error when b nests arrays and objects deeper than max.
// It looks only at brackets outside strings; whether b is valid JSON is
// the parser's to say.
func Check(b []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for i, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > max {
				return fmt.Errorf("JSON nests deeper than %d levels at byte %d", max, i)
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return nil
}
