package main

import (
	"fmt"
	"strings"

	"github.com/moderuntime/mode/runtime/chat"
)

// chatFormat turns chat messages into a prompt. A pack's Jinja chat
// template is rendered by runtime/chat, as transformers would; a template
// the engine cannot parse falls back to the widespread families, recognised
// by their markers, and anything else to plain text. The markers also give
// the stop strings of a template's family.
type chatFormat struct {
	Name string
	// tpl, when set, renders the whole prompt with the bos and eos texts.
	tpl      *chat.Template
	bos, eos string
	// Turn renders one message; Open starts the assistant's reply.
	Turn func(m message) string
	Open string
	// BOS says the template starts with the BOS token, which then goes
	// in as an id rather than as text.
	BOS bool
	// Stop ends the reply: special-token text (mapped to ids when the
	// tokenizer has them as single tokens) and plain strings.
	Stop []string
}

// chatFormats are tried in order: the first whose marker the template
// contains is used.
var chatFormats = []struct {
	marker string
	format chatFormat
}{
	{"<|im_start|>", chatFormat{
		Name: "chatml",
		Turn: func(m message) string { return "<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n" },
		Open: "<|im_start|>assistant\n",
		Stop: []string{"<|im_end|>"},
	}},
	{"<|start_header_id|>", chatFormat{
		Name: "llama3",
		Turn: func(m message) string {
			return "<|start_header_id|>" + m.Role + "<|end_header_id|>\n\n" + strings.TrimSpace(m.Content) + "<|eot_id|>"
		},
		Open: "<|start_header_id|>assistant<|end_header_id|>\n\n",
		BOS:  true,
		Stop: []string{"<|eot_id|>"},
	}},
}

// plainFormat is used for models without a (recognised) template.
var plainFormat = chatFormat{
	Name: "plain",
	Turn: func(m message) string {
		role := m.Role
		if role != "" {
			role = strings.ToUpper(role[:1]) + role[1:]
		}
		return role + ": " + m.Content + "\n"
	},
	Open: "Assistant:",
	BOS:  true,
	Stop: []string{"\nUser:"},
}

// formatFor picks the chat format for a pack's template ("" when none);
// bos and eos are the tokenizer's texts for those tokens.
func formatFor(template, bos, eos string) chatFormat {
	family := plainFormat
	for _, f := range chatFormats {
		if strings.Contains(template, f.marker) {
			family = f.format
			break
		}
	}
	if template == "" {
		return family
	}
	t, err := chat.Parse(template)
	if err != nil {
		return family
	}
	f := chatFormat{Name: "jinja", tpl: t, bos: bos, eos: eos}
	if family.Name != plainFormat.Name {
		f.Stop = family.Stop
	}
	return f
}

// render builds the prompt text for messages.
func (f chatFormat) render(msgs []message) (string, error) {
	if len(msgs) == 0 {
		return "", fmt.Errorf("messages is empty: send at least one {role: \"user\", content: ...}")
	}
	if f.tpl != nil {
		cm := make([]chat.Message, len(msgs))
		for i, m := range msgs {
			cm[i] = chat.Message{Role: m.Role, Content: m.Content}
		}
		// The template's own checks (roles must alternate, ...) come back as
		// errors the caller can act on.
		return f.tpl.Render(cm, map[string]any{"add_generation_prompt": true, "bos_token": f.bos, "eos_token": f.eos})
	}
	var b strings.Builder
	for i, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant":
		default:
			return "", fmt.Errorf("messages[%d].role is %q: want system, user or assistant", i, m.Role)
		}
		b.WriteString(f.Turn(m))
	}
	b.WriteString(f.Open)
	return b.String(), nil
}

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
