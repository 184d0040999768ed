package tokenizer

// Stream decodes ids one at a time, for printing generated text as it is
// produced. Byte-fallback and byte-level tokens can split one multi-byte
// character across several ids; Push holds such partial sequences back until
// they complete, so every string it returns is valid UTF-8.
//
// A Stream is not safe for concurrent use.
type Stream struct {
	// piece returns the raw bytes id contributes to the output, given the id
	// decoded before it (-1 at the start of a stream). The previous id matters
	// for rules such as llama2.c's "strip the space after BOS" and Hugging Face
	// decoders that treat the first token specially.
	piece   func(prev, id int) string
	prev    int
	pending []byte
}

func newStream(piece func(prev, id int) string, prev int) *Stream {
	return &Stream{piece: piece, prev: prev}
}

// Push decodes id and returns the text that is complete so far.
func (s *Stream) Push(id int) string {
	s.pending = append(s.pending, s.piece(s.prev, id)...)
	s.prev = id
	n := completeLen(s.pending)
	if n == 0 {
		return ""
	}
	out := lossyString(s.pending[:n])
	s.pending = s.pending[:copy(s.pending, s.pending[n:])]
	return out
}

// Flush returns whatever Push held back, with invalid bytes as U+FFFD, and
// empties the stream's buffer. The stream can be pushed to again afterwards.
func (s *Stream) Flush() string {
	out := lossyString(s.pending)
	s.pending = s.pending[:0]
	return out
}
