package chat

import (
	"strconv"
	"strings"
	"unicode"
)

func (r *renderer) evalFilter(e *filterExpr, sc *scope) (any, error) {
	v, err := r.eval(e.obj, sc)
	if err != nil {
		return nil, err
	}
	a, err := r.evalArgs(e.pos, e.args, e.kwargs, sc)
	if err != nil {
		return nil, err
	}
	return applyFilter(a, e.name, v)
}

func applyFilter(a args, name string, v any) (any, error) {
	switch name {
	case "safe", "e", "escape":
		// Chat templates render plain text; autoescape is off.
		return v, nil
	case "default", "d":
		def, _ := a.arg(0, "default_value")
		boolean, _ := a.arg(1, "boolean")
		if _, undef := v.(undefined); undef || (truthy(boolean) && !truthy(v)) {
			return def, nil
		}
		return v, nil
	case "string":
		s, err := toString(v)
		if err != nil {
			return nil, errAt(a.pos, "string: %v", err)
		}
		return s, nil
	case "tojson":
		indent := -1
		if n, ok := a.arg(0, "indent"); ok {
			if i, ok := n.(int64); ok {
				indent = int(i)
			}
		}
		var b strings.Builder
		if err := writeJSON(&b, v, indent, 0); err != nil {
			return nil, errAt(a.pos, "tojson: %v", err)
		}
		return b.String(), nil
	case "int":
		switch x := v.(type) {
		case int64:
			return x, nil
		case float64:
			return int64(x), nil
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		case string:
			if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
				return n, nil
			}
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return int64(f), nil
			}
		}
		def, ok := a.arg(0, "default")
		if !ok {
			def = int64(0)
		}
		return def, nil
	case "float":
		if f, ok := number(v); ok {
			return f, nil
		}
		if s, ok := v.(string); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
				return f, nil
			}
		}
		return 0.0, nil
	}
	if s, ok := v.(string); ok {
		switch name {
		case "trim":
			return stripMethod("strip", s, "", false), nil
		case "upper", "lower", "title", "capitalize", "replace", "split":
			return stringMethod(a, s, name)
		}
	}
	if name == "items" {
		if d, ok := v.(*dict); ok {
			return dictItems(d), nil
		}
		if _, ok := v.(undefined); ok {
			return []any{}, nil
		}
		return nil, errAt(a.pos, "items filter needs a dict, not %s", typeName(v))
	}
	items, err := iterate(a.pos, v)
	if _, undef := v.(undefined); undef || v == nil {
		err = errAt(a.pos, "filter %q cannot be applied to %s", name, typeName(v))
	}
	if err != nil {
		if isSequenceFilter(name) {
			return nil, err
		}
		return nil, errAt(a.pos, "unknown filter %q for %s", name, typeName(v))
	}
	return sequenceFilter(a, name, v, items)
}

func isSequenceFilter(name string) bool {
	switch name {
	case "length", "count", "first", "last", "list", "join", "reverse", "unique",
		"selectattr", "rejectattr", "map", "sort":
		return true
	}
	return false
}

func sequenceFilter(a args, name string, v any, items []any) (any, error) {
	switch name {
	case "length", "count":
		return int64(len(items)), nil
	case "first", "last":
		if len(items) == 0 {
			return undefined{}, nil
		}
		if name == "first" {
			return items[0], nil
		}
		return items[len(items)-1], nil
	case "list":
		return append([]any{}, items...), nil
	case "reverse":
		out := make([]any, len(items))
		for i, it := range items {
			out[len(items)-1-i] = it
		}
		if s, ok := v.(string); ok {
			rs := []rune(s)
			for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
				rs[i], rs[j] = rs[j], rs[i]
			}
			return string(rs), nil
		}
		return out, nil
	case "join":
		sep, _ := a.arg(0, "d")
		attr, hasAttr := a.arg(1, "attribute")
		parts := make([]string, len(items))
		for i, it := range items {
			if hasAttr {
				it = getAttr(it, plain(attr))
			}
			var err error
			if parts[i], err = toString(it); err != nil {
				return nil, errAt(a.pos, "join: %v", err)
			}
		}
		return strings.Join(parts, plain(sep)), nil
	case "map":
		attr, ok := a.kw.get("attribute")
		if !ok {
			return nil, errAt(a.pos, "map filter supports only attribute=")
		}
		out := make([]any, len(items))
		for i, it := range items {
			out[i] = getAttr(it, plain(attr))
			if _, undef := out[i].(undefined); undef {
				if d, ok := a.kw.get("default"); ok {
					out[i] = d
				}
			}
		}
		return out, nil
	case "selectattr", "rejectattr":
		attr, _ := a.arg(0, "attribute")
		test := "truthy"
		if t, ok := a.positional, len(a.positional) > 1; ok {
			test = plain(t[1])
		}
		var out []any
		for _, it := range items {
			val := getAttr(it, plain(attr))
			ok := truthy(val)
			if test != "truthy" {
				var err error
				if ok, err = runTest(a.pos, test, val, a.positional[2:]); err != nil {
					return nil, err
				}
			}
			if ok == (name == "selectattr") {
				out = append(out, it)
			}
		}
		return out, nil
	}
	return nil, errAt(a.pos, "unknown filter %q", name)
}

// title is Python's str.title: upper-case the first letter of each run of
// letters, lower-case the rest.
func title(s string) string {
	var b strings.Builder
	prevLetter := false
	for _, r := range s {
		if prevLetter {
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(unicode.ToUpper(r))
		}
		prevLetter = unicode.IsLetter(r)
	}
	return b.String()
}

func capitalize(s string) string {
	for i, r := range s {
		return string(unicode.ToUpper(r)) + strings.ToLower(s[i+len(string(r)):])
	}
	return s
}

// plain is the string form of a value used as an attribute or test name or
// a separator. A list or dict is never a name: it gives "" rather than
// being printed.
func plain(v any) string {
	switch v.(type) {
	case []any, *dict:
		return ""
	}
	s, _ := toString(v) // a scalar cannot fail
	return s
}
