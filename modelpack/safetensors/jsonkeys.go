package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/moderuntime/mode/internal/jsondepth"
)

// duplicateKeyError reports an object key that occurs twice. encoding/json
// silently keeps the last value, which would let a header describe one
// tensor twice and have the second description win unnoticed.
type duplicateKeyError struct {
	path []string // keys of the enclosing objects, outermost first
	key  string
}

func (e *duplicateKeyError) Error() string {
	if len(e.path) == 0 {
		return fmt.Sprintf("duplicate key %q", e.key)
	}
	return fmt.Sprintf("duplicate key %q in %s", e.key, strings.Join(e.path, "."))
}

// checkJSON walks one JSON value token by token, reporting a syntax error,
// a duplicated object key at any depth, or anything after the value other
// than white space.
func checkJSON(data []byte) error {
	// The walk keeps a frame per level: bound the levels before walking
	// (10 MB of "[" cost 835 MB).
	if err := jsondepth.Check(data, jsondepth.Max); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // the walk only needs tokens; avoid float parsing work
	type frame struct {
		object  bool
		wantKey bool
		key     string
		keys    map[string]bool
	}
	var stack []*frame
	// valueDone records that a complete value was read inside the top frame.
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	started := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) > 0 || !started {
				return errors.New("unexpected end of JSON")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if len(stack) == 0 && started {
			return errors.New("data after the top-level JSON value")
		}
		started = true
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			top := stack[n-1]
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			key, ok := tok.(string)
			if !ok { // the decoder rejects this itself; keep the walk safe regardless
				return fmt.Errorf("object key is %v, not a string", tok)
			}
			if top.keys[key] {
				path := make([]string, 0, n-1)
				for _, f := range stack[:n-1] {
					if f.object {
						path = append(path, f.key)
					}
				}
				return &duplicateKeyError{path: path, key: key}
			}
			top.keys[key] = true
			top.key = key
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, wantKey: true, keys: map[string]bool{}})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}
