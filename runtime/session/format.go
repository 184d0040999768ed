package session

import (
	"fmt"
	"strings"
	"time"

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
	Turn func(m Message) string
	Open string
	// BOS says the template starts with the BOS token, which then goes
	// in as an id rather than as text.
	BOS bool
	// Stop ends the reply: special-token text (mapped to ids when the
	// tokenizer has them as single tokens) and plain strings.
	Stop []string
	// Note says why the pack's template is not used, when it is not:
	// the page shows it rather than chat quietly taking another format.
	Note string
	// Harmony says replies come in gpt-oss's harmony channels: only the
	// final channel is shown (see harmony).
	Harmony bool
	// now is the time strftime_now formats in a template (time.Now
	// unless Options.Now says otherwise).
	now func() time.Time
}

// chatFormats are tried in order: the first whose marker the template
// contains is used.
var chatFormats = []struct {
	marker string
	format chatFormat
}{
	// gpt-oss: its template renders "<|start|>role<|message|>…<|end|>"
	// with channels on assistant turns (the harmony format).
	{"<|channel|>", chatFormat{
		Name: "harmony",
		Turn: func(m Message) string {
			if m.Role == "assistant" {
				return "<|start|>assistant<|channel|>final<|message|>" + m.Content + "<|end|>"
			}
			return "<|start|>" + m.Role + "<|message|>" + m.Content + "<|end|>"
		},
		Open:    "<|start|>assistant",
		Stop:    []string{"<|return|>", "<|call|>"},
		Harmony: true,
	}},
	{"<|im_start|>", chatFormat{
		Name: "chatml",
		Turn: func(m Message) string { return "<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n" },
		Open: "<|im_start|>assistant\n",
		Stop: []string{"<|im_end|>"},
	}},
	{"<|start_header_id|>", chatFormat{
		Name: "llama3",
		Turn: func(m Message) string {
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
	Turn: func(m Message) string {
		role := m.Role
		if role != "" {
			role = strings.ToUpper(role[:1]) + role[1:]
		}
		// A reply generated after Open brings its own leading space:
		// rendered as generated, its ids in the KV cache stay reusable.
		sep := ": "
		if strings.HasPrefix(m.Content, " ") {
			sep = ":"
		}
		return role + sep + m.Content + "\n"
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
		family.Note = fmt.Sprintf("the pack's chat template does not parse (%v); chat uses the %s format instead", err, family.Name)
		return family
	}
	f := chatFormat{Name: "jinja", tpl: t, bos: bos, eos: eos, Harmony: family.Harmony}
	if family.Name != plainFormat.Name {
		f.Stop = family.Stop
	}
	return f
}

// render builds the prompt text for messages.
func (f chatFormat) render(msgs []Message) (string, error) {
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
		now := time.Now
		if f.now != nil {
			now = f.now
		}
		// RenderAt: gpt-oss's and Llama 3.1's templates print the date.
		return f.tpl.RenderAt(cm, map[string]any{"add_generation_prompt": true, "bos_token": f.bos, "eos_token": f.eos}, now())
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
