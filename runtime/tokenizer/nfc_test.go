package tokenizer

import (
	"math/rand"
	"strings"
	"testing"
)

func TestNFC(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", "abc"},
		{"e\u0301", "é"},
		{"A\u030A", "Å"},
		{"\u212B", "Å"},                   // singleton decomposition: ANGSTROM SIGN
		{"\u212A", "K"},                   // KELVIN SIGN
		{"\u1100\u1161\u11A8", "각"},       // Hangul jamo compose arithmetically
		{"\uAC00\u11A8", "각"},             // LV syllable + T
		{"a\u0301\u0323", "\u1EA1\u0301"}, // reordered (dot below first), then composed
		{"Vie\u0323\u0302t", "Việt"},      // two marks composing in turn
		{"ngu\u031Bo\u031B\u0300i", "người"},
		{"q\u0307\u0323", "q\u0323\u0307"},             // reordered, nothing composes
		{"\u0344", "\u0308\u0301"},                     // non-starter decomposition, never recomposed
		{"\u0958", "\u0915\u093C"},                     // composition exclusion stays decomposed
		{"\u0301e", "\u0301e"},                         // leading combining mark
		{"e\u07FD\u0323\u0302", "e\u07FD\u0323\u0302"}, // U+07FD is newer than Unicode 9.0: left alone, like the reference
		{"한국어 中文", "한국어 中文"},
	}
	for _, tt := range tests {
		if got := nfc(tt.in); got != tt.want {
			t.Errorf("nfc(%+q) = %+q, want %+q", tt.in, got, tt.want)
		}
	}
}

// TestNFCQuickCheck checks that the quick check never skips a string the
// full algorithm would change, and that NFC is idempotent.
func TestNFCQuickCheck(t *testing.T) {
	parts := []string{"a", "e", "A", "\u0301", "\u0323", "\u0302", "\u0345", "\u1100", "\u1161", "\u11A8", "\uAC00", "\u212B", "\u0958", "\u093C", "\u0915", "é", "ñ", "\u0BC6", "\u0BBE", "\u0344", " "}
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 5000; i++ {
		var b strings.Builder
		for n := rng.Intn(8); n > 0; n-- {
			b.WriteString(parts[rng.Intn(len(parts))])
		}
		s := b.String()
		once := nfc(s)
		if nfcQuickCheck(s) && once != s {
			t.Errorf("quick check passed %+q but NFC is %+q", s, once)
		}
		if twice := nfc(once); twice != once {
			t.Errorf("nfc not idempotent on %+q: %+q then %+q", s, once, twice)
		}
	}
}
