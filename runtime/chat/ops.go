package chat

import (
	"math"
	"strings"
)

func (r *renderer) evalBinary(e *binaryExpr, sc *scope) (any, error) {
	l, err := r.eval(e.l, sc)
	if err != nil {
		return nil, err
	}
	// and/or short-circuit and return an operand, as in Python.
	switch e.op {
	case "and":
		if !truthy(l) {
			return l, nil
		}
		return r.eval(e.r, sc)
	case "or":
		if truthy(l) {
			return l, nil
		}
		return r.eval(e.r, sc)
	}
	rv, err := r.eval(e.r, sc)
	if err != nil {
		return nil, err
	}
	// Check sizes before concatenating so doubling in a loop fails fast
	// instead of allocating the oversized value first.
	if e.op == "+" || e.op == "~" {
		if sizeOf(l)+sizeOf(rv) > maxOutput {
			return nil, errAt(e.pos, "value exceeds %d bytes", maxOutput)
		}
	}
	v, err := binary(e.op, l, rv)
	if err != nil {
		return nil, errAt(e.pos, "%v", err)
	}
	return v, nil
}

// sizeOf approximates the bytes a string or list operand contributes.
func sizeOf(v any) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case []any:
		return 8 * len(x)
	}
	return 0
}

type opError string

func (e opError) Error() string { return string(e) }

func binary(op string, l, r any) (any, error) {
	switch op {
	case "==", "!=":
		eq, err := equal(l, r)
		return eq == (op == "=="), err
	case "in", "not in":
		in, err := contains(r, l)
		if err != nil {
			return nil, err
		}
		return in == (op == "in"), nil
	case "~":
		ls, err := toString(l)
		if err != nil {
			return nil, err
		}
		rs, err := toString(r)
		if err != nil {
			return nil, err
		}
		if len(ls)+len(rs) > maxOutput {
			return nil, errValueSize
		}
		return ls + rs, nil
	case "<", ">", "<=", ">=":
		c, ok := compare(l, r)
		if !ok {
			return nil, opError("cannot compare " + typeName(l) + " " + op + " " + typeName(r))
		}
		return map[string]bool{"<": c < 0, ">": c > 0, "<=": c <= 0, ">=": c >= 0}[op], nil
	}
	if op == "+" {
		if ls, ok := l.(string); ok {
			switch r.(type) {
			case string, int64, float64, bool:
				return ls + plain(r), nil
			}
		}
		if rs, ok := r.(string); ok {
			switch l.(type) {
			case int64, float64, bool:
				return plain(l) + rs, nil
			}
		}
		if ll, ok := l.([]any); ok {
			if rl, ok := r.([]any); ok {
				return append(append(make([]any, 0, len(ll)+len(rl)), ll...), rl...), nil
			}
		}
	}
	li, lInt := l.(int64)
	ri, rInt := r.(int64)
	lf, lNum := number(l)
	rf, rNum := number(r)
	if !lNum || !rNum {
		return nil, opError("unsupported operand types for " + op + ": " + typeName(l) + " and " + typeName(r))
	}
	ints := lInt && rInt
	switch op {
	case "+":
		if ints {
			return li + ri, nil
		}
		return lf + rf, nil
	case "-":
		if ints {
			return li - ri, nil
		}
		return lf - rf, nil
	case "*":
		if ints {
			return li * ri, nil
		}
		return lf * rf, nil
	case "/":
		if rf == 0 {
			return nil, opError("division by zero")
		}
		return lf / rf, nil
	case "//", "%":
		if rf == 0 {
			return nil, opError("division by zero")
		}
		if ints {
			q, m := li/ri, li%ri
			if m != 0 && (m < 0) != (ri < 0) { // Python floors
				q, m = q-1, m+ri
			}
			if op == "//" {
				return q, nil
			}
			return m, nil
		}
		q := math.Floor(lf / rf)
		if op == "//" {
			return q, nil
		}
		return lf - q*rf, nil
	case "**":
		if ints && ri >= 0 {
			return int64(math.Pow(float64(li), float64(ri))), nil
		}
		return math.Pow(lf, rf), nil
	}
	return nil, opError("unknown operator " + op)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case bool:
		if n {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func compare(l, r any) (int, bool) {
	if ls, ok := l.(string); ok {
		if rs, ok := r.(string); ok {
			return strings.Compare(ls, rs), true
		}
		return 0, false
	}
	lf, ok1 := number(l)
	rf, ok2 := number(r)
	if !ok1 || !ok2 {
		return 0, false
	}
	switch {
	case lf < rf:
		return -1, true
	case lf > rf:
		return 1, true
	}
	return 0, true
}

func contains(container, item any) (bool, error) {
	switch c := container.(type) {
	case string:
		s, ok := item.(string)
		if !ok {
			return false, opError("'in <string>' requires a string, not " + typeName(item))
		}
		return strings.Contains(c, s), nil
	case []any:
		for _, e := range c {
			if eq, err := equal(e, item); eq || err != nil {
				return eq, err
			}
		}
		return false, nil
	case *dict:
		s, ok := item.(string)
		if !ok {
			return false, nil
		}
		_, found := c.get(s)
		return found, nil
	case undefined, nil:
		return false, nil
	}
	return false, opError("argument of type " + typeName(container) + " is not iterable")
}
