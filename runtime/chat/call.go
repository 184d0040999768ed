package chat

import (
	"strings"
	"unicode"
)

// builtin is a global function such as namespace or raise_exception.
type builtin string

var globals = map[string]bool{"namespace": true, "raise_exception": true, "range": true,
	"dict": true, "strftime_now": true}

// args holds evaluated call arguments.
type args struct {
	pos        pos
	positional []any
	kw         *dict
}

func (a args) arg(i int, name string) (any, bool) {
	if i < len(a.positional) {
		return a.positional[i], true
	}
	if v, ok := a.kw.get(name); ok {
		return v, true
	}
	return nil, false
}

func (r *renderer) evalArgs(p pos, list []expr, kws []kwarg, sc *scope) (args, error) {
	a := args{pos: p, kw: newDict()}
	for _, e := range list {
		v, err := r.eval(e, sc)
		if err != nil {
			return a, err
		}
		a.positional = append(a.positional, v)
	}
	for _, k := range kws {
		v, err := r.eval(k.val, sc)
		if err != nil {
			return a, err
		}
		a.kw.set(k.name, v)
	}
	return a, nil
}

func (r *renderer) evalCall(e *callExpr, sc *scope) (any, error) {
	// Methods: x.startswith(...) and friends dispatch on the receiver.
	if at, ok := e.fn.(*attrExpr); ok {
		recv, err := r.eval(at.obj, sc)
		if err != nil {
			return nil, err
		}
		if _, isDict := recv.(*dict); !isDict || isDictMethod(at.name) {
			a, err := r.evalArgs(e.pos, e.args, e.kwargs, sc)
			if err != nil {
				return nil, err
			}
			return callMethod(a, recv, at.name)
		}
	}
	fn, err := r.eval(e.fn, sc)
	if err != nil {
		return nil, err
	}
	a, err := r.evalArgs(e.pos, e.args, e.kwargs, sc)
	if err != nil {
		return nil, err
	}
	switch f := fn.(type) {
	case builtin:
		return r.callBuiltin(a, string(f))
	case *macro:
		return r.callMacro(a, f)
	}
	return nil, errAt(e.pos, "cannot call %s: not a function", typeName(fn))
}

func (r *renderer) callBuiltin(a args, name string) (any, error) {
	switch name {
	case "namespace", "dict":
		d := newDict()
		d.namespace = name == "namespace"
		if len(a.positional) == 1 {
			if src, ok := a.positional[0].(*dict); ok {
				for _, k := range src.keys {
					d.set(k, src.vals[k])
				}
			}
		}
		for _, k := range a.kw.keys {
			d.set(k, a.kw.vals[k])
		}
		return d, nil
	case "raise_exception":
		msg, _ := a.arg(0, "message")
		s, err := toString(msg)
		if err != nil {
			return nil, errAt(a.pos, "raise_exception: %v", err)
		}
		return nil, errAt(a.pos, "raise_exception: %s", s)
	case "strftime_now":
		if r.now.IsZero() {
			// Render is deterministic; RenderAt supplies the time.
			return nil, errAt(a.pos, "strftime_now needs the time: render with RenderAt")
		}
		f, _ := a.arg(0, "format")
		fs, ok := f.(string)
		if !ok {
			return nil, errAt(a.pos, "strftime_now expects a format string, got %s", typeName(f))
		}
		s, err := strftime(fs, r.now)
		if err != nil {
			return nil, errAt(a.pos, "strftime_now: %v", err)
		}
		return s, nil
	case "range":
		var b [3]int64
		b[2] = 1
		for i, v := range a.positional {
			n, ok := v.(int64)
			if !ok || i > 2 {
				return nil, errAt(a.pos, "range expects up to 3 integers")
			}
			b[i] = n
		}
		if len(a.positional) == 1 {
			b[0], b[1] = 0, b[0]
		}
		if b[2] == 0 {
			return nil, errAt(a.pos, "range step cannot be zero")
		}
		var out []any
		for i := b[0]; (b[2] > 0 && i < b[1]) || (b[2] < 0 && i > b[1]); i += b[2] {
			if len(out) >= maxIterations {
				return nil, errAt(a.pos, "range longer than %d", maxIterations)
			}
			out = append(out, i)
		}
		return out, nil
	}
	return nil, errAt(a.pos, "unknown function %q", name)
}

func (r *renderer) callMacro(a args, m *macro) (any, error) {
	if r.depth >= maxCallDepth {
		return nil, errAt(a.pos, "macro calls nested deeper than %d", maxCallDepth)
	}
	sc := newScope(m.env)
	for i, p := range m.node.params {
		if v, ok := a.arg(i, p); ok {
			sc.vars[p] = v
		} else if d := m.node.defaults[i]; d != nil {
			v, err := r.eval(d, sc)
			if err != nil {
				return nil, err
			}
			sc.vars[p] = v
		} else {
			sc.vars[p] = undefined{}
		}
	}
	r.depth++
	defer func() { r.depth-- }()
	start := r.out.Len()
	err := r.exec(m.node.body, sc)
	s := string(r.out.Bytes()[start:])
	r.out.Truncate(start)
	return s, err
}

