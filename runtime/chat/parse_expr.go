package chat

import (
	"strconv"
)

// Expression grammar, loosest binding first, as in Jinja:
// conditional, or, and, not, comparison, + -, ~, * / // %, **, unary,
// then primary with postfix access, calls, filters and tests.

// parseTuple parses an expression, or a bare tuple "a, b" as a list.
func (p *parser) parseTuple() (expr, error) {
	e, err := p.parseExpr()
	if err != nil || !p.isOp(",") {
		return e, err
	}
	items := []expr{e}
	for p.isOp(",") {
		p.next()
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		items = append(items, e)
	}
	return &listExpr{items: items}, nil
}

func (p *parser) parseExpr() (expr, error) {
	defer p.unnest()
	if err := p.nest(); err != nil {
		return nil, err
	}
	yes, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	for p.isName("if") {
		p.next()
		cond, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		var no expr
		if p.isName("else") {
			p.next()
			if no, err = p.parseExpr(); err != nil {
				return nil, err
			}
		}
		yes = &condExpr{cond: cond, yes: yes, no: no}
	}
	return yes, nil
}

func (p *parser) binaryLevel(sub func() (expr, error), isOp func(token) bool) (expr, error) {
	l, err := sub()
	if err != nil {
		return nil, err
	}
	for isOp(p.peek()) {
		t := p.next()
		r, err := sub()
		if err != nil {
			return nil, err
		}
		l = &binaryExpr{pos: t.pos, op: t.val, l: l, r: r}
	}
	return l, nil
}

func opIn(ops ...string) func(token) bool {
	return func(t token) bool {
		if t.kind != tOp && t.kind != tName {
			return false
		}
		for _, o := range ops {
			if t.val == o {
				return true
			}
		}
		return false
	}
}

func (p *parser) parseOr() (expr, error)  { return p.binaryLevel(p.parseAnd, opIn("or")) }
func (p *parser) parseAnd() (expr, error) { return p.binaryLevel(p.parseNot, opIn("and")) }

func (p *parser) parseNot() (expr, error) {
	if p.isName("not") {
		defer p.unnest()
		if err := p.nest(); err != nil {
			return nil, err
		}
		t := p.next()
		x, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &unaryExpr{pos: t.pos, op: "not", x: x}, nil
	}
	return p.parseCompare()
}

func (p *parser) parseCompare() (expr, error) {
	l, err := p.parseAdd()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		op := ""
		switch {
		case opIn("==", "!=", "<", ">", "<=", ">=")(t) && t.kind == tOp:
			op = t.val
		case p.isName("in"):
			op = "in"
		case p.isName("not") && p.toks[p.i+1].kind == tName && p.toks[p.i+1].val == "in":
			p.next()
			op = "not in"
		default:
			return l, nil
		}
		p.next()
		r, err := p.parseAdd()
		if err != nil {
			return nil, err
		}
		l = &binaryExpr{pos: t.pos, op: op, l: l, r: r}
	}
}

func (p *parser) parseAdd() (expr, error) {
	return p.binaryLevel(p.parseConcat, func(t token) bool { return t.kind == tOp && (t.val == "+" || t.val == "-") })
}
func (p *parser) parseConcat() (expr, error) {
	return p.binaryLevel(p.parseMul, func(t token) bool { return t.kind == tOp && t.val == "~" })
}
func (p *parser) parseMul() (expr, error) {
	return p.binaryLevel(p.parsePow, func(t token) bool { return t.kind == tOp && opIn("*", "/", "//", "%")(t) })
}
func (p *parser) parsePow() (expr, error) {
	return p.binaryLevel(func() (expr, error) { return p.parseUnary(true) },
		func(t token) bool { return t.kind == tOp && t.val == "**" })
}

func (p *parser) parseUnary(withFilter bool) (expr, error) {
	if p.isOp("-") || p.isOp("+") {
		defer p.unnest()
		if err := p.nest(); err != nil {
			return nil, err
		}
		t := p.next()
		x, err := p.parseUnary(false)
		if err != nil {
			return nil, err
		}
		e := expr(&unaryExpr{pos: t.pos, op: t.val, x: x})
		if withFilter {
			return p.parseFilters(e)
		}
		return e, nil
	}
	e, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	if e, err = p.parsePostfix(e); err != nil {
		return nil, err
	}
	if withFilter {
		return p.parseFilters(e)
	}
	return e, nil
}

