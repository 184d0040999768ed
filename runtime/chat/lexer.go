package chat

import (
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tText       tokKind = iota
	tVarBegin           // {{
	tVarEnd             // }}
	tBlockBegin         // {%
	tBlockEnd           // %}
	tName
	tString
	tInt
	tFloat
	tOp // operators and punctuation
	tEOF
)

type token struct {
	kind tokKind
	val  string
	pos  pos
}

// lexer splits a template into text and tag tokens. It applies whitespace
// control while scanning because trimming depends on the raw source around
// each tag (line starts for lstrip_blocks, the newline after a block for
// trim_blocks), which the parser no longer sees.
type lexer struct {
	src    string
	off    int
	toks   []token
	lineAt []int // offsets of line starts, for positions
	// last is the offset and position posOf found last: tokens come in
	// order, so counting columns on from it keeps a long line linear
	// (counting from the line's start each time made a 1 MB one-line
	// template quadratic).
	lastOff int
	last    pos
}

func (l *lexer) posOf(off int) pos {
	lo, hi := 0, len(l.lineAt)
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if l.lineAt[mid] <= off {
			lo = mid
		} else {
			hi = mid
		}
	}
	if l.last.line == lo+1 && l.lastOff <= off {
		l.last.col += utf8.RuneCountInString(l.src[l.lastOff:off])
	} else {
		l.last = pos{line: lo + 1, col: utf8.RuneCountInString(l.src[l.lineAt[lo]:off]) + 1}
	}
	l.lastOff = off
	return l.last
}

func lex(src string) ([]token, error) {
	// Hugging Face renders with keep_trailing_newline=False.
	src = strings.TrimSuffix(src, "\n")
	l := &lexer{src: src, lineAt: []int{0}}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			l.lineAt = append(l.lineAt, i+1)
		}
	}
	if err := l.run(); err != nil {
		return nil, err
	}
	l.toks = append(l.toks, token{kind: tEOF, pos: l.posOf(len(src))})
	return l.toks, nil
}

// nextTag finds the next "{{", "{%" or "{#" at or after off.
func (l *lexer) nextTag(off int) int {
	for {
		i := strings.IndexByte(l.src[off:], '{')
		if i < 0 || off+i+1 >= len(l.src) {
			return -1
		}
		switch l.src[off+i+1] {
		case '{', '%', '#':
			return off + i
		}
		off += i + 1
	}
}

// atLineStart reports whether only spaces and tabs precede off on its line,
// returning the offset where that whitespace begins.
func (l *lexer) atLineStart(off int) (int, bool) {
	i := off
	for i > 0 && (l.src[i-1] == ' ' || l.src[i-1] == '\t') {
		i--
	}
	return i, i == 0 || l.src[i-1] == '\n'
}

func (l *lexer) run() error {
	stripNext := false // previous tag ended with "-": strip leading whitespace
	for l.off < len(l.src) {
		start := l.nextTag(l.off)
		end := start
		if start < 0 {
			end = len(l.src)
		}
		kind := byte(0)
		if start >= 0 {
			kind = l.src[start+1]
		}
		textEnd := end
		if start >= 0 {
			switch {
			case start+2 < len(l.src) && l.src[start+2] == '-':
				textEnd = len(strings.TrimRight(l.src[l.off:end], " \t\n\r\v\f")) + l.off
			case kind != '{' && !(start+2 < len(l.src) && l.src[start+2] == '+'):
				if ws, ok := l.atLineStart(start); ok && ws >= l.off {
					textEnd = ws
				}
			}
		}
		text := l.src[l.off:textEnd]
		if stripNext {
			text = strings.TrimLeft(text, " \t\n\r\v\f")
		}
		if text != "" {
			l.toks = append(l.toks, token{kind: tText, val: text, pos: l.posOf(l.off)})
		}
		if start < 0 {
			return nil
		}
		var err error
		stripNext, err = l.tag(start, kind)
		if err != nil {
			return err
		}
	}
	return nil
}

