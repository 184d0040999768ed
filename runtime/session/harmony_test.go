package session

import "testing"

func TestHarmony(t *testing.T) {
	tests := []struct {
		name, in, shown, hidden string
	}{
		{"analysis then final", "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Answer.", "Answer.", "Think."},
		{"final only", "<|channel|>final<|message|>Hi there", "Hi there", ""},
		{"no header", "plain words", "plain words", ""},
		{"commentary hidden", "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{\"a\":1}", "", "{\"a\":1}"},
		{"two analyses", "<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>analysis<|message|>b<|end|><|start|>assistant<|channel|>final<|message|>c", "c", "ab"},
		{"lookalike kept", "<|channel|>final<|message|>x <|en y <|start", "x <|en y <|start", ""},
		{"unfinished header", "<|channel|>anal", "", ""},
	}
	for _, tt := range tests {
		// Every split of the input into two pieces, and byte by byte.
		for cut := 0; cut <= len(tt.in); cut++ {
			var h harmony
			s1, h1 := h.push(tt.in[:cut])
			s2, h2 := h.push(tt.in[cut:])
			s3, h3 := h.flush()
			if s, hd := s1+s2+s3, h1+h2+h3; s != tt.shown || hd != tt.hidden {
				t.Fatalf("%s, cut at %d: shown %q hidden %q, want %q %q", tt.name, cut, s, hd, tt.shown, tt.hidden)
			}
		}
		var h harmony
		var s, hd string
		for i := range len(tt.in) {
			a, b := h.push(tt.in[i : i+1])
			s, hd = s+a, hd+b
		}
		a, b := h.flush()
		if s+a != tt.shown || hd+b != tt.hidden {
			t.Errorf("%s, byte by byte: shown %q hidden %q", tt.name, s+a, hd+b)
		}
	}
}
