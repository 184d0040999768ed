package gguf

import (
	"fmt"
	"strings"
)

// Vocab is the tokenizer a GGUF file embeds under tokenizer.*, parsed but
// not interpreted.
type Vocab struct {
	// Model is tokenizer.ggml.model: "llama" for SentencePiece, "gpt2" for
	// byte-level BPE, or another llama.cpp tokenizer name.
	Model string
	// Pre names the pre-tokenizer (tokenizer.ggml.pre), "" when absent.
	Pre    string
	Tokens []string
	// Scores and TokenTypes have one entry per token, or are nil when the
	// file has none. Token types are llama.cpp's: 1 normal, 2 unknown,
	// 3 control, 4 user-defined, 5 unused, 6 byte.
	Scores     []float32
	TokenTypes []int32
	// Merges are BPE merges, each "left right" split at the first space
	// after the first byte (as llama.cpp splits them), nil when absent.
	Merges []string
	// Special token ids, -1 when absent.
	BOS, EOS, EOT, EOM, UNK, PAD int
	// AddBOS and AddEOS are nil when the file leaves them to the model's
	// default.
	AddBOS, AddEOS *bool
	// ChatTemplate is tokenizer.chat_template, "" when absent.
	ChatTemplate string
}

// Tokenizer reads the tokenizer f embeds.
func Tokenizer(f *File) (*Vocab, error) {
	t, err := readTokenizer(meta{f: f})
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", f.name, err)
	}
	return t, nil
}

func readTokenizer(m meta) (*Vocab, error) {
	const p = "tokenizer.ggml."
	t := &Vocab{}
	var ok bool
	var err error
	if t.Model, ok, err = m.str(p + "model"); err != nil {
		return nil, err
	} else if !ok {
		return nil, keyError(p+"model", "is missing")
	}
	if t.Pre, _, err = m.str(p + "pre"); err != nil {
		return nil, err
	}
	if t.ChatTemplate, _, err = m.str("tokenizer.chat_template"); err != nil {
		return nil, err
	}
	v, ok := m.f.Get(p + "tokens")
	if !ok {
		return nil, keyError(p+"tokens", "is missing")
	}
	if t.Tokens, ok = v.Strings(); !ok || len(t.Tokens) == 0 {
		return nil, keyError(p+"tokens", "is %s, want a non-empty array of strings", v)
	}
	n := len(t.Tokens)
	if v, ok := m.f.Get(p + "scores"); ok {
		if t.Scores, ok = v.Float32s(); !ok || len(t.Scores) != n {
			return nil, keyError(p+"scores", "is %s, want %d float32", v, n)
		}
	}
	if v, ok := m.f.Get(p + "token_type"); ok {
		xs, isInts := v.Ints()
		if !isInts || len(xs) != n {
			return nil, keyError(p+"token_type", "is %s, want %d integers", v, n)
		}
		t.TokenTypes = make([]int32, n)
		for i, x := range xs {
			t.TokenTypes[i] = int32(x)
		}
	}
	if v, ok := m.f.Get(p + "merges"); ok {
		if t.Merges, ok = v.Strings(); !ok {
			return nil, keyError(p+"merges", "is %s, want an array of strings", v)
		}
		for i, mg := range t.Merges {
			if len(mg) < 2 || !strings.Contains(mg[1:], " ") {
				return nil, keyError(p+"merges", "entry %d %q is not two tokens separated by a space", i, mg)
			}
		}
	}
	for _, s := range []struct {
		name string
		dst  *int
	}{{"bos", &t.BOS}, {"eos", &t.EOS}, {"eot", &t.EOT}, {"eom", &t.EOM}, {"unknown", &t.UNK}, {"padding", &t.PAD}} {
		key := p + s.name + "_token_id"
		id, ok, err := m.int(key)
		switch {
		case err != nil:
			return nil, err
		case !ok:
			id = -1
		case id >= n:
			return nil, keyError(key, "%d outside the %d tokens", id, n)
		}
		*s.dst = id
	}
	for _, s := range []struct {
		key string
		dst **bool
	}{{p + "add_bos_token", &t.AddBOS}, {p + "add_eos_token", &t.AddEOS}} {
		b, ok, err := m.bool(s.key)
		if err != nil {
			return nil, err
		}
		if ok {
			*s.dst = &b
		}
	}
	return t, nil
}