// tag lexes one tag starting at off and reports whether it ended with "-".
func (l *lexer) tag(off int, kind byte) (bool, error) {
	p := l.posOf(off)
	body := off + 2
	if body < len(l.src) && (l.src[body] == '-' || l.src[body] == '+') {
		body++
	}
	if kind == '#' {
		i := strings.Index(l.src[body:], "#}")
		if i < 0 {
			return false, errAt(p, "unclosed comment")
		}
		end := body + i
		strip := end > body && l.src[end-1] == '-'
		l.off = end + 2
		if !strip {
			l.trimBlock()
		}
		return strip, nil
	}
	closer, begin, endKind := "}}", tVarBegin, tVarEnd
	if kind == '%' {
		closer, begin, endKind = "%}", tBlockBegin, tBlockEnd
	}
	l.toks = append(l.toks, token{kind: begin, pos: p})
	l.off = body
	depth := 0 // open brackets, so "}}" inside a dict literal does not close
	for {
		for l.off < len(l.src) && isSpace(l.src[l.off]) {
			l.off++
		}
		if l.off >= len(l.src) {
			return false, errAt(p, "unclosed tag: missing %q", closer)
		}
		rest := l.src[l.off:]
		if depth == 0 {
			strip := strings.HasPrefix(rest, "-"+closer)
			if strip || strings.HasPrefix(rest, closer) {
				l.toks = append(l.toks, token{kind: endKind, pos: l.posOf(l.off)})
				l.off += len(closer)
				if strip {
					l.off++
				} else if kind == '%' {
					l.trimBlock()
				}
				return strip, nil
			}
		}
		tok, err := l.exprToken()
		if err != nil {
			return false, err
		}
		switch tok.val {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			if depth > 0 {
				depth--
			}
		}
		l.toks = append(l.toks, tok)
	}
}

// trimBlock drops the newline right after a block tag (trim_blocks).
func (l *lexer) trimBlock() {
	if strings.HasPrefix(l.src[l.off:], "\n") {
		l.off++
	} else if strings.HasPrefix(l.src[l.off:], "\r\n") {
		l.off += 2
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isNameStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

var operators = []string{"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
	"<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"}

func (l *lexer) exprToken() (token, error) {
	p := l.posOf(l.off)
	s := l.src
	start := l.off
	c := s[start]
	switch {
	case isNameStart(c):
		i := start
		for i < len(s) && (isNameStart(s[i]) || isDigit(s[i])) {
			i++
		}
		l.off = i
		return token{kind: tName, val: s[start:i], pos: p}, nil
	case isDigit(c):
		i := start
		kind := tInt
		for i < len(s) && (isDigit(s[i]) || s[i] == '_') {
			i++
		}
		if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
			kind = tFloat
			i++
			for i < len(s) && (isDigit(s[i]) || s[i] == '_') {
				i++
			}
		}
		if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
			j := i + 1
			if j < len(s) && (s[j] == '+' || s[j] == '-') {
				j++
			}
			if j < len(s) && isDigit(s[j]) {
				kind = tFloat
				for i = j; i < len(s) && isDigit(s[i]); i++ {
				}
			}
		}
		l.off = i
		return token{kind: kind, val: strings.ReplaceAll(s[start:i], "_", ""), pos: p}, nil
	case c == '\'' || c == '"':
		str, n, err := unquote(s[start:])
		if err != nil {
			return token{}, errAt(p, "%v", err)
		}
		l.off += n
		return token{kind: tString, val: str, pos: p}, nil
	}
	for _, op := range operators {
		if strings.HasPrefix(s[start:], op) {
			l.off += len(op)
			return token{kind: tOp, val: op, pos: p}, nil
		}
	}
	r, _ := utf8.DecodeRuneInString(s[start:])
	return token{}, errAt(p, "unexpected character %q", r)
}
