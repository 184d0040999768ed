package chat

import (
	"bytes"
	"errors"
	"time"
)

// Message is one chat turn.
type Message struct{ Role, Content string }

// Template is a parsed chat template. It is immutable and safe for
// concurrent use.
type Template struct {
	body []node
}

// Limits that stop pathological templates. They are generous for any real
// prompt but bound time and memory.
const (
	maxOutput     = 32 << 20 // bytes of rendered output, and of any one value
	maxIterations = 1 << 20  // loop iterations over one render
	maxCallDepth  = 64       // nested macro calls
	maxValueDepth = 128      // nesting of a value printed, serialised or compared
	maxNesting    = 100      // nesting of expressions and blocks in the source
)

// Parse parses a Jinja chat template.
func Parse(src string) (*Template, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	body, stop, err := p.parseBody()
	if err != nil {
		return nil, err
	}
	if stop != "" || p.peek().kind != tEOF {
		return nil, errAt(p.peek().pos, "unexpected %s", describe(p.peek()))
	}
	return &Template{body: body}, nil
}

// Render applies the template to messages. vars supplies the other
// variables templates read: add_generation_prompt (bool), bos_token and
// eos_token (strings), and any others such as tools or enable_thinking.
// strftime_now is refused, so that the output depends on the arguments
// alone; RenderAt answers it.
func (t *Template) Render(messages []Message, vars map[string]any) (string, error) {
	return t.RenderAt(messages, vars, time.Time{})
}

// RenderAt is Render with strftime_now(format) formatting now, as
// transformers' apply_chat_template formats the current time (gpt-oss's
// and Llama 3.1's templates print the date). A zero now refuses it.
func (t *Template) RenderAt(messages []Message, vars map[string]any, now time.Time) (string, error) {
	r := &renderer{now: now}
	root := newScope(nil)
	for k, v := range vars {
		root.vars[k] = fromGo(v)
	}
	root.vars["messages"] = fromGo(messages)
	if err := r.exec(t.body, root); err != nil {
		var lc *loopSignal
		if errors.As(err, &lc) {
			return "", errAt(lc.pos, "break or continue outside a loop")
		}
		return "", err
	}
	return r.out.String(), nil
}

type renderer struct {
	now        time.Time // strftime_now's time; zero: refused
	out        bytes.Buffer
	iterations int
	depth      int
}

// scope is one level of variable bindings; lookups walk to the parent.
type scope struct {
	vars   map[string]any
	parent *scope
}

func newScope(parent *scope) *scope { return &scope{vars: map[string]any{}, parent: parent} }

func (s *scope) lookup(name string) (any, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}
