package tokenizer

import (
	"strings"
	"testing"
	"time"
)

// largeText is about 100 KB of mixed text.
func largeText() string {
	unit := "the hello world abc, héllo wörld 😀 日本語 123 \n\t  the  the\n"
	return strings.Repeat(unit, 100_000/len(unit)+1)
}

// TestLargeInputIsFast guards against quadratic steps: 100 KB must encode
// in well under a second (the bound is loose for slow, shared machines).
func TestLargeInputIsFast(t *testing.T) {
	text := largeText()
	for _, tc := range []struct {
		name string
		tok  Tokenizer
	}{
		{"llama2c", testLlama2C(t)},
		{"byte-level BPE", testByteLevel(t)},
	} {
		start := time.Now()
		ids := tc.tok.Encode(text)
		elapsed := time.Since(start)
		t.Logf("%s: %d bytes → %d ids in %v", tc.name, len(text), len(ids), elapsed)
		if elapsed > 3*time.Second {
			t.Errorf("%s: encoding %d bytes took %v", tc.name, len(text), elapsed)
		}
	}
}

func BenchmarkLlama2CEncode(b *testing.B) {
	tok := testLlama2C(b)
	text := largeText()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Encode(text)
	}
}

func BenchmarkHFEncode(b *testing.B) {
	tok := testByteLevel(b)
	text := largeText()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Encode(text)
	}
}
