package chat

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Values are Go values: nil (none), undefined, bool, int64, float64, string,
// []any (list), *dict (dict, namespace, loop) and *macro.

// undefined is a missing variable or attribute. It renders as "" and is
// falsy, like Hugging Face's Jinja environment.
type undefined struct{}

// dict is an insertion-ordered string-keyed map; order matters for items,
// tojson and iteration, which must match Python's dict order.
type dict struct {
	keys      []string
	vals      map[string]any
	namespace bool // namespace() objects accept "set ns.attr"
}

func newDict() *dict { return &dict{vals: map[string]any{}} }

func (d *dict) set(k string, v any) {
	if _, ok := d.vals[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.vals[k] = v
}

func (d *dict) get(k string) (any, bool) {
	v, ok := d.vals[k]
	return v, ok
}

// fromGo converts caller-supplied values into template values. Map keys are
// sorted because Go maps have no order.
func fromGo(v any) any {
	switch x := v.(type) {
	case nil, bool, int64, float64, string, *dict:
		return x
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case float32:
		return float64(x)
	case Message:
		d := newDict()
		d.set("role", x.Role)
		d.set("content", x.Content)
		return d
	case []Message:
		out := make([]any, len(x))
		for i, m := range x {
			out[i] = fromGo(m)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromGo(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromGo(e)
		}
		return out
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := newDict()
		for _, k := range keys {
			d.set(k, fromGo(x[k]))
		}
		return d
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return fromGo(m)
	}
	return fmt.Sprint(v)
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil, undefined:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case *dict:
		return len(x.keys) > 0
	}
	return true
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "none"
	case undefined:
		return "undefined"
	case bool:
		return "boolean"
	case int64:
		return "integer"
	case float64:
		return "float"
	case string:
		return "string"
	case []any:
		return "list"
	case *dict:
		return "dict"
	case *macro:
		return "macro"
	case *loopVar:
		return "loop"
	}
	return fmt.Sprintf("%T", v)
}

// toString renders a value for output, matching @huggingface/jinja. Only
// a list or dict can fail: nested past maxValueDepth (a namespace holding
// itself has no end) or longer than maxOutput.
func toString(v any) (string, error) {
	switch x := v.(type) {
	case nil, undefined:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return formatFloat(x), nil
	case []any, *dict:
		var b strings.Builder
		if err := writeJSON(&b, v, -1, 0); err != nil {
			return "", err
		}
		return b.String(), nil
	case *macro:
		return "<macro " + x.node.name + ">", nil
	}
	return fmt.Sprint(v), nil
}

// Errors of values too deep or too large to print or compare.
var (
	errValueDepth = opError(fmt.Sprintf("value nested deeper than %d levels (does it contain itself?)", maxValueDepth))
	errValueSize  = opError(fmt.Sprintf("value exceeds %d bytes", maxOutput))
)

// formatFloat prints like Python's repr: integral floats keep ".0".
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// writeJSON writes v as Python's json.dumps(ensure_ascii=False) would:
// ", " and ": " separators, or newlines and indent when indent >= 0.
// It stops with an error past maxValueDepth levels or maxOutput bytes.
func writeJSON(b *strings.Builder, v any, indent, depth int) error {
	if depth > maxValueDepth {
		return errValueDepth
	}
	if b.Len() > maxOutput {
		return errValueSize
	}
	nl := func(d int) {
		if indent >= 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(" ", min(indent*d, maxOutput-b.Len()+1)))
		}
	}
	sep := ", "
	if indent >= 0 {
		sep = ","
	}
	switch x := v.(type) {
	case nil, undefined:
		b.WriteString("null")
	case string:
		writeJSONString(b, x)
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(sep)
			}
			nl(depth + 1)
			if err := writeJSON(b, e, indent, depth+1); err != nil {
				return err
			}
		}
		nl(depth)
		b.WriteByte(']')
	case *dict:
		if len(x.keys) == 0 {
			b.WriteString("{}")
			return nil
		}
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteString(sep)
			}
			nl(depth + 1)
			writeJSONString(b, k)
			b.WriteString(": ")
			if err := writeJSON(b, x.vals[k], indent, depth+1); err != nil {
				return err
			}
		}
		nl(depth)
		b.WriteByte('}')
	default:
		s, err := toString(v) // a scalar: cannot fail
		if err != nil {
			return err
		}
		b.WriteString(s)
	}
	return nil
}

func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// equal compares values as Jinja's ==. Lists and dicts compare element by
// element, to at most maxValueDepth levels.
func equal(a, b any) (bool, error) { return equalAt(a, b, 0) }

func equalAt(a, b any, depth int) (bool, error) {
	if depth > maxValueDepth {
		return false, errValueDepth
	}
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			return x == y, nil
		case float64:
			return float64(x) == y, nil
		}
	case float64:
		switch y := b.(type) {
		case int64:
			return x == float64(y), nil
		case float64:
			return x == y, nil
		}
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false, nil
		}
		for i := range x {
			if eq, err := equalAt(x[i], y[i], depth+1); !eq || err != nil {
				return false, err
			}
		}
		return true, nil
	case *dict:
		y, ok := b.(*dict)
		if !ok || len(x.keys) != len(y.keys) {
			return false, nil
		}
		for _, k := range x.keys {
			yv, ok := y.vals[k]
			if !ok {
				return false, nil
			}
			if eq, err := equalAt(x.vals[k], yv, depth+1); !eq || err != nil {
				return false, err
			}
		}
		return true, nil
	case *macro:
		return a == b, nil
	}
	switch b.(type) {
	case []any, *dict, *macro:
		return false, nil
	}
	return a == b, nil
}
