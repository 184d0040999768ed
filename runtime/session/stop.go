package session

import "strings"

// stopper finds stop strings in streamed text. It holds back text that
// might be the start of a stop string, so nothing past a stop is ever
// emitted.
type stopper struct {
	stops []string
	held  string
}

// push adds text and returns what can be emitted, and whether a stop
// string was reached (everything from it on is dropped).
func (s *stopper) push(text string) (out string, stopped bool) {
	s.held += text
	cut := -1
	for _, st := range s.stops {
		if i := strings.Index(s.held, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		out, s.held = s.held[:cut], ""
		return out, true
	}
	keep := 0 // the longest suffix of held that begins some stop string
	for _, st := range s.stops {
		for n := min(len(st)-1, len(s.held)); n > keep; n-- {
			if strings.HasSuffix(s.held, st[:n]) {
				keep = n
				break
			}
		}
	}
	out, s.held = s.held[:len(s.held)-keep], s.held[len(s.held)-keep:]
	return out, false
}

// flush returns the held text at the end of generation.
func (s *stopper) flush() string {
	out := s.held
	s.held = ""
	return out
}
