package synth

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Special tokens, added after the learned vocabulary.
const (
	bosToken = "<|bos|>"
	eosToken = "<|eos|>"
)

// chatTemplate is a minimal Jinja chat template in the form
// tokenizer_config.json carries.
const chatTemplate = "{{ bos_token }}{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"

// tokenizerFiles is a trained tokenizer ready to serialise.
type tokenizerFiles struct {
	vocab    []string // by id, in the byte-level alphabet, specials last
	merges   []string // "left right"
	bos, eos int
}

// newTokenizer trains a byte-level BPE with vocabSize tokens in total,
// specials included, or fewer if the built-in text runs out of merges.
func newTokenizer(vocabSize int) tokenizerFiles {
	table := byteRunes()
	b := trainBPE(corpus, vocabSize-2)
	var t tokenizerFiles
	for _, raw := range b.tokens {
		t.vocab = append(t.vocab, visible(&table, raw))
	}
	for _, m := range b.merges {
		t.merges = append(t.merges, visible(&table, m[0])+" "+visible(&table, m[1]))
	}
	t.bos, t.eos = len(t.vocab), len(t.vocab)+1
	t.vocab = append(t.vocab, bosToken, eosToken)
	return t
}

// orderedVocab marshals as a JSON object of token -> id in id order, the
// order transformers writes, rather than encoding/json's sorted keys.
type orderedVocab []string

func (v orderedVocab) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for id, tok := range v {
		if id > 0 {
			buf.WriteByte(',')
		}
		k, err := marshal(tok)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.WriteString(strconv.Itoa(id))
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type byteLevel struct {
	Type           string `json:"type"`
	AddPrefixSpace bool   `json:"add_prefix_space"`
	TrimOffsets    bool   `json:"trim_offsets"`
	UseRegex       bool   `json:"use_regex"`
}

type bpeModel struct {
	Type                    string       `json:"type"`
	Dropout                 *float64     `json:"dropout"`
	UnkToken                *string      `json:"unk_token"`
	ContinuingSubwordPrefix string       `json:"continuing_subword_prefix"`
	EndOfWordSuffix         string       `json:"end_of_word_suffix"`
	FuseUnk                 bool         `json:"fuse_unk"`
	ByteFallback            bool         `json:"byte_fallback"`
	IgnoreMerges            bool         `json:"ignore_merges"`
	Vocab                   orderedVocab `json:"vocab"`
	Merges                  []string     `json:"merges"`
}

// tokenizerJSON is tokenizer.json in the schema of HF tokenizers.
type tokenizerJSON struct {
	Version       string       `json:"version"`
	Truncation    any          `json:"truncation"`
	Padding       any          `json:"padding"`
	AddedTokens   []addedToken `json:"added_tokens"`
	Normalizer    any          `json:"normalizer"`
	PreTokenizer  byteLevel    `json:"pre_tokenizer"`
	PostProcessor any          `json:"post_processor"`
	Decoder       byteLevel    `json:"decoder"`
	Model         bpeModel     `json:"model"`
}

func (t *tokenizerFiles) tokenizerJSON() tokenizerJSON {
	special := func(id int) addedToken {
		return addedToken{ID: id, Content: t.vocab[id], Special: true}
	}
	return tokenizerJSON{
		Version:     "1.0",
		AddedTokens: []addedToken{special(t.bos), special(t.eos)},
		// use_regex applies the GPT-2 split pattern before byte mapping.
		PreTokenizer: byteLevel{Type: "ByteLevel", AddPrefixSpace: false, TrimOffsets: true, UseRegex: true},
		Decoder:      byteLevel{Type: "ByteLevel", AddPrefixSpace: true, TrimOffsets: true, UseRegex: true},
		Model: bpeModel{
			Type:   "BPE",
			Vocab:  orderedVocab(t.vocab),
			Merges: t.merges,
		},
	}
}

type addedTokenDecoder struct {
	Content    string `json:"content"`
	LStrip     bool   `json:"lstrip"`
	Normalized bool   `json:"normalized"`
	RStrip     bool   `json:"rstrip"`
	SingleWord bool   `json:"single_word"`
	Special    bool   `json:"special"`
}

// tokenizerConfig is tokenizer_config.json as transformers writes it.
type tokenizerConfig struct {
	AddBOSToken            bool                         `json:"add_bos_token"`
	AddEOSToken            bool                         `json:"add_eos_token"`
	AddedTokensDecoder     map[string]addedTokenDecoder `json:"added_tokens_decoder"`
	BOSToken               string                       `json:"bos_token"`
	ChatTemplate           string                       `json:"chat_template"`
	CleanUpTokenizationSpc bool                         `json:"clean_up_tokenization_spaces"`
	EOSToken               string                       `json:"eos_token"`
	ModelMaxLength         int                          `json:"model_max_length"`
	TokenizerClass         string                       `json:"tokenizer_class"`
}

func (t *tokenizerFiles) config(maxSeq int) tokenizerConfig {
	dec := map[string]addedTokenDecoder{}
	for _, id := range []int{t.bos, t.eos} {
		dec[strconv.Itoa(id)] = addedTokenDecoder{Content: t.vocab[id], Special: true}
	}
	return tokenizerConfig{
		AddedTokensDecoder: dec,
		BOSToken:           bosToken,
		ChatTemplate:       chatTemplate,
		EOSToken:           eosToken,
		ModelMaxLength:     maxSeq,
		TokenizerClass:     "PreTrainedTokenizerFast",
	}
}

// marshal encodes v as indented JSON without HTML escaping, so "<|bos|>"
// reads as itself in the file.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
