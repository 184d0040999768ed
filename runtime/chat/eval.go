package chat

import (
	"strconv"
)

func (r *renderer) eval(e expr, sc *scope) (any, error) {
	switch e := e.(type) {
	case *literal:
		return e.val, nil
	case *nameExpr:
		if v, ok := sc.lookup(e.name); ok {
			return v, nil
		}
		if _, ok := globals[e.name]; ok {
			return builtin(e.name), nil
		}
		return undefined{}, nil
	case *listExpr:
		out := make([]any, len(e.items))
		for i, it := range e.items {
			v, err := r.eval(it, sc)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case *dictExpr:
		d := newDict()
		for i := range e.keys {
			k, err := r.eval(e.keys[i], sc)
			if err != nil {
				return nil, err
			}
			v, err := r.eval(e.vals[i], sc)
			if err != nil {
				return nil, err
			}
			ks, err := toString(k)
			if err != nil {
				return nil, errAt(e.pos, "dict key: %v", err)
			}
			d.set(ks, v)
		}
		return d, nil
	case *attrExpr:
		obj, err := r.eval(e.obj, sc)
		if err != nil {
			return nil, err
		}
		return getAttr(obj, e.name), nil
	case *indexExpr:
		obj, err := r.eval(e.obj, sc)
		if err != nil {
			return nil, err
		}
		idx, err := r.eval(e.idx, sc)
		if err != nil {
			return nil, err
		}
		return getItem(obj, idx), nil
	case *sliceExpr:
		return r.evalSlice(e, sc)
	case *callExpr:
		return r.evalCall(e, sc)
	case *filterExpr:
		return r.evalFilter(e, sc)
	case *testExpr:
		return r.evalTest(e, sc)
	case *unaryExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		switch e.op {
		case "not":
			return !truthy(x), nil
		case "-":
			switch n := x.(type) {
			case int64:
				return -n, nil
			case float64:
				return -n, nil
			}
		case "+":
			switch x.(type) {
			case int64, float64:
				return x, nil
			}
		}
		return nil, errAt(e.pos, "bad operand %s for unary %s", typeName(x), e.op)
	case *binaryExpr:
		return r.evalBinary(e, sc)
	case *condExpr:
		c, err := r.eval(e.cond, sc)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return r.eval(e.yes, sc)
		}
		if e.no == nil {
			return undefined{}, nil
		}
		return r.eval(e.no, sc)
	}
	return nil, errAt(pos{}, "unknown expression %T", e)
}

// getAttr implements a.b: dict keys first, then list/str indices for
// numeric names. Missing attributes are undefined, not errors.
func getAttr(obj any, name string) any {
	if l, ok := obj.(*loopVar); ok {
		return l.attr(name)
	}
	if d, ok := obj.(*dict); ok {
		if v, ok := d.get(name); ok {
			return v
		}
		return undefined{}
	}
	if n, err := strconv.Atoi(name); err == nil {
		return getItem(obj, int64(n))
	}
	return undefined{}
}

func getItem(obj, idx any) any {
	switch x := obj.(type) {
	case *dict:
		if k, ok := idx.(string); ok {
			if v, ok := x.get(k); ok {
				return v
			}
		}
	case []any:
		if i, ok := idx.(int64); ok {
			if i < 0 {
				i += int64(len(x))
			}
			if i >= 0 && i < int64(len(x)) {
				return x[i]
			}
		}
	case string:
		if i, ok := idx.(int64); ok {
			rs := []rune(x)
			if i < 0 {
				i += int64(len(rs))
			}
			if i >= 0 && i < int64(len(rs)) {
				return string(rs[i])
			}
		}
	}
	return undefined{}
}

func (r *renderer) evalSlice(e *sliceExpr, sc *scope) (any, error) {
	obj, err := r.eval(e.obj, sc)
	if err != nil {
		return nil, err
	}
	var bounds [3]*int64
	for i, b := range []expr{e.start, e.stop, e.step} {
		if b == nil {
			continue
		}
		v, err := r.eval(b, sc)
		if err != nil {
			return nil, err
		}
		switch n := v.(type) {
		case int64:
			bounds[i] = &n
		case nil, undefined:
		default:
			return nil, errAt(e.pos, "slice index must be an integer, not %s", typeName(v))
		}
	}
	var items []any
	_, isStr := obj.(string)
	switch x := obj.(type) {
	case []any:
		items = x
	case string:
		items, _ = iterate(e.pos, x)
	default:
		return nil, errAt(e.pos, "cannot slice %s", typeName(obj))
	}
	idx, err := sliceIndices(e.pos, len(items), bounds)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(idx))
	for _, i := range idx {
		out = append(out, items[i])
	}
	if isStr {
		s := ""
		for _, c := range out {
			s += c.(string)
		}
		return s, nil
	}
	return out, nil
}

// sliceIndices follows Python's slice semantics.
func sliceIndices(p pos, n int, b [3]*int64) ([]int, error) {
	step := int64(1)
	if b[2] != nil {
		step = *b[2]
	}
	if step == 0 {
		return nil, errAt(p, "slice step cannot be zero")
	}
	clamp := func(v *int64, def int64) int64 {
		if v == nil {
			return def
		}
		i := *v
		if i < 0 {
			i += int64(n)
		}
		lo, hi := int64(0), int64(n)
		if step < 0 {
			lo, hi = -1, int64(n)-1
		}
		return max(lo, min(hi, i))
	}
	var out []int
	if step > 0 {
		for i := clamp(b[0], 0); i < clamp(b[1], int64(n)); i += step {
			out = append(out, int(i))
		}
	} else {
		for i := clamp(b[0], int64(n)-1); i > clamp(b[1], -1); i += step {
			out = append(out, int(i))
		}
	}
	return out, nil
}
