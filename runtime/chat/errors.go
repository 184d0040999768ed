package chat

import "fmt"

// pos is a 1-based line and column in the template source.
type pos struct{ line, col int }

// Error is a parse or render error, located in the template source so a
// template author can find the offending tag.
type Error struct {
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	return fmt.Sprintf("chat template: line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

func errAt(p pos, format string, args ...any) *Error {
	return &Error{Line: p.line, Column: p.col, Msg: fmt.Sprintf(format, args...)}
}
