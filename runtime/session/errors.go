package session

// Error codes a caller can act on.
const (
	// CodeBadRequest: the request is malformed or cannot be served as
	// given (the message says what to change).
	CodeBadRequest = "bad_request"
	// CodeGenerateFailed: the engine failed while generating.
	CodeGenerateFailed = "generate_failed"
)

// Error is a request's failure with a code for the caller's protocol.
type Error struct {
	Code string
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func badRequest(err error) error { return &Error{CodeBadRequest, err} }
