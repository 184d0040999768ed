package tokenizer

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// byteLevelJSON builds a GPT-2 style tokenizer.json: the 256 byte-level
// characters as ids 0..255, then the result of each merge in order, plus the
// given added tokens and pre-tokenizer.
func byteLevelJSON(merges []string, added []addedToken, preTokenizer string) []byte {
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteToRune(byte(b)))] = b
	}
	for _, m := range merges {
		a, b, _ := strings.Cut(m, " ")
		if _, ok := vocab[a+b]; !ok {
			vocab[a+b] = len(vocab)
		}
	}
	if added == nil {
		added = []addedToken{}
	}
	if merges == nil {
		merges = []string{}
	}
	f := map[string]any{
		"version":        "1.0",
		"added_tokens":   added,
		"normalizer":     nil,
		"pre_tokenizer":  json.RawMessage(preTokenizer),
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"model":          map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	}
	out, err := json.Marshal(f)
	if err != nil {
		panic(err)
	}
	return out
}

const gpt2PreTokenizer = `{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":true}`

var testMerges = []string{"Ġ t", "h e", "Ġt he", "i n", "Ġ a", "n d", "Ġa nd", "Ġ in", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "e r"}

func testByteLevel(t testing.TB) *HF {
	t.Helper()
	added := []addedToken{{ID: 270, Content: "<|endoftext|>", Special: true}}
	h, err := LoadHF(byteLevelJSON(testMerges, added, gpt2PreTokenizer), []byte(`{"eos_token": "<|endoftext|>", "bos_token": null}`))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// tokens returns the token strings of ids.
func tokens(h Tokenizer, ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = h.Token(id)
	}
	return out
}

func TestHFByteLevelEncode(t *testing.T) {
	h := testByteLevel(t)
	tests := []struct {
		text string
		want []string
	}{
		{"the and in world", []string{"t", "he", "Ġand", "Ġin", "Ġworld"}},
		{" the  world", []string{"Ġthe", "Ġ", "Ġworld"}},
		{"there's\n\n  x", []string{"t", "he", "r", "e", "'", "s", "Ċ", "Ċ", "Ġ", "Ġ", "x"}},
		{"a<|endoftext|>the", []string{"a", "<|endoftext|>", "t", "he"}},
		{"é", []string{"Ã", "©"}},
		{"", []string{}},
	}
	for _, tt := range tests {
		ids := h.Encode(tt.text)
		if got := tokens(h, ids); !slices.Equal(got, tt.want) {
			t.Errorf("Encode(%q) = %q, want %q", tt.text, got, tt.want)
		}
		if got := h.Decode(ids); got != tt.text {
			t.Errorf("Decode(Encode(%q)) = %q", tt.text, got)
		}
	}
	if h.VocabSize() != 271 || h.BOS() != -1 || !slices.Equal(h.EOS(), []int{270}) || h.AddsBOS() || h.ChatTemplate() != "" {
		t.Errorf("metadata: vocab %d bos %d eos %v adds %v", h.VocabSize(), h.BOS(), h.EOS(), h.AddsBOS())
	}
}

func TestHFStreamHoldsPartialCharacters(t *testing.T) {
	h := testByteLevel(t)
	ids := h.Encode("a😀€b")
	want := []string{"a", "", "", "", "😀", "", "", "€", "b"}
	if len(ids) != len(want) {
		t.Fatalf("Encode gave %d ids %q, want one per byte", len(ids), tokens(h, ids))
	}
	s := h.NewStream()
	for i, id := range ids {
		if got := s.Push(id); got != want[i] {
			t.Errorf("Push #%d (%q) = %q, want %q", i, h.Token(id), got, want[i])
		}
	}
	if got := s.Flush(); got != "" {
		t.Errorf("Flush = %q, want empty", got)
	}
	// A character cut short is released by Flush as U+FFFD.
	s.Push(ids[1])
	s.Push(ids[2])
	if got := s.Flush(); got != "\uFFFD" {
		t.Errorf("Flush after two bytes of four = %q, want one U+FFFD", got)
	}
	// Bytes that can never complete are not held back.
	if got := s.Push(h.Encode("\u0080")[1]); got != "\uFFFD" {
		t.Errorf("Push of a lone continuation byte = %q, want U+FFFD", got)
	}
}

