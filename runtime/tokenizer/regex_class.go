package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Parsing of bracket expressions and backslash escapes, shared by atoms
// inside and outside classes.

// parseClass parses a bracket expression after its '['.
func (p *reParser) parseClass(fold bool) (runeSet, error) {
	c := &classSet{fold: fold}
	if p.eat("^") {
		c.neg = true
	}
	first := true
	for {
		if p.eof() {
			return nil, p.errorf("missing ']'")
		}
		r := p.next()
		switch {
		case r == ']' && !first:
			return c, nil
		case r == '[':
			if strings.HasPrefix(p.src[p.pos:], ":") {
				return nil, p.errorf("POSIX bracket classes are not supported")
			}
			return nil, p.errorf("nested character classes are not supported")
		case r == '&' && p.eat("&"):
			return nil, p.errorf("class intersection is not supported")
		}
		first = false
		var lo rune
		if r == '\\' {
			set, err := p.parseEscape(false, true)
			if err != nil {
				return nil, err
			}
			single, ok := set.(literal)
			if !ok {
				c.sets = append(c.sets, set)
				continue
			}
			lo = rune(single)
		} else {
			lo = r
		}
		// A range lo-hi, unless '-' is the last character of the class.
		if strings.HasPrefix(p.src[p.pos:], "-") && !strings.HasPrefix(p.src[p.pos:], "-]") && p.pos+1 < len(p.src) {
			p.next()
			hr := p.next()
			hi := hr
			if hr == '\\' {
				set, err := p.parseEscape(false, true)
				if err != nil {
					return nil, err
				}
				single, ok := set.(literal)
				if !ok {
					return nil, p.errorf("bad range end")
				}
				hi = rune(single)
			} else if hr == '[' {
				return nil, p.errorf("nested character classes are not supported")
			}
			if hi < lo {
				return nil, p.errorf("range %q-%q out of order", lo, hi)
			}
			c.ranges = append(c.ranges, [2]rune{lo, hi})
			continue
		}
		c.ranges = append(c.ranges, [2]rune{lo, lo})
	}
}

// parseEscape parses the escape after a backslash. Single characters come
// back as a literal (folded into a literalSet when fold is set outside a class).
func (p *reParser) parseEscape(fold, inClass bool) (runeSet, error) {
	if p.eof() {
		return nil, p.errorf("trailing backslash")
	}
	start := p.pos
	r := p.next()
	lit := func(r rune) (runeSet, error) {
		if fold && !inClass {
			return literalSet(r, true), nil
		}
		return literal(r), nil
	}
	switch r {
	case 't':
		return lit('\t')
	case 'n':
		return lit('\n')
	case 'r':
		return lit('\r')
	case 'f':
		return lit('\f')
	case 'v':
		return lit('\v')
	case 'a':
		return lit('\a')
	case 'e':
		return lit(0x1B)
	case 's':
		return spaceSet{}, nil
	case 'S':
		return notSet{spaceSet{}}, nil
	case 'd':
		return tableSet{unicode.Nd}, nil
	case 'D':
		return notSet{tableSet{unicode.Nd}}, nil
	case 'w':
		return wordSet{}, nil
	case 'W':
		return notSet{wordSet{}}, nil
	case 'p', 'P':
		set, err := p.parseProperty()
		if err != nil {
			return nil, err
		}
		if r == 'P' {
			return notSet{set}, nil
		}
		return set, nil
	case 'x':
		return p.parseHexEscape(lit)
	case 'u':
		if p.pos+4 > len(p.src) {
			return nil, p.errorf("short \\u escape")
		}
		v, err := strconv.ParseUint(p.src[p.pos:p.pos+4], 16, 32)
		if err != nil {
			return nil, p.errorf("bad \\u escape")
		}
		p.pos += 4
		return lit(rune(v))
	}
	if r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
		return nil, fmt.Errorf("at offset %d: escape \\%c is not supported", start, r)
	}
	return lit(r) // escaped punctuation or any non-ASCII character stands for itself
}

func (p *reParser) parseHexEscape(lit func(rune) (runeSet, error)) (runeSet, error) {
	var digits string
	if p.eat("{") {
		end := strings.IndexByte(p.src[p.pos:], '}')
		if end < 0 || end > 8 {
			return nil, p.errorf("bad \\x{...} escape")
		}
		digits = p.src[p.pos : p.pos+end]
		p.pos += end + 1
	} else {
		n := 0
		for n < 2 && p.pos+n < len(p.src) && isHex(p.src[p.pos+n]) {
			n++
		}
		digits = p.src[p.pos : p.pos+n]
		p.pos += n
	}
	v, err := strconv.ParseUint(digits, 16, 32)
	if err != nil || v > unicode.MaxRune {
		return nil, p.errorf("bad \\x escape")
	}
	return lit(rune(v))
}

func isHex(c byte) bool {
	_, ok := hexVal(c)
	return ok
}

// parseProperty parses the {Name} or {^Name} of \p and \P.
func (p *reParser) parseProperty() (runeSet, error) {
	if !p.eat("{") {
		return nil, p.errorf("\\p needs {Name}")
	}
	end := strings.IndexByte(p.src[p.pos:], '}')
	if end < 0 {
		return nil, p.errorf("missing '}' after \\p{")
	}
	name := p.src[p.pos : p.pos+end]
	p.pos += end + 1
	neg := strings.HasPrefix(name, "^")
	name = strings.TrimPrefix(name, "^")
	set, ok := propertySet(name)
	if !ok {
		return nil, p.errorf("unknown property \\p{%s}", name)
	}
	if neg {
		return notSet{set}, nil
	}
	return set, nil
}

// propertySet resolves a general category (L, Lu, N, P, S, ...) or a script
// name (Han, Latin, ...).
func propertySet(name string) (runeSet, bool) {
	if t, ok := unicode.Categories[name]; ok {
		return tableSet{t}, true
	}
	if t, ok := unicode.Scripts[name]; ok {
		return tableSet{t}, true
	}
	return nil, false
}
