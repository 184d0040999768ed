package chat

import "fmt"

type parser struct {
	toks  []token
	i     int
	depth int // expressions and blocks open, bounded by maxNesting
}

// nest enters one more level of expression or block; the recursive
// descent would otherwise overflow the stack on "((((...". Pair it with
// unnest.
func (p *parser) nest() error {
	p.depth++
	if p.depth > maxNesting {
		return errAt(p.peek().pos, "expressions or blocks nested deeper than %d", maxNesting)
	}
	return nil
}

func (p *parser) unnest() { p.depth-- }

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isOp(v string) bool {
	t := p.peek()
	return t.kind == tOp && t.val == v
}
func (p *parser) isName(v string) bool {
	t := p.peek()
	return t.kind == tName && t.val == v
}

func (p *parser) expectOp(v string) error {
	if !p.isOp(v) {
		return errAt(p.peek().pos, "expected %q, found %s", v, describe(p.peek()))
	}
	p.next()
	return nil
}

func (p *parser) expectKind(k tokKind, what string) (token, error) {
	t := p.peek()
	if t.kind != k {
		return t, errAt(t.pos, "expected %s, found %s", what, describe(t))
	}
	return p.next(), nil
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of template"
	case tVarEnd:
		return `"}}"`
	case tBlockEnd:
		return `"%}"`
	case tString:
		return fmt.Sprintf("string %q", t.val)
	}
	return fmt.Sprintf("%q", t.val)
}

// parseBody parses statements until a block tag whose keyword is one of
// stops, returning that keyword (consumed) or "" at end of template.
func (p *parser) parseBody(stops ...string) ([]node, string, error) {
	var nodes []node
	for {
		t := p.peek()
		switch t.kind {
		case tEOF:
			return nodes, "", nil
		case tText:
			p.next()
			nodes = append(nodes, &textNode{text: t.val})
		case tVarBegin:
			p.next()
			e, err := p.parseExpr()
			if err != nil {
				return nil, "", err
			}
			if _, err := p.expectKind(tVarEnd, `"}}"`); err != nil {
				return nil, "", err
			}
			nodes = append(nodes, &outputNode{pos: t.pos, expr: e})
		case tBlockBegin:
			p.next()
			kw, err := p.expectKind(tName, "statement keyword")
			if err != nil {
				return nil, "", err
			}
			for _, s := range stops {
				if kw.val == s {
					return nodes, s, nil
				}
			}
			n, err := p.parseStatement(kw)
			if err != nil {
				return nil, "", err
			}
			if n != nil {
				nodes = append(nodes, n)
			}
		default:
			return nil, "", errAt(t.pos, "unexpected %s", describe(t))
		}
	}
}

// parseBlock parses a body that must be closed by one of stops.
func (p *parser) parseBlock(open token, stops ...string) ([]node, string, error) {
	defer p.unnest()
	if err := p.nest(); err != nil {
		return nil, "", err
	}
	body, stop, err := p.parseBody(stops...)
	if err != nil {
		return nil, "", err
	}
	if stop == "" {
		return nil, "", errAt(open.pos, "unclosed %q block: missing {%% %s %%}", open.val, stops[len(stops)-1])
	}
	return body, stop, nil
}

func (p *parser) endTag() error {
	_, err := p.expectKind(tBlockEnd, `"%}"`)
	return err
}

func (p *parser) parseStatement(kw token) (node, error) {
	switch kw.val {
	case "if":
		return p.parseIf(kw)
	case "for":
		return p.parseFor(kw)
	case "set":
		return p.parseSet(kw)
	case "macro":
		return p.parseMacro(kw)
	case "break", "continue":
		return &loopControl{brk: kw.val == "break"}, p.endTag()
	case "generation":
		// transformers' {% generation %} marks assistant text; it renders
		// its body unchanged.
		if err := p.endTag(); err != nil {
			return nil, err
		}
		body, _, err := p.parseBlock(kw, "endgeneration")
		if err != nil {
			return nil, err
		}
		return &ifNode{conds: []expr{&literal{val: true}}, bodies: [][]node{body}}, p.endTag()
	}
	return nil, errAt(kw.pos, "unknown or unsupported statement %q", kw.val)
}