func (p *parser) parsePrimary() (expr, error) {
	t := p.next()
	switch t.kind {
	case tString:
		s := t.val
		for p.peek().kind == tString { // adjacent literals concatenate
			s += p.next().val
		}
		return &literal{val: s}, nil
	case tInt:
		n, err := strconv.ParseInt(t.val, 10, 64)
		if err != nil {
			return nil, errAt(t.pos, "integer literal %s out of range", t.val)
		}
		return &literal{val: n}, nil
	case tFloat:
		f, err := strconv.ParseFloat(t.val, 64)
		if err != nil {
			return nil, errAt(t.pos, "bad float literal %s", t.val)
		}
		return &literal{val: f}, nil
	case tName:
		switch t.val {
		case "true", "True":
			return &literal{val: true}, nil
		case "false", "False":
			return &literal{val: false}, nil
		case "none", "None":
			return &literal{val: nil}, nil
		}
		return &nameExpr{pos: t.pos, name: t.val}, nil
	case tOp:
		switch t.val {
		case "(":
			if p.isOp(")") {
				p.next()
				return &listExpr{}, nil
			}
			e, err := p.parseTuple()
			if err != nil {
				return nil, err
			}
			return e, p.expectOp(")")
		case "[":
			items, err := p.parseList("]")
			return &listExpr{items: items}, err
		case "{":
			return p.parseDict()
		}
	}
	return nil, errAt(t.pos, "unexpected %s in expression", describe(t))
}

// parseList parses comma-separated expressions up to the closing bracket.
func (p *parser) parseList(closer string) ([]expr, error) {
	var items []expr
	for !p.isOp(closer) {
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		items = append(items, e)
		if !p.isOp(",") {
			break
		}
		p.next()
	}
	return items, p.expectOp(closer)
}

func (p *parser) parseDict() (expr, error) {
	d := &dictExpr{pos: p.peek().pos}
	for !p.isOp("}") {
		k, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(":"); err != nil {
			return nil, err
		}
		v, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		d.keys, d.vals = append(d.keys, k), append(d.vals, v)
		if !p.isOp(",") {
			break
		}
		p.next()
	}
	return d, p.expectOp("}")
}

func (p *parser) parsePostfix(e expr) (expr, error) {
	for {
		t := p.peek()
		switch {
		case p.isOp("."):
			p.next()
			name := p.next()
			if name.kind != tName && name.kind != tInt {
				return nil, errAt(name.pos, "expected attribute name after \".\", found %s", describe(name))
			}
			e = &attrExpr{pos: t.pos, obj: e, name: name.val}
		case p.isOp("["):
			p.next()
			var err error
			if e, err = p.parseSubscript(t, e); err != nil {
				return nil, err
			}
		case p.isOp("("):
			p.next()
			args, kwargs, err := p.parseArgs()
			if err != nil {
				return nil, err
			}
			e = &callExpr{pos: t.pos, fn: e, args: args, kwargs: kwargs}
		default:
			return e, nil
		}
	}
}

func (p *parser) parseSubscript(open token, obj expr) (expr, error) {
	var parts [3]expr
	n, colons := 0, 0
	for {
		if !p.isOp(":") && !p.isOp("]") {
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			parts[n] = e
		}
		if p.isOp(":") && colons < 2 {
			p.next()
			colons++
			n++
			continue
		}
		break
	}
	if err := p.expectOp("]"); err != nil {
		return nil, err
	}
	if colons == 0 {
		if parts[0] == nil {
			return nil, errAt(open.pos, "empty subscript")
		}
		return &indexExpr{pos: open.pos, obj: obj, idx: parts[0]}, nil
	}
	return &sliceExpr{pos: open.pos, obj: obj, start: parts[0], stop: parts[1], step: parts[2]}, nil
}

// parseArgs parses call arguments after "(" through ")".
func (p *parser) parseArgs() ([]expr, []kwarg, error) {
	var args []expr
	var kwargs []kwarg
	for !p.isOp(")") {
		if p.peek().kind == tName && p.toks[p.i+1].kind == tOp && p.toks[p.i+1].val == "=" {
			name := p.next().val
			p.next()
			v, err := p.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwarg{name: name, val: v})
		} else {
			v, err := p.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			args = append(args, v)
		}
		if !p.isOp(",") {
			break
		}
		p.next()
	}
	return args, kwargs, p.expectOp(")")
}

func (p *parser) parseFilters(e expr) (expr, error) {
	for {
		switch {
		case p.isOp("|"):
			p.next()
			name, err := p.expectKind(tName, "filter name")
			if err != nil {
				return nil, err
			}
			f := &filterExpr{pos: name.pos, obj: e, name: name.val}
			if p.isOp("(") {
				p.next()
				if f.args, f.kwargs, err = p.parseArgs(); err != nil {
					return nil, err
				}
			}
			e = f
		case p.isName("is"):
			p.next()
			t := &testExpr{obj: e}
			if p.isName("not") {
				p.next()
				t.negate = true
			}
			name := p.next()
			if name.kind != tName {
				return nil, errAt(name.pos, "expected test name after \"is\", found %s", describe(name))
			}
			t.pos, t.name = name.pos, name.val
			if p.isOp("(") {
				p.next()
				args, _, err := p.parseArgs()
				if err != nil {
					return nil, err
				}
				t.args = args
			} else if k := p.peek().kind; k == tString || k == tInt || k == tFloat {
				// "is divisibleby 3", "is sameas none": one bare argument.
				arg, err := p.parsePrimary()
				if err != nil {
					return nil, err
				}
				t.args = []expr{arg}
			}
			e = t
		default:
			return e, nil
		}
	}
}