// llamaStyleJSON is a small SentencePiece-style tokenizer configured like
// Llama-2's tokenizer.json: Prepend/Replace normalizer, byte fallback, and
// the Replace/ByteFallback/Fuse/Strip decoder.
func llamaStyleJSON() []byte {
	vocab := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2}
	for b := 0; b < 256; b++ {
		vocab[byteTokenName(byte(b))] = len(vocab)
	}
	merges := []string{"▁ h", "e l", "▁h el", "l o", "▁hel lo", "▁ w", "o r", "▁w or", "l d", "▁wor ld"}
	for _, c := range []string{"▁", "h", "e", "l", "o", "w", "r", "d", "x"} {
		vocab[c] = len(vocab)
	}
	for _, m := range merges {
		a, b, _ := strings.Cut(m, " ")
		vocab[a+b] = len(vocab)
	}
	f := map[string]any{
		"added_tokens": []addedToken{
			{ID: 0, Content: "<unk>", Special: true},
			{ID: 1, Content: "<s>", Special: true},
			{ID: 2, Content: "</s>", Special: true},
		},
		"normalizer":     json.RawMessage(`{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`),
		"pre_tokenizer":  nil,
		"post_processor": json.RawMessage(`{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[],"special_tokens":{}}`),
		"decoder":        json.RawMessage(`{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}`),
		"model": map[string]any{"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
			"vocab": vocab, "merges": merges},
	}
	out, err := json.Marshal(f)
	if err != nil {
		panic(err)
	}
	return out
}

func byteTokenName(b byte) string {
	return "<0x" + strings.ToUpper(string("0123456789abcdef"[b>>4])+string("0123456789abcdef"[b&15])) + ">"
}

