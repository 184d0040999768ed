package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/moderuntime/mode/internal/jsondepth"
)

// maxConfigDepth bounds the nesting of Sequence components in tokenizer.json.
const maxConfigDepth = 16

// HF is a tokenizer loaded from a Hugging Face tokenizer.json with a BPE
// model. Encode and Decode match the Rust tokenizers library's
// encode(text, add_special_tokens=false) and decode(ids, skip_special_tokens=false).
//
// An HF is immutable after loading and safe for concurrent use.
type HF struct {
	model        *bpeModel
	normalizer   normalizer   // nil: none
	preTokenizer preTokenizer // nil: none
	decoder      decoder      // nil: tokens are joined with spaces

	addedIDs  map[string]int     // added token text → id
	addedByID map[int]addedToken // id → the flags that govern its matching
	rawTrie   *tokenTrie         // added tokens matched in the input as written
	normTrie  *tokenTrie         // added tokens matched after normalization
	tokens    []string           // id → token text, added tokens included
	bos       int
	eos       []int
	addsBOS   bool
	chatTmpl  string
}

var _ Tokenizer = (*HF)(nil)

// hfFile is the subset of tokenizer.json that HF reads.
type hfFile struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         struct {
		Type                    string          `json:"type"`
		Dropout                 *float64        `json:"dropout"`
		UnkToken                *string         `json:"unk_token"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
		FuseUnk                 bool            `json:"fuse_unk"`
		ByteFallback            bool            `json:"byte_fallback"`
		IgnoreMerges            bool            `json:"ignore_merges"`
		Vocab                   map[string]int  `json:"vocab"`
		Merges                  json.RawMessage `json:"merges"`
	} `json:"model"`
}

// LoadHF loads a tokenizer from the contents of tokenizer.json and, if not
// nil, tokenizer_config.json (which supplies BOS, EOS, add_bos_token and the
// chat template).
//
// Supported components: the BPE model (vocab, merges as "a b" strings or
// pairs, unk_token, fuse_unk, byte_fallback, ignore_merges,
// continuing_subword_prefix, end_of_word_suffix); the normalizers Sequence,
// Prepend, Replace, NFC and Strip; the pre-tokenizers Sequence, Split,
// ByteLevel, Metaspace and Digits; the decoders Sequence, ByteLevel,
// ByteFallback, Fuse, Strip, Replace, Metaspace and BPEDecoder. The
// post_processor only informs AddsBOS. Anything else, including a regular
// expression the engine cannot run exactly, is reported as an error.
func LoadHF(tokenizerJSON, tokenizerConfigJSON []byte) (*HF, error) {
	if err := jsondepth.Check(tokenizerJSON, jsondepth.Max); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json: %w", err)
	}
	if err := jsondepth.Check(tokenizerConfigJSON, jsondepth.Max); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer_config.json: %w", err)
	}
	var f hfFile
	if err := json.Unmarshal(tokenizerJSON, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: parsing tokenizer.json: %w", err)
	}
	model, err := buildBPE(&f)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json model: %w", err)
	}
	h := &HF{model: model, bos: -1}
	if h.normalizer, err = parseNormalizer(f.Normalizer, 0); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json normalizer: %w", err)
	}
	if h.preTokenizer, err = parsePreTokenizer(f.PreTokenizer, 0); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json pre_tokenizer: %w", err)
	}
	if h.decoder, err = parseDecoder(f.Decoder, 0); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json decoder: %w", err)
	}
	if h.addsBOS, err = templateAddsPrefix(f.PostProcessor, 0); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json post_processor: %w", err)
	}
	if err := h.setTokens(f.Model.Vocab, f.AddedTokens); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json: %w", err)
	}
	if tokenizerConfigJSON != nil {
		if err := h.applyConfig(tokenizerConfigJSON); err != nil {
			return nil, fmt.Errorf("tokenizer: tokenizer_config.json: %w", err)
		}
	}
	return h, nil
}

// VocabSize returns the number of ids, added tokens included.
func (h *HF) VocabSize() int { return len(h.tokens) }

// BOS returns the id of tokenizer_config.json's bos_token, or -1.
func (h *HF) BOS() int { return h.bos }

// EOS returns the id of tokenizer_config.json's eos_token, if any.
func (h *HF) EOS() []int { return append([]int(nil), h.eos...) }

// AddsBOS reports whether Hugging Face would put a BOS-like token in front
// of a single sequence by default: tokenizer_config.json's add_bos_token if
// set, else whether the post_processor template starts with a special token.
func (h *HF) AddsBOS() bool { return h.addsBOS }

// ChatTemplate returns tokenizer_config.json's chat_template when it is a
// single string, else "".
func (h *HF) ChatTemplate() string { return h.chatTmpl }

// Token returns the text of id (vocabulary or added token), or "".
func (h *HF) Token(id int) string {
	if id < 0 || id >= len(h.tokens) {
		return ""
	}
	return h.tokens[id]
}

// TokenID returns the id of a token's text, added tokens first.
func (h *HF) TokenID(tok string) (int, bool) {
	if id, ok := h.addedIDs[tok]; ok {
		return id, true
	}
	id, ok := h.model.vocab[tok]
	return id, ok
}

// Encode tokenizes text: added tokens are split off first, the rest is
// normalized, pre-tokenized and run through BPE. Invalid UTF-8 in text is
// first replaced with U+FFFD, since the reference only accepts valid strings.
func (h *HF) Encode(text string) []int {
	text = sanitizeUTF8(text)
	var ids []int
	var pieces []piece
	for _, seg := range splitAdded(nil, text, true, h.rawTrie, h.addedByID) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		norm := seg.text
		if h.normalizer != nil {
			norm = h.normalizer.normalize(norm)
		}
		for _, sub := range splitAdded(nil, norm, seg.first, h.normTrie, h.addedByID) {
			if sub.id >= 0 {
				ids = append(ids, sub.id)
				continue
			}
			pieces = append(pieces[:0], piece{text: sub.text, first: sub.first})
			if h.preTokenizer != nil {
				pieces = h.preTokenizer.preTokenize(pieces)
			}
			for _, p := range pieces {
				ids = h.model.encodeWord(ids, p.text)
			}
		}
	}
	return ids
}

// Decode turns ids into text through the tokenizer's decoder. Ids that name
// no token are skipped, as in the reference.
func (h *HF) Decode(ids []int) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if tok := h.Token(id); tok != "" {
			toks = append(toks, tok)
		}
	}
	if h.decoder == nil {
		return strings.Join(toks, " ")
	}
	st := &decodeState{first: true}
	return strings.Join(h.decoder.decodeChain(toks, st), "")
}

// piece returns the bytes id adds to a stream's output.
func (h *HF) piece(prev, id int) string {
	tok := h.Token(id)
	if tok == "" {
		return ""
	}
	first := prev < 0
	if h.decoder == nil {
		if first {
			return tok
		}
		return " " + tok
	}
	st := &decodeState{raw: true, first: first}
	return strings.Join(h.decoder.decodeChain([]string{tok}, st), "")
}

// NewStream returns a streaming decoder. Its first id is treated as the
// first token of the output (decoders such as Llama-2's strip a leading
// space there); concatenating what it returns gives Decode of the same ids
// whenever that is valid UTF-8.
func (h *HF) NewStream() *Stream { return newStream(h.piece, -1) }

// NewStreamAfter returns a streaming decoder that continues after prev, so
// its first id is not treated as the start of the output.
func (h *HF) NewStreamAfter(prev int) *Stream { return newStream(h.piece, prev) }

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}
