package session

import (
	"strings"
	"testing"
)

func TestStopper(t *testing.T) {
	tests := []struct {
		stops   []string
		pieces  []string
		want    string
		stopped bool
	}{
		{nil, []string{"ab", "cd"}, "abcd", false},
		{[]string{"."}, []string{"one", " two.", " three"}, "one two", true},
		{[]string{"\nUser:"}, []string{"hi", "\nUs", "er: x"}, "hi", true},
		{[]string{"\nUser:"}, []string{"hi", "\nUs", "ually"}, "hi\nUsually", false},
		{[]string{"xyz", "yq"}, []string{"axy", "q"}, "ax", true},
	}
	for _, tt := range tests {
		s := stopper{stops: tt.stops}
		var got strings.Builder
		stopped := false
		for _, p := range tt.pieces {
			out, st := s.push(p)
			got.WriteString(out)
			if st {
				stopped = true
				break
			}
		}
		if !stopped {
			got.WriteString(s.flush())
		}
		if got.String() != tt.want || stopped != tt.stopped {
			t.Errorf("stops %q, pieces %q: got %q (stopped %v), want %q (stopped %v)", tt.stops, tt.pieces, got.String(), stopped, tt.want, tt.stopped)
		}
	}
}
