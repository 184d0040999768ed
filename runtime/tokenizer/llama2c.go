package tokenizer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Token ids fixed by the llama2.c tokenizer format.
const (
	llama2cBOS = 1
	llama2cEOS = 2
	// llama2cByteOffset is the id of the piece for byte 0x00: ids 0..2 are
	// <unk>, <s> and </s>, then come the 256 byte pieces "<0x00>".."<0xFF>".
	llama2cByteOffset = 3
	// llama2cMinVocab is the smallest vocabulary that holds every byte-fallback id.
	llama2cMinVocab = llama2cByteOffset + 256
	// llama2cMaxPiece bounds max_token_length so that a corrupt header cannot
	// make the loader allocate without limit.
	llama2cMaxPiece = 1 << 20
)

// Llama2C is a tokenizer in llama2.c's tokenizer.bin format. It encodes and
// decodes exactly as llama2.c's run.c does.
type Llama2C struct {
	pieces []string
	scores []float32
	// ids maps a piece to its id. When a piece occurs twice the lower id wins;
	// run.c's bsearch would pick either.
	ids map[string]int
}

var _ Tokenizer = (*Llama2C)(nil)

// LoadLlama2C reads a tokenizer.bin with vocabSize entries: an int32
// max_token_length, then per token a float32 score, an int32 length and that
// many bytes, all little-endian. It fails on truncated files, bad lengths and
// files holding more or fewer than vocabSize tokens.
func LoadLlama2C(r io.Reader, vocabSize int) (*Llama2C, error) {
	if vocabSize < llama2cMinVocab {
		return nil, fmt.Errorf("tokenizer: llama2c vocab size %d is below %d, too small for byte fallback", vocabSize, llama2cMinVocab)
	}
	if vocabSize > 1<<24 {
		return nil, fmt.Errorf("tokenizer: llama2c vocab size %d is implausibly large", vocabSize)
	}
	br := bufio.NewReader(r)
	var word [4]byte
	if _, err := io.ReadFull(br, word[:]); err != nil {
		return nil, fmt.Errorf("tokenizer: llama2c header: reading max_token_length: %w", noEOF(err))
	}
	maxLen := int32(binary.LittleEndian.Uint32(word[:]))
	if maxLen < 1 || maxLen > llama2cMaxPiece {
		return nil, fmt.Errorf("tokenizer: llama2c header: max_token_length %d out of range [1, %d]", maxLen, llama2cMaxPiece)
	}
	t := &Llama2C{
		pieces: make([]string, vocabSize),
		scores: make([]float32, vocabSize),
		ids:    make(map[string]int, vocabSize),
	}
	buf := make([]byte, maxLen)
	for i := 0; i < vocabSize; i++ {
		if _, err := io.ReadFull(br, word[:]); err != nil {
			return nil, fmt.Errorf("tokenizer: llama2c token %d of %d: reading score: %w", i, vocabSize, noEOF(err))
		}
		t.scores[i] = math.Float32frombits(binary.LittleEndian.Uint32(word[:]))
		if _, err := io.ReadFull(br, word[:]); err != nil {
			return nil, fmt.Errorf("tokenizer: llama2c token %d of %d: reading length: %w", i, vocabSize, noEOF(err))
		}
		n := int32(binary.LittleEndian.Uint32(word[:]))
		if n < 0 || n > maxLen {
			return nil, fmt.Errorf("tokenizer: llama2c token %d: length %d out of range [0, max_token_length=%d]", i, n, maxLen)
		}
		if _, err := io.ReadFull(br, buf[:n]); err != nil {
			return nil, fmt.Errorf("tokenizer: llama2c token %d: reading %d bytes: %w", i, n, noEOF(err))
		}
		p := string(buf[:n])
		t.pieces[i] = p
		if _, dup := t.ids[p]; !dup {
			t.ids[p] = i
		}
	}
	if _, err := br.ReadByte(); err == nil {
		return nil, fmt.Errorf("tokenizer: llama2c: data left after %d tokens; is the vocab size right?", vocabSize)
	} else if err != io.EOF {
		return nil, fmt.Errorf("tokenizer: llama2c: after %d tokens: %w", vocabSize, err)
	}
	return t, nil
}

