package tokenizer

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzText exercises added tokens, byte fallback and multi-byte characters.
const fuzzText = "Hello <|endoftext|> wörld 😀 日本\n\t 123 <s>"

func FuzzLoadLlama2C(f *testing.F) {
	f.Add(llama2cFile([]string{" ", "a", "ab"}, []float32{1, 2, 3}), uint16(3))
	f.Add(llama2cFile(nil, nil), uint16(0))
	f.Add([]byte{}, uint16(0))
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255}, uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, extra uint16) {
		n := llama2cMinVocab + int(extra%512)
		tok, err := LoadLlama2C(bytes.NewReader(data), n)
		if err != nil {
			return
		}
		ids := tok.Encode(fuzzText)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode produced id %d outside [0, %d)", id, tok.VocabSize())
			}
		}
		if want := runCEncode(tok, fuzzText); !slices.Equal(ids, want) {
			t.Fatalf("Encode = %v, run.c algorithm gives %v", ids, want)
		}
		_ = tok.Decode(ids)
	})
}

func FuzzLoadHF(f *testing.F) {
	f.Add(byteLevelJSON(testMerges, []addedToken{{ID: 270, Content: "<|endoftext|>", Special: true}}, gpt2PreTokenizer), []byte(`{"eos_token":"<|endoftext|>"}`))
	f.Add(llamaStyleJSON(), []byte(`{"bos_token":{"content":"<s>"},"chat_template":"x"}`))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"\\s+(?!\\S)|\\p{L}+"},"behavior":"MergedWithNext","invert":true}}`), []byte(nil))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"normalizer":{"type":"NFC"},"decoder":{"type":"Metaspace","replacement":"▁","prepend_scheme":"first"}}`), []byte(`{}`))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{},"merges":[]}}`), []byte(`{"bos_token":5}`))
	f.Add([]byte(`not json`), []byte(`{`))
	f.Fuzz(func(t *testing.T, tokJSON, cfgJSON []byte) {
		h, err := LoadHF(tokJSON, cfgJSON)
		if err != nil {
			return
		}
		ids := h.Encode(fuzzText)
		for _, id := range ids {
			if id < 0 || id >= h.VocabSize() {
				t.Fatalf("Encode produced id %d outside [0, %d)", id, h.VocabSize())
			}
		}
		_ = h.Decode(ids)
		s := h.NewStream()
		for _, id := range ids {
			if out := s.Push(id); !utf8.ValidString(out) {
				t.Fatalf("Push returned invalid UTF-8 %q", out)
			}
		}
		_ = s.Flush()
	})
}

// FuzzEncodeDecode checks the round-trip property: byte-level BPE must give
// back any valid text exactly, through Decode and through a Stream; and the
// llama2.c tokenizer must match run.c's algorithm and give back the text
// when decoded after BOS.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"", "hello world", "the  and\n\n in", "😀€é日本", "<|endoftext|>x", "a\u0301", "\x00\x7f", " \t\r\n"} {
		f.Add(s)
	}
	h := testByteLevel(f)
	l := testLlama2C(f)
	f.Fuzz(func(t *testing.T, text string) {
		if !utf8.ValidString(text) {
			return
		}
		ids := h.Encode(text)
		if got := h.Decode(ids); got != text {
			t.Fatalf("HF: Decode(Encode(%q)) = %q", text, got)
		}
		s := h.NewStream()
		var b strings.Builder
		for _, id := range ids {
			b.WriteString(s.Push(id))
		}
		if got := b.String() + s.Flush(); got != text {
			t.Fatalf("HF: streamed %q, want %q", got, text)
		}

		lids := l.Encode(text)
		if len(text) < 300 {
			if want := runCEncode(l, text); !slices.Equal(lids, want) {
				t.Fatalf("llama2c: Encode(%q) = %v, run.c algorithm gives %v", text, lids, want)
			}
		}
		ls := l.NewStreamAfter(l.BOS())
		b.Reset()
		for _, id := range lids {
			b.WriteString(ls.Push(id))
		}
		if got := b.String() + ls.Flush(); got != text {
			t.Fatalf("llama2c: streamed after BOS %q, want %q", got, text)
		}
	})
}

// FuzzRegex checks that any pattern either fails to compile or searches any
// input without panicking, within the step budget, and with well-formed,
// ordered, non-overlapping matches.
func FuzzRegex(f *testing.F) {
	f.Add(gpt2Pattern, "Hello   world's 123!!\n\n")
	f.Add(`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, "It'S  ok\r\n\t 12345 ſ")
	f.Add(`[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`+"`"+`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*`, "a.b (c) é\u0301")
	f.Add(`[\x{4e00}-\x{9fa5}\x{3040}-\x{309f}\x{30a0}-\x{30ff}]+`, "中文かなカナ")
	f.Add(`a*?(?=b)|x{2,}|[^\P{L}a-c]|(?-i:y)|\u0041`, "aaab xx")
	f.Add(`(((`, "")
	f.Fuzz(func(t *testing.T, pattern, input string) {
		re, err := compileRegex(pattern)
		if err != nil {
			return
		}
		input = sanitizeUTF8(input)
		prev := 0
		for _, m := range re.findAll(input) {
			if m[0] < prev || m[1] < m[0] || m[1] > len(input) {
				t.Fatalf("bad match %v after %d in %q", m, prev, input)
			}
			if !utf8.ValidString(input[m[0]:m[1]]) {
				t.Fatalf("match %v splits a character of %q", m, input)
			}
			prev = m[1]
		}
	})
}
