package session

import "strings"

// gpt-oss answers in OpenAI's harmony format: after the prompt's
// "<|start|>assistant" it writes messages
//
//	<|channel|>analysis<|message|>…reasoning…<|end|>
//	<|start|>assistant<|channel|>final<|message|>…answer…<|return|>
//
// and <|call|> instead of <|return|> ends a tool call. <|return|> and
// <|call|> stop the reply (the format's stops); <|end|> does not. The
// harmony filter shows the user only the final channel's text (and the
// text of a message with no channel, so that a model that skips the
// header is not silenced); the analysis and commentary channels are
// hidden from the reply and kept as its reasoning_content.
const (
	harmonyStart   = "<|start|>"
	harmonyChannel = "<|channel|>"
	harmonyMessage = "<|message|>"
	harmonyEnd     = "<|end|>"
	// maxHarmonyHeader bounds a header held back waiting for <|message|>;
	// past it the text is shown as it is.
	maxHarmonyHeader = 256
)

type harmonyState int

const (
	hBegin  harmonyState = iota // between messages
	hHeader                     // in "<|start|>role<|channel|>name …", before <|message|>
	hBody                       // in a message's text
)

// harmony splits a streamed harmony reply into shown and hidden text.
type harmony struct {
	state   harmonyState
	held    string // text not yet classified
	visible bool   // the current body's channel is shown
}

// push adds decoded text and returns what to show and what to hide.
func (h *harmony) push(text string) (shown, hidden string) {
	h.held += text
	var sh, hi strings.Builder
	for {
		switch h.state {
		case hBegin:
			if h.held == "" {
				return sh.String(), hi.String()
			}
			if strings.HasPrefix(h.held, harmonyStart) || strings.HasPrefix(h.held, harmonyChannel) {
				h.state = hHeader
				continue
			}
			if strings.HasPrefix(harmonyStart, h.held) || strings.HasPrefix(harmonyChannel, h.held) {
				return sh.String(), hi.String() // may still become a header
			}
			h.state, h.visible = hBody, true // no header: plain text
		case hHeader:
			i := strings.Index(h.held, harmonyMessage)
			if i < 0 {
				if len(h.held) > maxHarmonyHeader {
					h.state, h.visible = hBody, true
					continue
				}
				return sh.String(), hi.String()
			}
			ch := channelOf(h.held[:i])
			h.visible = ch == "" || ch == "final"
			h.held, h.state = h.held[i+len(harmonyMessage):], hBody
		case hBody:
			i := strings.Index(h.held, harmonyEnd)
			body, rest, done := h.held, "", i >= 0
			if done {
				body, rest = h.held[:i], h.held[i+len(harmonyEnd):]
			} else {
				// Hold back a suffix that may begin <|end|>.
				keep := 0
				for k := min(len(body), len(harmonyEnd)-1); k > 0; k-- {
					if strings.HasPrefix(harmonyEnd, body[len(body)-k:]) {
						keep = k
						break
					}
				}
				body, rest = body[:len(body)-keep], body[len(body)-keep:]
			}
			if h.visible {
				sh.WriteString(body)
			} else {
				hi.WriteString(body)
			}
			h.held = rest
			if !done {
				return sh.String(), hi.String()
			}
			h.state = hBegin
		}
	}
}

// flush returns what is held at the end of the reply: an unfinished
// body's text goes where the body went; an unfinished header is dropped.
func (h *harmony) flush() (shown, hidden string) {
	rest := h.held
	h.held = ""
	switch {
	case h.state == hBody && !h.visible:
		return "", rest
	case h.state == hBody, h.state == hBegin:
		return rest, ""
	}
	return "", ""
}

// channelOf is the channel a header names ("" when none): the word after
// <|channel|>, which may be followed by " to=…" or "<|constrain|>…".
func channelOf(header string) string {
	_, after, ok := strings.Cut(header, harmonyChannel)
	if !ok {
		return ""
	}
	if i := strings.IndexAny(after, " <"); i >= 0 {
		after = after[:i]
	}
	return after
}
