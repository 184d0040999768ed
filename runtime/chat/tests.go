package chat

func (r *renderer) evalTest(e *testExpr, sc *scope) (any, error) {
	v, err := r.eval(e.obj, sc)
	if err != nil {
		return nil, err
	}
	var extra []any
	for _, x := range e.args {
		a, err := r.eval(x, sc)
		if err != nil {
			return nil, err
		}
		extra = append(extra, a)
	}
	ok, err := runTest(e.pos, e.name, v, extra)
	if err != nil {
		return nil, err
	}
	return ok != e.negate, nil
}

// runTest implements "x is NAME(args)".
func runTest(p pos, name string, v any, args []any) (bool, error) {
	arg := func() any {
		if len(args) > 0 {
			return args[0]
		}
		return undefined{}
	}
	switch name {
	case "defined":
		_, undef := v.(undefined)
		return !undef, nil
	case "undefined":
		_, undef := v.(undefined)
		return undef, nil
	case "none":
		return v == nil, nil
	case "boolean":
		_, ok := v.(bool)
		return ok, nil
	case "true":
		return v == true, nil
	case "false":
		return v == false, nil
	case "string":
		_, ok := v.(string)
		return ok, nil
	case "number":
		switch v.(type) {
		case int64, float64:
			return true, nil
		}
		return false, nil
	case "integer":
		_, ok := v.(int64)
		return ok, nil
	case "float":
		_, ok := v.(float64)
		return ok, nil
	case "mapping":
		_, ok := v.(*dict)
		return ok, nil
	case "sequence", "iterable":
		switch v.(type) {
		case []any, string, *dict:
			return true, nil
		}
		return false, nil
	case "callable":
		switch v.(type) {
		case *macro, builtin:
			return true, nil
		}
		return false, nil
	case "odd", "even":
		n, ok := v.(int64)
		return ok && (n%2 != 0) == (name == "odd"), nil
	case "eq", "equalto", "==", "sameas", "ne", "!=":
		eq, err := equal(v, arg())
		if err != nil {
			return false, errAt(p, "%v", err)
		}
		return eq == (name != "ne" && name != "!="), nil
	case "in":
		return contains(arg(), v)
	case "lower", "upper":
		s, ok := v.(string)
		if !ok {
			return false, nil
		}
		t, _ := stringMethod(args0(p), s, name)
		return t == s, nil
	}
	return false, errAt(p, "unknown test %q", name)
}

func args0(p pos) args { return args{pos: p, kw: newDict()} }
