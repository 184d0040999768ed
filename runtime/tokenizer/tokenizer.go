package tokenizer

// Tokenizer turns text into token ids and back.
type Tokenizer interface {
	// Encode tokenizes text. It does not add BOS/EOS; special/added tokens
	// written literally in text (e.g. "<|im_start|>") are recognised as their
	// ids, like Hugging Face encode(text, add_special_tokens=False).
	Encode(text string) []int
	// Decode turns ids into text. Special tokens are included as their text.
	Decode(ids []int) string
	// VocabSize is the number of ids, including added tokens.
	VocabSize() int
	// BOS is the beginning-of-sequence id, or -1 when there is none.
	BOS() int
	// EOS lists the end-of-sequence ids; it may be empty.
	EOS() []int
	// Token is the raw vocabulary string of id, or "" if id is out of range.
	Token(id int) string
	// NewStream returns a streaming decoder for generated output.
	NewStream() *Stream
}