// noEOF turns a bare EOF into ErrUnexpectedEOF: inside the file any end of
// data is a truncation.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// VocabSize returns the number of tokens.
func (t *Llama2C) VocabSize() int { return len(t.pieces) }

// BOS returns 1, llama2.c's fixed beginning-of-sequence id.
func (t *Llama2C) BOS() int { return llama2cBOS }

// EOS returns [2], llama2.c's fixed end-of-sequence id.
func (t *Llama2C) EOS() []int { return []int{llama2cEOS} }

// Token returns the raw piece of id, or "" if id is out of range.
func (t *Llama2C) Token(id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// Score returns the merge score of id, or 0 if id is out of range.
func (t *Llama2C) Score(id int) float32 {
	if id < 0 || id >= len(t.scores) {
		return 0
	}
	return t.scores[id]
}

// Encode tokenizes text as run.c's encode(text, bos=0, eos=0): a dummy-prefix
// " " token when text is non-empty, one token per UTF-8 character (or its
// bytes as byte-fallback ids), then greedy merging of the adjacent pair whose
// concatenation is the best-scoring piece, leftmost on ties.
//
// Two deviations where run.c's behaviour is undefined: a NUL byte is encoded
// like any other byte instead of ending the text, and the dummy prefix is
// omitted when the vocabulary has no " " piece.
func (t *Llama2C) Encode(text string) []int {
	if text == "" {
		return nil
	}
	ids := make([]int, 0, len(text)+1)
	if id, ok := t.ids[" "]; ok {
		ids = append(ids, id)
	}
	for i := 0; i < len(text); {
		// Group a byte with the continuation bytes after it, at most 4 bytes,
		// exactly as run.c does (it does not validate the sequence).
		j := i + 1
		for j < len(text) && j-i < 4 && text[j]&0xC0 == 0x80 {
			j++
		}
		if id, ok := t.ids[text[i:j]]; ok {
			ids = append(ids, id)
		} else {
			for k := i; k < j; k++ {
				ids = append(ids, int(text[k])+llama2cByteOffset)
			}
		}
		i = j
	}
	return mergeByScore(ids, t.pair)
}

// pair returns the id and score of the piece spelled by a then b, if any.
func (t *Llama2C) pair(a, b int) (int, float32, bool) {
	id, ok := t.ids[t.pieces[a]+t.pieces[b]]
	if !ok {
		return 0, 0, false
	}
	s := t.scores[id]
	// run.c starts its search at best_score = -1e10 with a strict '>', so
	// pieces scoring at or below that (or NaN) never merge.
	if !(s > -1e10) {
		return 0, 0, false
	}
	return id, s, true
}

// Decode concatenates the pieces of ids as run.c's decode(prev, token) does:
// a piece after BOS loses its leading space, and "<0xXX>" pieces become the
// raw byte. Invalid UTF-8 in the result is replaced by U+FFFD; ids out of
// range are skipped.
func (t *Llama2C) Decode(ids []int) string {
	var b []byte
	prev := -1
	for _, id := range ids {
		b = append(b, t.piece(prev, id)...)
		prev = id
	}
	return lossyString(b)
}

// piece is run.c's decode(prev, token) without the printing.
func (t *Llama2C) piece(prev, id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	p := t.pieces[id]
	if prev == llama2cBOS && strings.HasPrefix(p, " ") {
		p = p[1:]
	}
	if b, ok := parseByteToken(p); ok {
		return string([]byte{b})
	}
	return p
}

// NewStream returns a streaming decoder whose first id has no predecessor.
func (t *Llama2C) NewStream() *Stream { return newStream(t.piece, -1) }

// NewStreamAfter returns a streaming decoder that treats prev as the id
// decoded just before the first pushed one. A caller that fed BOS to the
// model passes BOS so that the first generated piece loses its leading space,
// as in run.c.
func (t *Llama2C) NewStreamAfter(prev int) *Stream { return newStream(t.piece, prev) }

// parseByteToken recognises a byte-fallback piece "<0xXX>" (hex digits in
// either case) and returns its byte.
func parseByteToken(p string) (byte, bool) {
	if len(p) != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexVal(p[3])
	lo, ok2 := hexVal(p[4])
	if !ok1 || !ok2 {
		return 0, false
	}
	return hi<<4 | lo, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
