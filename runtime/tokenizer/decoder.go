package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// decoder transforms the list of token strings on the way back to text, like
// a Hugging Face decoder's decode_chain.
type decoder interface {
	decodeChain(tokens []string, st *decodeState) []string
}

// decodeState carries what decoders need beyond the token list.
type decodeState struct {
	// raw asks for bytes instead of text: byte tokens are not validated as
	// UTF-8. Streams use it and do their own UTF-8 handling.
	raw bool
	// first is set when tokens[0] is the first token of the output. Decode
	// always sets it; a Stream sets it only for its first id.
	first bool
	// fused is set once a decoder has joined the tokens into one string, so
	// that later position-dependent decoders (Strip, Metaspace) know that
	// tokens[0] stands for everything decoded so far rather than one token.
	fused bool
}

type seqDecoder []decoder

func (q seqDecoder) decodeChain(tokens []string, st *decodeState) []string {
	for _, d := range q {
		tokens = d.decodeChain(tokens, st)
	}
	return tokens
}

// byteLevelDecoder maps byte-level characters back to bytes and joins them.
type byteLevelDecoder struct{}

func (byteLevelDecoder) decodeChain(tokens []string, st *decodeState) []string {
	var b []byte
	for _, t := range tokens {
		b = appendByteLevelToken(b, t)
	}
	st.fused = true
	if st.raw {
		return []string{string(b)}
	}
	return []string{lossyString(b)}
}

// byteFallbackDecoder turns runs of "<0xXX>" tokens into the bytes they
// stand for; a run that is not valid UTF-8 becomes one U+FFFD per byte.
type byteFallbackDecoder struct{}

func (byteFallbackDecoder) decodeChain(tokens []string, st *decodeState) []string {
	out := make([]string, 0, len(tokens))
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if st.raw || utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, t := range tokens {
		if b, ok := parseByteToken(t); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

// fuseDecoder joins all tokens into one.
type fuseDecoder struct{}

func (fuseDecoder) decodeChain(tokens []string, st *decodeState) []string {
	st.fused = true
	return []string{strings.Join(tokens, "")}
}

// stripDecoder removes up to start copies of content from the front of each
// token and up to stop from the back.
type stripDecoder struct {
	content     string
	start, stop int
}

func (d stripDecoder) decodeChain(tokens []string, st *decodeState) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		start, stop := d.start, d.stop
		if st.raw && st.fused {
			// A stream decodes one token at a time, so after a Fuse its
			// "joined string" is a fragment of the real one: the fragment's
			// front is the output's front only for the stream's first token,
			// and its back is never known to be the output's end.
			if !st.first {
				start = 0
			}
			stop = 0
		}
		for n := 0; n < start && strings.HasPrefix(t, d.content); n++ {
			t = t[len(d.content):]
		}
		for n := 0; n < stop && strings.HasSuffix(t, d.content); n++ {
			t = t[:len(t)-len(d.content)]
		}
		out[i] = t
	}
	return out
}

// replaceDecoder replaces a pattern in every token.
type replaceDecoder struct {
	pat     pattern
	content string
}

func (d replaceDecoder) decodeChain(tokens []string, _ *decodeState) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = d.pat.replaceAll(t, d.content)
	}
	return out
}

// metaspaceDecoder turns the replacement character back into spaces. In the
// first token it removes them instead (unless prepend_scheme is "never"), as
// the reference does: all of them, not just a leading one.
type metaspaceDecoder struct {
	replacement rune
	scheme      prependScheme
}

func (d metaspaceDecoder) decodeChain(tokens []string, st *decodeState) []string {
	rep := string(d.replacement)
	out := make([]string, len(tokens))
	for i, t := range tokens {
		if i == 0 && d.scheme != prependNever && (st.first || st.fused) {
			out[i] = strings.ReplaceAll(t, rep, "")
		} else {
			out[i] = strings.ReplaceAll(t, rep, " ")
		}
	}
	return out
}

// bpeDecoder replaces the end-of-word suffix with a space, or with nothing
// in the last token.
type bpeDecoder struct{ suffix string }

func (d bpeDecoder) decodeChain(tokens []string, st *decodeState) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		rep := " "
		if i == len(tokens)-1 && !st.raw {
			rep = ""
		}
		out[i] = strings.ReplaceAll(t, d.suffix, rep)
	}
	return out
}

// parseDecoder builds a decoder from its tokenizer.json object. A JSON null
// yields nil.
func parseDecoder(raw json.RawMessage, depth int) (decoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	if depth > maxConfigDepth {
		return nil, fmt.Errorf("decoders nested deeper than %d", maxConfigDepth)
	}
	var c struct {
		Type           string            `json:"type"`
		Decoders       []json.RawMessage `json:"decoders"`
		Pattern        json.RawMessage   `json:"pattern"`
		Content        *string           `json:"content"`
		Start          int               `json:"start"`
		Stop           int               `json:"stop"`
		Replacement    *string           `json:"replacement"`
		PrependScheme  *string           `json:"prepend_scheme"`
		AddPrefixSpace *bool             `json:"add_prefix_space"`
		Suffix         *string           `json:"suffix"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	switch c.Type {
	case "Sequence":
		seq := seqDecoder{}
		for i, sub := range c.Decoders {
			d, err := parseDecoder(sub, depth+1)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return seq, nil
	case "ByteLevel":
		return byteLevelDecoder{}, nil
	case "ByteFallback":
		return byteFallbackDecoder{}, nil
	case "Fuse":
		return fuseDecoder{}, nil
	case "Strip":
		if c.Content == nil || utf8.RuneCountInString(*c.Content) != 1 {
			return nil, fmt.Errorf("Strip decoder: content must be one character")
		}
		if c.Start < 0 || c.Stop < 0 {
			return nil, fmt.Errorf("Strip decoder: negative start or stop")
		}
		return stripDecoder{content: *c.Content, start: c.Start, stop: c.Stop}, nil
	case "Replace":
		pat, err := parsePattern(c.Pattern)
		if err != nil {
			return nil, fmt.Errorf("Replace decoder: %w", err)
		}
		if c.Content == nil {
			return nil, fmt.Errorf("Replace decoder without \"content\"")
		}
		return replaceDecoder{pat: pat, content: *c.Content}, nil
	case "Metaspace":
		r, scheme, err := parseMetaspace(c.Replacement, c.PrependScheme, c.AddPrefixSpace)
		if err != nil {
			return nil, fmt.Errorf("Metaspace decoder: %w", err)
		}
		return metaspaceDecoder{replacement: r, scheme: scheme}, nil
	case "BPEDecoder":
		suffix := "</w>"
		if c.Suffix != nil {
			suffix = *c.Suffix
		}
		return bpeDecoder{suffix: suffix}, nil
	}
	return nil, fmt.Errorf("unsupported decoder type %q", c.Type)
}
