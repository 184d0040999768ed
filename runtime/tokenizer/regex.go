package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file parses the regular expressions found in tokenizer.json files.
//
// The Hugging Face tokenizers library compiles them with Oniguruma, and the
// GPT-2, Llama-3, Qwen and DeepSeek pre-tokenizer patterns rely on features
// Go's RE2-based regexp lacks, chiefly negative lookahead (\s+(?!\S)). The
// engine here is a small backtracking matcher with Oniguruma's leftmost-first
// semantics. It deliberately supports only what those patterns need —
// literals, classes with ranges and \p{..}, alternation, groups, (?i:...),
// lookahead, quantifiers on single-character atoms, and bounded quantifiers
// (?, {n,m}) on groups, which the o200k pattern of gpt-oss uses for its
// optional contractions "(?i:'s|'t|...)?" — and rejects anything else at
// load time, so an unsupported file fails loudly instead of tokenizing
// differently from the reference.

// reNode is a node of a parsed pattern.
type reNode struct {
	kind reKind
	set  runeSet   // reChar, and the atom of reRepeat
	subs []*reNode // reSeq, reAlt, reLook and reGroupRepeat (one sub)
	min  int       // reRepeat, reGroupRepeat
	max  int       // reRepeat, reGroupRepeat; -1 means unbounded (reRepeat only)
	lazy bool      // reRepeat, reGroupRepeat
	neg  bool      // reLook: negative lookahead
}

type reKind uint8

const (
	reChar        reKind = iota // one character from set
	reSeq                       // subs in order
	reAlt                       // first sub that leads to a match
	reRepeat                    // set repeated min..max times
	reLook                      // lookahead assertion on subs[0]
	reGroupRepeat               // subs[0] repeated min..max times, max bounded
)

// Limits that keep hostile patterns from exhausting memory or the stack.
const (
	reMaxDepth  = 64
	reMaxRepeat = 100000 // Oniguruma's ONIG_MAX_REPEAT_NUM
	reMaxLen    = 1 << 16
	// reMaxGroupRepeat bounds a quantifier on a group: each iteration is
	// a level of recursion in the matcher, so an unbounded one (* or + on
	// a group) is refused, and {n,m} may not go beyond this.
	reMaxGroupRepeat = 64
)

// regex is a compiled pattern.
type regex struct {
	src  string
	root *reNode
}

// compileRegex parses an Oniguruma-syntax pattern, or reports which construct
// it does not support.
func compileRegex(src string) (*regex, error) {
	if len(src) > reMaxLen {
		return nil, fmt.Errorf("regex too long (%d bytes)", len(src))
	}
	if !utf8.ValidString(src) {
		return nil, fmt.Errorf("regex %q is not valid UTF-8", src)
	}
	p := &reParser{src: src}
	root, err := p.parseAlt(0, false)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", src, err)
	}
	if p.pos < len(p.src) {
		return nil, fmt.Errorf("regex %q: unmatched ')' at offset %d", src, p.pos)
	}
	return &regex{src: src, root: root}, nil
}

type reParser struct {
	src string
	pos int
}

func (p *reParser) eof() bool { return p.pos >= len(p.src) }

func (p *reParser) peek() rune {
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	return r
}

func (p *reParser) next() rune {
	r, n := utf8.DecodeRuneInString(p.src[p.pos:])
	p.pos += n
	return r
}

func (p *reParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: "+format, append([]any{p.pos}, args...)...)
}

