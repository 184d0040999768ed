package session

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestChatFormats(t *testing.T) {
	msgs := []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}}
	tests := []struct {
		template, name, want string
	}{
		{"", "plain", "System: Be brief.\nUser: Hi\nAssistant:"},
		{"{% for m in messages %}<|im_start|>{{ m.role }}...", "chatml", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"{% unparseable %}<|start_header_id|>...", "llama3", "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"{% unknown jinja %}", "plain", "System: Be brief.\nUser: Hi\nAssistant:"},
		// real templates render through runtime/chat
		{"{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" +
			"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}", "jinja",
			"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"{{ bos_token }}{% for m in messages %}[{{ m.role | upper }}] {{ m.content | trim }}{{ eos_token }}{% endfor %}", "jinja",
			"<s>[SYSTEM] Be brief.</s>[USER] Hi</s>"},
	}
	for _, tt := range tests {
		f := formatFor(tt.template, "<s>", "</s>")
		got, err := f.render(msgs)
		if err != nil || f.Name != tt.name || got != tt.want {
			t.Errorf("template %q: format %s, render %q, %v; want %s, %q", tt.template, f.Name, got, err, tt.name, tt.want)
		}
	}
	// A reply as generated after "Assistant:" keeps its own leading space.
	if got, _ := plainFormat.render([]Message{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: " Hello."}, {Role: "user", Content: "Bye"}}); got != "User: Hi\nAssistant: Hello.\nUser: Bye\nAssistant:" {
		t.Errorf("plain format with a reply: %q", got)
	}
	if _, err := plainFormat.render([]Message{{Role: "robot", Content: "x"}}); err == nil {
		t.Error("role robot: no error")
	}
	strict := formatFor("{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with a user message') }}{% endif %}", "", "")
	if _, err := strict.render(msgs); err == nil || !strings.Contains(err.Error(), "must start with a user") {
		t.Errorf("a template's raise_exception: %v", err)
	}
	if f := formatFor("{{ bos_token }}<|im_start|>{% for m in messages %}{{ m.content }}{% endfor %}", "", ""); f.Name != "jinja" || len(f.Stop) != 1 || f.Stop[0] != "<|im_end|>" {
		t.Errorf("ChatML-family Jinja template: format %s, stops %q", f.Name, f.Stop)
	}
	// A template that does not parse is reported, not silently replaced.
	for _, tpl := range []string{"{% unparseable %}<|start_header_id|>...", "{% unknown jinja %}"} {
		f := formatFor(tpl, "", "")
		if !strings.Contains(f.Note, "chat template does not parse") || !strings.Contains(f.Note, "uses the "+f.Name+" format") {
			t.Errorf("template %q: note %q", tpl, f.Note)
		}
	}
	if f := formatFor("", "", ""); f.Note != "" {
		t.Errorf("no template: note %q", f.Note)
	}
}

// TestHarmonyFormat: gpt-oss's real template is rendered (with the date
// strftime_now prints) and recognised as harmony, whose replies stop at
// <|return|> or <|call|> and show only the final channel.
func TestHarmonyFormat(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "chat", "testdata", "gpt-oss.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	f := formatFor(string(src), "<|startoftext|>", "<|return|>")
	f.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	if f.Name != "jinja" || !f.Harmony || !slices.Equal(f.Stop, []string{"<|return|>", "<|call|>"}) {
		t.Fatalf("format %s, harmony %v, stops %q", f.Name, f.Harmony, f.Stop)
	}
	got, err := f.render([]Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello"}, {Role: "user", Content: "Bye"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2026-01-02\n\nReasoning: medium\n\n" +
		"# Valid channels: analysis, commentary, final. Channel must be included for every message.\nCalls to these tools must go to the commentary channel: 'functions'.<|end|>" +
		"<|start|>developer<|message|># Instructions\n\nBe brief.<|end|><|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>final<|message|>Hello<|end|>" +
		"<|start|>user<|message|>Bye<|end|><|start|>assistant"
	if got != want {
		t.Fatalf("render\n%q\nwant\n%q", got, want)
	}
	// The fallback when a harmony template does not parse.
	fb := formatFor("{% broken %}<|channel|>", "", "")
	if got, _ := fb.render([]Message{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Yo"}, {Role: "user", Content: "Bye"}}); fb.Name != "harmony" || !fb.Harmony ||
		got != "<|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>final<|message|>Yo<|end|><|start|>user<|message|>Bye<|end|><|start|>assistant" {
		t.Errorf("fallback %s: %q", fb.Name, got)
	}
}
