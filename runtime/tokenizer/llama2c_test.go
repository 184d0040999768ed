package tokenizer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"os"
	"slices"
	"strings"
	"testing"
)

// llama2cFile builds a tokenizer.bin: the three special pieces, the 256
// byte pieces, then extra with scores, as llama2.c's exporter lays them out.
func llama2cFile(extra []string, scores []float32) []byte {
	pieces := []string{"<unk>", "\n<s>\n", "\n</s>\n"}
	for b := 0; b < 256; b++ {
		pieces = append(pieces, fmt.Sprintf("<0x%02X>", b))
	}
	pieces = append(pieces, extra...)
	maxLen := 0
	for _, p := range pieces {
		maxLen = max(maxLen, len(p))
	}
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, int32(maxLen))
	for i, p := range pieces {
		score := float32(0)
		if j := i - llama2cMinVocab; j >= 0 {
			score = scores[j]
		}
		binary.Write(&buf, binary.LittleEndian, score)
		binary.Write(&buf, binary.LittleEndian, int32(len(p)))
		buf.WriteString(p)
	}
	return buf.Bytes()
}

// testLlama2C is a small vocabulary with SentencePiece-like pieces whose
// scores favour longer merges.
func testLlama2C(t testing.TB) *Llama2C {
	t.Helper()
	extra := []string{" ", "a", "b", "c", "h", "e", "l", "o", "t", " t", "he", " the", "ll", "hello", " hello", "ab", "abc", "bc", "é", "€"}
	scores := make([]float32, len(extra))
	for i, p := range extra {
		scores[i] = float32(len(p))*10 - float32(i)/10
	}
	data := llama2cFile(extra, scores)
	tok, err := LoadLlama2C(bytes.NewReader(data), llama2cMinVocab+len(extra))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// runCEncode is a direct transliteration of run.c's encode(): quadratic, but
// obviously the same algorithm. Encode must agree with it.
func runCEncode(t *Llama2C, text string) []int {
	var ids []int
	if text == "" {
		return ids
	}
	if id, ok := t.ids[" "]; ok {
		ids = append(ids, id)
	}
	var buf []byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c&0xC0 != 0x80 {
			buf = buf[:0]
		}
		buf = append(buf, c)
		if i+1 < len(text) && text[i+1]&0xC0 == 0x80 && len(buf) < 4 {
			continue
		}
		if id, ok := t.ids[string(buf)]; ok {
			ids = append(ids, id)
		} else {
			for _, b := range buf {
				ids = append(ids, int(b)+3)
			}
		}
		buf = buf[:0]
	}
	for {
		best, bestID, bestIdx := float32(-1e10), -1, -1
		for i := 0; i+1 < len(ids); i++ {
			id, ok := t.ids[t.pieces[ids[i]]+t.pieces[ids[i+1]]]
			if ok && t.scores[id] > best {
				best, bestID, bestIdx = t.scores[id], id, i
			}
		}
		if bestIdx < 0 {
			return ids
		}
		ids[bestIdx] = bestID
		ids = slices.Delete(ids, bestIdx+1, bestIdx+2)
	}
}

func TestLlama2CSharedTokenizers(t *testing.T) {
	tests := []struct {
		model string
		text  string
		want  []int // checked by hand against the vocabulary (pieces in comments)
	}{
		// " Once" " upon" " a" " time"
		{"stories260K", "Once upon a time", []int{403, 407, 261, 378}},
		// " Lily" " and" " Tim"
		{"stories260K", "Lily and Tim", []int{317, 269, 326}},
		// " h" "é" "ll" "o" " " then the six UTF-8 bytes of 日本 as <0xE6>... (byte+3)
		{"stories260K", "héllo 日本", []int{270, 485, 306, 414, 410, 233, 154, 168, 233, 159, 175}},
		// the dummy prefix " " stays alone when the text starts with spaces
		{"stories260K", "  two  spaces", []int{410, 410, 259, 424, 414, 410, 262, 427, 412, 331, 419}},
		{"stories260K", "x", []int{410, 444}},
		{"stories260K", "", nil},
		// " whispers" " unfolding"
		{"aidreams260K", "whispers unfolding", []int{325, 422}},
		// " " "σ" " " then é as two bytes (not in this vocabulary)
		{"aidreams260K", "σ é", []int{429, 496, 429, 198, 172}},
	}
	loaded := map[string]*Llama2C{}
	for _, tt := range tests {
		tok := loaded[tt.model]
		if tok == nil {
			f, err := os.Open(sharedModel(t, tt.model+"/tok512.bin"))
			if err != nil {
				t.Fatal(err)
			}
			tok, err = LoadLlama2C(f, 512)
			f.Close()
			if err != nil {
				t.Fatalf("LoadLlama2C(%s): %v", tt.model, err)
			}
			loaded[tt.model] = tok
		}
		got := tok.Encode(tt.text)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: Encode(%q) = %v, want %v", tt.model, tt.text, got, tt.want)
		}
		if ref := runCEncode(tok, tt.text); !slices.Equal(got, ref) {
			t.Errorf("%s: Encode(%q) = %v, run.c algorithm gives %v", tt.model, tt.text, got, ref)
		}
		// After BOS the dummy-prefix space is stripped, giving back the text.
		if dec := tok.Decode(append([]int{tok.BOS()}, got...)); dec != "\n<s>\n"+tt.text && tt.text != "" {
			t.Errorf("%s: Decode(BOS+Encode(%q)) = %q", tt.model, tt.text, dec)
		}
		s := tok.NewStreamAfter(tok.BOS())
		var b strings.Builder
		for _, id := range got {
			b.WriteString(s.Push(id))
		}
		b.WriteString(s.Flush())
		if b.String() != tt.text {
			t.Errorf("%s: streamed %q after BOS, want %q", tt.model, b.String(), tt.text)
		}
	}
	tok := loaded["stories260K"]
	if tok == nil {
		return
	}
	if got := tok.Decode(tok.Encode("Once upon a time")); got != " Once upon a time" {
		t.Errorf("Decode(Encode(%q)) without BOS = %q, want the dummy-prefix space kept", "Once upon a time", got)
	}
	if tok.VocabSize() != 512 || tok.BOS() != 1 || !slices.Equal(tok.EOS(), []int{2}) || tok.Token(403) != " Once" || tok.Token(512) != "" {
		t.Errorf("metadata: vocab %d bos %d eos %v token(403) %q", tok.VocabSize(), tok.BOS(), tok.EOS(), tok.Token(403))
	}
}

