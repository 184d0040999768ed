package chat

// Statement nodes.
type (
	node interface{}

	textNode   struct{ text string }
	outputNode struct {
		pos  pos
		expr expr
	}
	ifNode struct {
		conds  []expr
		bodies [][]node
		els    []node
	}
	forNode struct {
		pos     pos
		targets []string
		iter    expr
		filter  expr // optional "if" clause
		body    []node
		els     []node
	}
	setNode struct {
		pos     pos
		targets []string // one name, or several for tuple unpacking
		attr    string   // set ns.attr = ...
		value   expr     // nil for a block set
		body    []node
	}
	macroNode struct {
		pos      pos
		name     string
		params   []string
		defaults []expr // parallel to params; nil when required
		body     []node
	}
	loopControl struct{ brk bool }
)

// Expression nodes.
type (
	expr interface{}

	literal  struct{ val any }
	nameExpr struct {
		pos  pos
		name string
	}
	listExpr struct{ items []expr }
	dictExpr struct {
		pos        pos
		keys, vals []expr
	}
	attrExpr struct {
		pos  pos
		obj  expr
		name string
	}
	indexExpr struct {
		pos      pos
		obj, idx expr
	}
	sliceExpr struct {
		pos               pos
		obj               expr
		start, stop, step expr // each may be nil
	}
	callExpr struct {
		pos    pos
		fn     expr
		args   []expr
		kwargs []kwarg
	}
	filterExpr struct {
		pos    pos
		obj    expr
		name   string
		args   []expr
		kwargs []kwarg
	}
	testExpr struct {
		pos    pos
		obj    expr
		name   string
		args   []expr
		negate bool
	}
	unaryExpr struct {
		pos pos
		op  string
		x   expr
	}
	binaryExpr struct {
		pos  pos
		op   string
		l, r expr
	}
	condExpr struct {
		cond, yes, no expr // no may be nil
	}
	kwarg struct {
		name string
		val  expr
	}
)