func TestHFLlamaStyle(t *testing.T) {
	h, err := LoadHF(llamaStyleJSON(), []byte(`{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "chat_template": "{{ messages }}"}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text string
		want []string
	}{
		{"hello world", []string{"▁hello", "▁world"}},
		{"hello<s>world", []string{"▁hello", "<s>", "▁world"}}, // the normalizer runs per segment
		{" x", []string{"▁", "▁", "x"}},
		{"hé", []string{"▁h", "<0xC3>", "<0xA9>"}},
	}
	for _, tt := range tests {
		if got := tokens(h, h.Encode(tt.text)); !slices.Equal(got, tt.want) {
			t.Errorf("Encode(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
	decodes := []struct {
		toks []string
		want string
	}{
		{[]string{"▁hello", "▁world"}, "hello world"},        // Strip removes the first space only
		{[]string{"<s>", "▁hello"}, "<s> hello"},             // not when a special token comes first
		{[]string{"▁", "▁", "x"}, " x"},                      //
		{[]string{"<0xC3>", "<0xA9>", "x"}, "éx"},            // bytes joined before UTF-8 decoding
		{[]string{"<0xC3>", "x", "<0xA9>"}, "\uFFFDx\uFFFD"}, // ByteFallback: one U+FFFD per bad byte
		{[]string{"<0xE2>", "<0x82>", "x"}, "\uFFFD\uFFFDx"}, // even for a truncated sequence
	}
	for _, d := range decodes {
		var ids []int
		for _, tok := range d.toks {
			id, ok := h.TokenID(tok)
			if !ok {
				t.Fatalf("no token %q", tok)
			}
			ids = append(ids, id)
		}
		if got := h.Decode(ids); got != d.want {
			t.Errorf("Decode(%q) = %q, want %q", d.toks, got, d.want)
		}
		if strings.ContainsRune(d.want, '\uFFFD') {
			continue
		}
		s := h.NewStream()
		var b strings.Builder
		for _, id := range ids {
			b.WriteString(s.Push(id))
		}
		if b.String()+s.Flush() != d.want {
			t.Errorf("streaming %q gave %q, want %q", d.toks, b.String(), d.want)
		}
	}
	after := h.NewStreamAfter(h.BOS())
	if got := after.Push(h.Encode("hello")[0]); got != " hello" {
		t.Errorf("NewStreamAfter(BOS).Push(▁hello) = %q, want the space kept", got)
	}
	if h.BOS() != 1 || !slices.Equal(h.EOS(), []int{2}) || !h.AddsBOS() || h.ChatTemplate() != "{{ messages }}" {
		t.Errorf("metadata: bos %d eos %v adds %v template %q", h.BOS(), h.EOS(), h.AddsBOS(), h.ChatTemplate())
	}
}

func TestHFAddedTokenFlags(t *testing.T) {
	added := []addedToken{
		{ID: 300, Content: "<L>", LStrip: true, Special: true},
		{ID: 301, Content: "<R>", RStrip: true, Special: true},
		{ID: 302, Content: "word", SingleWord: true},
		{ID: 303, Content: "<long>", Special: true},
		{ID: 304, Content: "<lo", Special: true},
	}
	h, err := LoadHF(byteLevelJSON(nil, added, `{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text string
		want []string
	}{
		{"a  <L>b", []string{"a", "<L>", "b"}},             // lstrip takes the spaces before
		{"a<R>  b", []string{"a", "<R>", "b"}},             // rstrip takes the spaces after
		{"a word b", []string{"a", "Ġ", "word", "Ġ", "b"}}, // a whole word
		{"awordb", []string{"a", "w", "o", "r", "d", "b"}}, // not inside a word
		{"<long> <lo", []string{"<long>", "Ġ", "<lo"}},     // longest match first
	}
	for _, tt := range tests {
		if got := tokens(h, h.Encode(tt.text)); !slices.Equal(got, tt.want) {
			t.Errorf("Encode(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestHFConfig(t *testing.T) {
	tok := byteLevelJSON(nil, []addedToken{{ID: 256, Content: "<bos>", Special: true}, {ID: 257, Content: "<eos>", Special: true}}, `null`)
	tests := []struct {
		name     string
		config   string
		bos      int
		eos      []int
		addsBOS  bool
		template string
	}{
		{"nil config", "", -1, nil, false, ""},
		{"strings", `{"bos_token": "<bos>", "eos_token": "<eos>"}`, 256, []int{257}, false, ""},
		{"objects", `{"bos_token": {"content": "<bos>"}, "eos_token": {"__type": "AddedToken", "content": "<eos>"}, "add_bos_token": true}`, 256, []int{257}, true, ""},
		{"vocabulary token", `{"eos_token": "a"}`, -1, []int{'a'}, false, ""},
		{"template list", `{"chat_template": [{"name": "default", "template": "x"}]}`, -1, nil, false, ""},
		{"template string", `{"chat_template": "{% for m in messages %}{{ m }}{% endfor %}"}`, -1, nil, false, "{% for m in messages %}{{ m }}{% endfor %}"},
	}
	for _, tt := range tests {
		var cfg []byte
		if tt.config != "" {
			cfg = []byte(tt.config)
		}
		h, err := LoadHF(tok, cfg)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if h.BOS() != tt.bos || !slices.Equal(h.EOS(), tt.eos) || h.AddsBOS() != tt.addsBOS || h.ChatTemplate() != tt.template {
			t.Errorf("%s: bos %d eos %v adds %v template %q", tt.name, h.BOS(), h.EOS(), h.AddsBOS(), h.ChatTemplate())
		}
	}
}

func TestLoadHFErrors(t *testing.T) {
	good := string(byteLevelJSON(testMerges, nil, gpt2PreTokenizer))
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("test setup: %q not in the tokenizer", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	split := func(re string) string {
		b, _ := json.Marshal(re)
		return replace(gpt2PreTokenizer, `{"type":"Split","pattern":{"Regex":`+string(b)+`},"behavior":"Isolated","invert":false}`)
	}
	tests := []struct {
		name, tok, config, want string
	}{
		{"not JSON", `{"model":`, "", "parsing tokenizer.json"},
		{"wrong model", `{"model":{"type":"WordPiece","vocab":{}}}`, "", `unsupported model type "WordPiece"`},
		{"no merges", `{"model":{"type":"BPE","vocab":{"a":0}}}`, "", "without merges"},
		{"merge not in vocab", replace(`"merges":["Ġ t"`, `"merges":["Ġ zz"`), "", `"zz" is not in the vocabulary`},
		{"bad merge string", replace(`"merges":["Ġ t"`, `"merges":["Ġt"`), "", "not two tokens"},
		{"bad merge tuple", replace(`"merges":["Ġ t"`, `"merges":[["Ġ","t","x"]`), "", "merges are neither"},
		{"negative id", replace(`"vocab":{`, `"vocab":{"neg":-4,`), "", "negative id"},
		{"huge id", replace(`"vocab":{`, `"vocab":{"big":2000000000,`), "", "far beyond"},
		{"dropout", replace(`"type":"BPE"`, `"type":"BPE","dropout":0.1`), "", "dropout"},
		{"unk missing", replace(`"type":"BPE"`, `"type":"BPE","unk_token":"<nope>"`), "", "unk_token"},
		{"unknown pre-tokenizer", replace(gpt2PreTokenizer, `{"type":"Whatever"}`), "", `unsupported pre-tokenizer type "Whatever"`},
		{"unknown normalizer", replace(`"normalizer":null`, `"normalizer":{"type":"NFKC"}`), "", `unsupported normalizer type "NFKC"`},
		{"unknown decoder", replace(`"decoder":{"add_prefix_space":false,"trim_offsets":false,"type":"ByteLevel","use_regex":false}`, `"decoder":{"type":"CTC"}`), "", `unsupported decoder type "CTC"`},
		{"lookbehind", split(`(?<=a)b`), "", "unsupported group syntax"},
		{"word boundary", split(`\bx`), "", `escape \b is not supported`},
		{"anchor", split(`^x`), "", "anchor"},
		{"quantified group", split(`(ab)+`), "", "quantifier on a group"},
		{"unknown property", split(`\p{Foo}`), "", `unknown property \p{Foo}`},
		{"unclosed class", split(`[a-`), "", "missing ']'"},
		{"unclosed group", split(`(a`), "", "missing ')'"},
		{"bad range", split(`a{3,1}`), "", "upper bound below lower"},
		{"bad behavior", replace(gpt2PreTokenizer, `{"type":"Split","pattern":{"String":"x"},"behavior":"Sideways"}`), "", `unknown split behavior "Sideways"`},
		{"pattern both kinds", replace(gpt2PreTokenizer, `{"type":"Split","pattern":{"String":"x","Regex":"y"},"behavior":"Isolated"}`), "", "exactly one"},
		{"metaspace replacement", replace(gpt2PreTokenizer, `{"type":"Metaspace","replacement":"ab"}`), "", "one character"},
		{"deep sequence", replace(gpt2PreTokenizer, strings.Repeat(`{"type":"Sequence","pretokenizers":[`, 40)+`null`+strings.Repeat(`]}`, 40)), "", "nested deeper"},
		{"config not JSON", good, `{"bos_token":`, "tokenizer_config.json"},
		{"bos not in vocab", good, `{"bos_token": "<nope>"}`, `bos_token: "<nope>" is not in the vocabulary`},
		{"eos wrong type", good, `{"eos_token": 5}`, "eos_token: want a string"},
	}
	for _, tt := range tests {
		var cfg []byte
		if tt.config != "" {
			cfg = []byte(tt.config)
		}
		_, err := LoadHF([]byte(tt.tok), cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
	if _, err := LoadHF([]byte(good), nil); err != nil {
		t.Errorf("good tokenizer: %v", err)
	}
}

func TestHFConcurrentUse(t *testing.T) {
	h := testByteLevel(t)
	texts := []string{"the and in world", "😀€é日本", "a<|endoftext|>b", strings.Repeat("hello world ", 50)}
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i] = h.Encode(s)
	}
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			for n := 0; n < 50; n++ {
				for i, s := range texts {
					if got := h.Encode(s); !slices.Equal(got, want[i]) {
						done <- fmt.Errorf("concurrent Encode(%q) = %v, want %v", s, got, want[i])
						return
					}
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestHFDeepJSON: tokenizer.json and its config are refused past the
// nesting bound, naming the file.
func TestHFDeepJSON(t *testing.T) {
	deep := []byte(`{"model":` + strings.Repeat("[", 1<<20) + `}`)
	if _, err := LoadHF(deep, nil); err == nil || !strings.Contains(err.Error(), "tokenizer.json: JSON nests deeper") {
		t.Errorf("deep tokenizer.json: %v", err)
	}
	if _, err := LoadHF([]byte(`{}`), deep); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json: JSON nests deeper") {
		t.Errorf("deep tokenizer_config.json: %v", err)
	}
}