func (p *parser) parseIf(kw token) (node, error) {
	n := &ifNode{}
	for {
		cond, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if err := p.endTag(); err != nil {
			return nil, err
		}
		body, stop, err := p.parseBlock(kw, "elif", "else", "endif")
		if err != nil {
			return nil, err
		}
		n.conds = append(n.conds, cond)
		n.bodies = append(n.bodies, body)
		switch stop {
		case "endif":
			return n, p.endTag()
		case "else":
			if err := p.endTag(); err != nil {
				return nil, err
			}
			n.els, _, err = p.parseBlock(kw, "endif")
			if err != nil {
				return nil, err
			}
			return n, p.endTag()
		}
	}
}

func (p *parser) parseTargets() ([]string, error) {
	var names []string
	for {
		t, err := p.expectKind(tName, "variable name")
		if err != nil {
			return nil, err
		}
		names = append(names, t.val)
		if !p.isOp(",") {
			return names, nil
		}
		p.next()
	}
}

func (p *parser) parseFor(kw token) (node, error) {
	targets, err := p.parseTargets()
	if err != nil {
		return nil, err
	}
	if !p.isName("in") {
		return nil, errAt(p.peek().pos, `expected "in", found %s`, describe(p.peek()))
	}
	p.next()
	// The iterable cannot be a bare conditional expression: "if" here
	// starts the loop filter.
	iter, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	n := &forNode{pos: kw.pos, targets: targets, iter: iter}
	if p.isName("if") {
		p.next()
		if n.filter, err = p.parseOr(); err != nil {
			return nil, err
		}
	}
	if p.isName("recursive") {
		return nil, errAt(p.peek().pos, "recursive loops are not supported")
	}
	if err := p.endTag(); err != nil {
		return nil, err
	}
	body, stop, err := p.parseBlock(kw, "else", "endfor")
	if err != nil {
		return nil, err
	}
	n.body = body
	if stop == "else" {
		if err := p.endTag(); err != nil {
			return nil, err
		}
		if n.els, _, err = p.parseBlock(kw, "endfor"); err != nil {
			return nil, err
		}
	}
	return n, p.endTag()
}

func (p *parser) parseSet(kw token) (node, error) {
	targets, err := p.parseTargets()
	if err != nil {
		return nil, err
	}
	n := &setNode{pos: kw.pos, targets: targets}
	if len(targets) == 1 && p.isOp(".") {
		p.next()
		attr, err := p.expectKind(tName, "attribute name")
		if err != nil {
			return nil, err
		}
		n.attr = attr.val
	}
	if p.peek().kind == tBlockEnd && len(targets) == 1 && n.attr == "" {
		p.next()
		n.body, _, err = p.parseBlock(kw, "endset")
		if err != nil {
			return nil, err
		}
		return n, p.endTag()
	}
	if err := p.expectOp("="); err != nil {
		return nil, err
	}
	if n.value, err = p.parseTuple(); err != nil {
		return nil, err
	}
	return n, p.endTag()
}

func (p *parser) parseMacro(kw token) (node, error) {
	name, err := p.expectKind(tName, "macro name")
	if err != nil {
		return nil, err
	}
	n := &macroNode{pos: kw.pos, name: name.val}
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	for !p.isOp(")") {
		param, err := p.expectKind(tName, "parameter name")
		if err != nil {
			return nil, err
		}
		var def expr
		if p.isOp("=") {
			p.next()
			if def, err = p.parseExpr(); err != nil {
				return nil, err
			}
		}
		n.params = append(n.params, param.val)
		n.defaults = append(n.defaults, def)
		if !p.isOp(",") {
			break
		}
		p.next()
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	if err := p.endTag(); err != nil {
		return nil, err
	}
	if n.body, _, err = p.parseBlock(kw, "endmacro"); err != nil {
		return nil, err
	}
	return n, p.endTag()
}
