package tokenizer

import "testing"

func TestLossyString(t *testing.T) {
	// Each maximal invalid subsequence becomes one U+FFFD, as in Rust's
	// String::from_utf8_lossy.
	tests := []struct{ in, want string }{
		{"abc", "abc"},
		{"\xE2\x82", "\uFFFD"},
		{"\xE2\x82a", "\uFFFDa"},
		{"\xF0\x90\x80", "\uFFFD"},
		{"\xF0\x90\x80\xF0", "\uFFFD\uFFFD"},
		{"\xED\xA0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogates are not valid UTF-8
		{"\xC0\xAF", "\uFFFD\uFFFD"},
		{"\xF4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"\xFF", "\uFFFD"},
		{"\uFFFD", "\uFFFD"},
		{"a\x80\x80b", "a\uFFFD\uFFFDb"},
	}
	for _, tt := range tests {
		if got := lossyString([]byte(tt.in)); got != tt.want {
			t.Errorf("lossyString(%+q) = %+q, want %+q", tt.in, got, tt.want)
		}
	}
}

func TestCompleteLen(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"ab", 2},
		{"a\xE2", 1},
		{"a\xE2\x82", 1},
		{"a\xE2\x82\xAC", 4},
		{"a\xF0\x9F\x98", 1},
		{"a\xE0\x80", 3}, // E0 80 can never complete: released at once
		{"a\x80", 2},
		{"\xF0\x9F\x98\x80\xF0", 4},
	}
	for _, tt := range tests {
		if got := completeLen([]byte(tt.in)); got != tt.want {
			t.Errorf("completeLen(%+q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