func isDictMethod(name string) bool {
	switch name {
	case "items", "keys", "values", "get":
		return true
	}
	return false
}

func callMethod(a args, recv any, name string) (any, error) {
	switch x := recv.(type) {
	case string:
		return stringMethod(a, x, name)
	case *dict:
		switch name {
		case "items":
			return dictItems(x), nil
		case "keys":
			ks, _ := iterate(a.pos, x)
			return ks, nil
		case "values":
			out := make([]any, len(x.keys))
			for i, k := range x.keys {
				out[i] = x.vals[k]
			}
			return out, nil
		case "get":
			k, _ := a.arg(0, "key")
			if s, ok := k.(string); ok {
				if v, ok := x.get(s); ok {
					return v, nil
				}
			}
			if d, ok := a.arg(1, "default"); ok {
				return d, nil
			}
			return nil, nil
		}
	}
	return nil, errAt(a.pos, "%s has no method %q", typeName(recv), name)
}

func dictItems(d *dict) []any {
	out := make([]any, len(d.keys))
	for i, k := range d.keys {
		out[i] = []any{k, d.vals[k]}
	}
	return out
}

func strArg(a args, i int, name string) (string, bool, error) {
	v, ok := a.arg(i, name)
	if !ok || v == nil {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, errAt(a.pos, "argument %s must be a string, not %s", name, typeName(v))
	}
	return s, true, nil
}

func stringMethod(a args, s, name string) (any, error) {
	arg0, has0, err := strArg(a, 0, "chars")
	if err != nil && name != "split" && name != "replace" {
		return nil, err
	}
	switch name {
	case "startswith":
		return strings.HasPrefix(s, arg0), nil
	case "endswith":
		return strings.HasSuffix(s, arg0), nil
	case "strip", "lstrip", "rstrip":
		return stripMethod(name, s, arg0, has0), nil
	case "upper":
		return strings.ToUpper(s), nil
	case "lower":
		return strings.ToLower(s), nil
	case "title":
		return title(s), nil
	case "capitalize":
		return capitalize(s), nil
	case "split":
		return split(a, s)
	case "replace":
		return replace(a, s)
	case "join":
		v, _ := a.arg(0, "iterable")
		items, err := iterate(a.pos, v)
		if err != nil {
			return nil, err
		}
		parts := make([]string, len(items))
		for i, it := range items {
			if parts[i], err = toString(it); err != nil {
				return nil, errAt(a.pos, "join: %v", err)
			}
		}
		return strings.Join(parts, s), nil
	}
	return nil, errAt(a.pos, "string has no method %q", name)
}

func split(a args, s string) (any, error) {
	sep, hasSep, err := strArg(a, 0, "sep")
	if err != nil {
		return nil, err
	}
	limit := -1
	if v, ok := a.arg(1, "maxsplit"); ok {
		if n, ok := v.(int64); ok && n >= 0 {
			limit = int(n) + 1
		}
	}
	var parts []string
	switch {
	case !hasSep:
		// maxsplit is ignored without a separator.
		parts = strings.Fields(s)
	case sep == "":
		return nil, errAt(a.pos, "split: empty separator")
	default:
		parts = strings.SplitN(s, sep, limit)
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

func replace(a args, s string) (any, error) {
	old, _, err := strArg(a, 0, "old")
	if err != nil {
		return nil, err
	}
	repl, _, err := strArg(a, 1, "new")
	if err != nil {
		return nil, err
	}
	n := -1
	if v, ok := a.arg(2, "count"); ok {
		if c, ok := v.(int64); ok {
			n = int(c)
		}
	}
	return strings.Replace(s, old, repl, n), nil
}

// stripMethod is Python's str.strip family: whitespace by default, else
// any of the given characters.
func stripMethod(name, s, chars string, hasChars bool) string {
	if !hasChars {
		// Python strips all Unicode whitespace by default.
		switch name {
		case "lstrip":
			return strings.TrimLeftFunc(s, unicode.IsSpace)
		case "rstrip":
			return strings.TrimRightFunc(s, unicode.IsSpace)
		}
		return strings.TrimFunc(s, unicode.IsSpace)
	}
	switch name {
	case "lstrip":
		return strings.TrimLeft(s, chars)
	case "rstrip":
		return strings.TrimRight(s, chars)
	}
	return strings.Trim(s, chars)
}