// parseAlt parses alternatives up to an unconsumed ')' or the end.
func (p *reParser) parseAlt(depth int, fold bool) (*reNode, error) {
	if depth > reMaxDepth {
		return nil, p.errorf("groups nested deeper than %d", reMaxDepth)
	}
	var alts []*reNode
	for {
		seq, err := p.parseSeq(depth, &fold)
		if err != nil {
			return nil, err
		}
		alts = append(alts, seq)
		if p.eof() || p.peek() != '|' {
			break
		}
		p.next()
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return &reNode{kind: reAlt, subs: alts}, nil
}

// parseSeq parses atoms up to '|' or ')'. fold is the current case-folding
// flag; an inline "(?i)" changes it for the rest of the enclosing group.
func (p *reParser) parseSeq(depth int, fold *bool) (*reNode, error) {
	var items []*reNode
	for !p.eof() {
		switch p.peek() {
		case '|', ')':
			return &reNode{kind: reSeq, subs: items}, nil
		}
		atom, err := p.parseAtom(depth, fold)
		if err != nil {
			return nil, err
		}
		if atom == nil { // an inline flag group such as (?i)
			continue
		}
		atom, err = p.parseQuantifier(atom)
		if err != nil {
			return nil, err
		}
		items = append(items, atom)
	}
	return &reNode{kind: reSeq, subs: items}, nil
}

func (p *reParser) parseAtom(depth int, fold *bool) (*reNode, error) {
	start := p.pos
	r := p.next()
	switch r {
	case '(':
		return p.parseGroup(depth, fold)
	case '[':
		set, err := p.parseClass(*fold)
		if err != nil {
			return nil, err
		}
		return &reNode{kind: reChar, set: set}, nil
	case '.':
		return &reNode{kind: reChar, set: notNewline{}}, nil
	case '\\':
		set, err := p.parseEscape(*fold, false)
		if err != nil {
			return nil, err
		}
		return &reNode{kind: reChar, set: set}, nil
	case '^', '$':
		return nil, fmt.Errorf("at offset %d: anchor %q is not supported", start, r)
	case '*', '+', '?':
		return nil, fmt.Errorf("at offset %d: quantifier %q has nothing to repeat", start, r)
	}
	return &reNode{kind: reChar, set: literalSet(r, *fold)}, nil
}

func (p *reParser) parseGroup(depth int, fold *bool) (*reNode, error) {
	inner := *fold
	look, neg := false, false
	if strings.HasPrefix(p.src[p.pos:], "?") {
		p.next()
		switch {
		case p.eat("!"):
			look, neg = true, true
		case p.eat("="):
			look = true
		case p.eat(":"):
		default:
			// Flag groups: (?i) (?-i) (?i:...) (?-i:...).
			on := true
			sawFlag := false
			for !p.eof() {
				switch p.peek() {
				case '-':
					on = false
					p.next()
					continue
				case 'i':
					inner = on
					sawFlag = true
					p.next()
					continue
				}
				break
			}
			if !sawFlag || p.eof() {
				return nil, p.errorf("unsupported group syntax")
			}
			switch p.next() {
			case ')':
				*fold = inner // applies to the rest of the enclosing group
				return nil, nil
			case ':':
			default:
				return nil, p.errorf("unsupported group flags")
			}
		}
	}
	sub, err := p.parseAlt(depth+1, inner)
	if err != nil {
		return nil, err
	}
	if !p.eat(")") {
		return nil, p.errorf("missing ')'")
	}
	if look {
		return &reNode{kind: reLook, subs: []*reNode{sub}, neg: neg}, nil
	}
	return sub, nil
}

func (p *reParser) eat(s string) bool {
	if strings.HasPrefix(p.src[p.pos:], s) {
		p.pos += len(s)
		return true
	}
	return false
}

// parseQuantifier applies any quantifier after atom. Quantifiers are allowed
// on single-character atoms only: that covers every pattern in real tokenizer
// files and keeps backtracking polynomial.
func (p *reParser) parseQuantifier(atom *reNode) (*reNode, error) {
	if p.eof() {
		return atom, nil
	}
	start := p.pos
	min, max := 0, 0
	switch p.peek() {
	case '?':
		p.next()
		min, max = 0, 1
	case '*':
		p.next()
		min, max = 0, -1
	case '+':
		p.next()
		min, max = 1, -1
	case '{':
		lo, hi, ok, err := p.parseBraces()
		if err != nil {
			return nil, err
		}
		if !ok {
			return atom, nil // Oniguruma reads a malformed {...} literally
		}
		min, max = lo, hi
	default:
		return atom, nil
	}
	single := atom.kind == reChar
	if !single && atom.kind == reSeq && len(atom.subs) == 1 && atom.subs[0].kind == reChar {
		atom, single = atom.subs[0], true
	}
	var n *reNode
	switch {
	case single:
		n = &reNode{kind: reRepeat, set: atom.set, min: min, max: max}
	case atom.kind == reLook:
		return nil, fmt.Errorf("at offset %d: quantifier on a lookahead is not supported", start)
	case max < 0 || max > reMaxGroupRepeat:
		return nil, fmt.Errorf("at offset %d: quantifier on a group or repetition must be bounded by at most %d repeats ('?' or {n,m}); '*', '+' and {n,} are not supported", start, reMaxGroupRepeat)
	default:
		n = &reNode{kind: reGroupRepeat, subs: []*reNode{atom}, min: min, max: max}
	}
	if !p.eof() {
		switch p.peek() {
		case '?':
			p.next()
			n.lazy = true
		case '+':
			return nil, p.errorf("possessive quantifiers are not supported")
		case '*', '{':
			return nil, p.errorf("nested quantifier")
		}
	}
	return n, nil
}

// parseBraces parses {n}, {n,}, {,m} or {n,m} at the current position. If
// the text is not an interval it consumes nothing and reports false, since
// Oniguruma then reads the brace literally; an interval with its bounds out
// of order or too large is an error.
func (p *reParser) parseBraces() (lo, hi int, ok bool, err error) {
	end := strings.IndexByte(p.src[p.pos:], '}')
	if end < 0 {
		return 0, 0, false, nil
	}
	body := p.src[p.pos+1 : p.pos+end]
	a, b, comma := strings.Cut(body, ",")
	if !isDigits(a) && a != "" || !isDigits(b) && b != "" || a == "" && b == "" || !comma && a == "" {
		return 0, 0, false, nil
	}
	bound := func(s string, dflt int) (int, error) {
		if s == "" {
			return dflt, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n > reMaxRepeat {
			return 0, p.errorf("repeat count %q too large", s)
		}
		return n, nil
	}
	if lo, err = bound(a, 0); err != nil {
		return 0, 0, false, err
	}
	switch {
	case !comma:
		hi = lo
	default:
		if hi, err = bound(b, -1); err != nil {
			return 0, 0, false, err
		}
	}
	if hi >= 0 && hi < lo {
		return 0, 0, false, p.errorf("repeat range {%s} has upper bound below lower", body)
	}
	p.pos += end + 1
	return lo, hi, true, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
