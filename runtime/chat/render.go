package chat

import "fmt"

// loopSignal carries break/continue out of nested statements to the loop.
type loopSignal struct {
	brk bool
	pos pos
}

func (l *loopSignal) Error() string { return "loop control outside loop" }

type macro struct {
	node *macroNode
	env  *scope // scope the macro was defined in
}

func (r *renderer) write(p pos, s string) error {
	if r.out.Len()+len(s) > maxOutput {
		return errAt(p, "output exceeds %d bytes", maxOutput)
	}
	r.out.WriteString(s)
	return nil
}

func (r *renderer) exec(nodes []node, sc *scope) error {
	for _, n := range nodes {
		if err := r.execNode(n, sc); err != nil {
			return err
		}
	}
	return nil
}

func (r *renderer) execNode(n node, sc *scope) error {
	switch n := n.(type) {
	case *textNode:
		return r.write(pos{}, n.text)
	case *outputNode:
		v, err := r.eval(n.expr, sc)
		if err != nil {
			return err
		}
		s, err := toString(v)
		if err != nil {
			return errAt(n.pos, "%v", err)
		}
		return r.write(n.pos, s)
	case *ifNode:
		for i, c := range n.conds {
			v, err := r.eval(c, sc)
			if err != nil {
				return err
			}
			if truthy(v) {
				return r.exec(n.bodies[i], sc)
			}
		}
		return r.exec(n.els, sc)
	case *forNode:
		return r.execFor(n, sc)
	case *setNode:
		return r.execSet(n, sc)
	case *macroNode:
		sc.vars[n.name] = &macro{node: n, env: sc}
		return nil
	case *loopControl:
		return &loopSignal{brk: n.brk}
	}
	return fmt.Errorf("chat: unknown node %T", n)
}

// iterate returns the items a for loop or filter walks over.
func iterate(p pos, v any) ([]any, error) {
	switch x := v.(type) {
	case []any:
		return x, nil
	case *dict:
		out := make([]any, len(x.keys))
		for i, k := range x.keys {
			out[i] = k
		}
		return out, nil
	case string:
		out := make([]any, 0, len(x))
		for _, c := range x {
			out = append(out, string(c))
		}
		return out, nil
	case undefined, nil:
		// Iterating a missing variable yields nothing, like Jinja's Undefined.
		return nil, nil
	}
	return nil, errAt(p, "cannot iterate over %s", typeName(v))
}

func bind(p pos, sc *scope, targets []string, v any) error {
	if len(targets) == 1 {
		sc.vars[targets[0]] = v
		return nil
	}
	items, ok := v.([]any)
	if !ok || len(items) != len(targets) {
		return errAt(p, "cannot unpack %s into %d names", typeName(v), len(targets))
	}
	for i, t := range targets {
		sc.vars[t] = items[i]
	}
	return nil
}

func (r *renderer) execFor(n *forNode, sc *scope) error {
	v, err := r.eval(n.iter, sc)
	if err != nil {
		return err
	}
	items, err := iterate(n.pos, v)
	if err != nil {
		return err
	}
	inner := newScope(sc)
	if n.filter != nil {
		var kept []any
		for _, it := range items {
			if err := bind(n.pos, inner, n.targets, it); err != nil {
				return err
			}
			ok, err := r.eval(n.filter, inner)
			if err != nil {
				return err
			}
			if truthy(ok) {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	if len(items) == 0 {
		return r.exec(n.els, sc)
	}
	for i, it := range items {
		if r.iterations++; r.iterations > maxIterations {
			return errAt(n.pos, "more than %d loop iterations", maxIterations)
		}
		if err := bind(n.pos, inner, n.targets, it); err != nil {
			return err
		}
		inner.vars["loop"] = loopInfo(items, i)
		err := r.exec(n.body, inner)
		if ls, ok := err.(*loopSignal); ok {
			if ls.brk {
				break
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// loopVar is the "loop" variable; its attributes are computed on access
// so each iteration costs one small allocation.
type loopVar struct {
	items []any
	i     int
}

func loopInfo(items []any, i int) *loopVar { return &loopVar{items: items, i: i} }

func (l *loopVar) attr(name string) any {
	n, i := len(l.items), l.i
	switch name {
	case "index0":
		return int64(i)
	case "index":
		return int64(i + 1)
	case "revindex0":
		return int64(n - i - 1)
	case "revindex":
		return int64(n - i)
	case "first":
		return i == 0
	case "last":
		return i == n-1
	case "length":
		return int64(n)
	case "previtem":
		if i > 0 {
			return l.items[i-1]
		}
	case "nextitem":
		if i < n-1 {
			return l.items[i+1]
		}
	}
	return undefined{}
}

func (r *renderer) execSet(n *setNode, sc *scope) error {
	var v any
	if n.value == nil {
		start := r.out.Len()
		err := r.exec(n.body, sc)
		v = string(r.out.Bytes()[start:])
		r.out.Truncate(start)
		if err != nil {
			return err
		}
	} else {
		var err error
		if v, err = r.eval(n.value, sc); err != nil {
			return err
		}
	}
	if n.attr == "" {
		return bind(n.pos, sc, n.targets, v)
	}
	obj, _ := sc.lookup(n.targets[0])
	ns, ok := obj.(*dict)
	if !ok || !ns.namespace {
		return errAt(n.pos, "cannot set attribute %q on %s: only namespace() objects allow it", n.attr, typeName(obj))
	}
	ns.set(n.attr, v)
	return nil
}