func TestLlama2CEncodeMatchesRunC(t *testing.T) {
	tok := testLlama2C(t)
	texts := []string{
		"hello the abc", " hello", "the the the", "abcabc bc", "héllo €5", "\xff\xfe broken \xe2\x82", "日本語",
		"\x80\x80\x80\x80\x80\x80", "a\x00b", strings.Repeat("ab", 50),
	}
	rng := rand.New(rand.NewSource(1))
	alphabet := []string{"a", "b", "c", "h", "e", "l", "o", "t", " ", "é", "€", "😀", "\xe2"}
	for i := 0; i < 300; i++ {
		var b strings.Builder
		for n := rng.Intn(30); n > 0; n-- {
			b.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		texts = append(texts, b.String())
	}
	for _, text := range texts {
		got, want := tok.Encode(text), runCEncode(tok, text)
		if !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, run.c gives %v", text, got, want)
		}
	}
}

func TestLlama2CDecode(t *testing.T) {
	tok := testLlama2C(t)
	id := func(p string) int { return tok.ids[p] }
	tests := []struct {
		name string
		ids  []int
		want string
	}{
		{"space kept without BOS", []int{id(" hello")}, " hello"},
		{"space stripped after BOS", []int{1, id(" hello")}, "\n<s>\nhello"},
		{"only the piece right after BOS", []int{1, id(" hello"), id(" the")}, "\n<s>\nhello the"},
		{"byte pieces become bytes", []int{3 + 0xE2, 3 + 0x82, 3 + 0xAC}, "€"},
		{"broken bytes become U+FFFD", []int{3 + 0xE2, 3 + 0x82, id("a")}, "\uFFFDa"},
		{"out of range ids are skipped", []int{-1, id("a"), 99999}, "a"},
		{"EOS piece", []int{2}, "\n</s>\n"},
	}
	for _, tt := range tests {
		if got := tok.Decode(tt.ids); got != tt.want {
			t.Errorf("%s: Decode(%v) = %q, want %q", tt.name, tt.ids, got, tt.want)
		}
	}
}

func TestLoadLlama2CErrors(t *testing.T) {
	good := llama2cFile([]string{"x"}, []float32{1})
	n := llama2cMinVocab + 1
	header := func(maxLen int32) []byte {
		return binary.LittleEndian.AppendUint32(nil, uint32(maxLen))
	}
	token := func(score float32, length int32, body string) []byte {
		b := binary.LittleEndian.AppendUint32(nil, math.Float32bits(score))
		b = binary.LittleEndian.AppendUint32(b, uint32(length))
		return append(b, body...)
	}
	tests := []struct {
		name      string
		data      []byte
		vocabSize int
		want      string
	}{
		{"empty", nil, n, "max_token_length"},
		{"short header", []byte{1, 0}, n, "max_token_length"},
		{"bad max length", header(-5), n, "max_token_length -5"},
		{"huge max length", header(1 << 30), n, "max_token_length"},
		{"truncated score", append(header(8), 0, 0), n, "token 0 of 260: reading score"},
		{"negative length", append(header(8), token(0, -1, "")...), n, "token 0: length -1"},
		{"length over max", append(header(8), token(0, 9, "123456789")...), n, "token 0: length 9"},
		{"truncated piece", append(header(8), token(0, 5, "ab")...), n, "token 0: reading 5 bytes"},
		{"file shorter than vocab", good, n + 1, "token 260 of 261"},
		{"file longer than vocab", good, n - 1, "data left after 259 tokens"},
		{"vocab too small", good, 100, "too small"},
	}
	for _, tt := range tests {
		_, err := LoadLlama2C(bytes.NewReader(tt.data), tt.vocabSize)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
	if _, err := LoadLlama2C(bytes.NewReader(good), n); err != nil {
		t.Errorf("good file: %v", err)
	}
}
