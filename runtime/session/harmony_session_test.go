package session_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/session"
	"github.com/moderuntime/mode/runtime/tensor"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

// harmonyPieces is the vocabulary of a model that answers in harmony:
// every piece is one added token, and the model (see scriptModel) maps
// each token to the next one in replies, so greedy decoding writes
// exactly reply.
var harmonyPieces = []string{
	"<|start|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>", "user", "system", "Hi", "assistant",
	"<|channel|>analysis<|message|>", "Think", " more", "<|end|><|start|>assistant<|channel|>final<|message|>", "Answer", ".",
}

var reply = []string{"<|channel|>analysis<|message|>", "Think", " more", "<|end|><|start|>assistant<|channel|>final<|message|>", "Answer", ".", "<|return|>"}

func harmonyTokenizer(t *testing.T) tokenizer.Tokenizer {
	vocab := map[string]int{}
	var added []map[string]any
	for i, p := range harmonyPieces {
		vocab[p] = i
		added = append(added, map[string]any{"id": i, "content": p, "special": strings.HasPrefix(p, "<|")})
	}
	tj, _ := json.Marshal(map[string]any{"added_tokens": added, "decoder": map[string]any{"type": "Fuse"},
		"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": []any{}}})
	tok, err := tokenizer.LoadHF(tj, []byte(`{"eos_token": "<|return|>"}`))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// scriptModel is a one-layer model whose attention and FFN add nothing
// and whose output head maps token a to token next[a]: its greedy reply
// follows next whatever the context.
func scriptModel(t *testing.T, next map[int]int, eos int) *model.Model {
	v := len(harmonyPieces)
	c := model.Config{Arch: "llama", Dim: 16, Layers: 1, Heads: 1, KVHeads: 1, HeadDim: 16, Vocab: v, MaxSeq: 64,
		NormEps: 1e-5, RopeTheta: 10000, RopeStyle: model.RopeHalf, BOS: -1, EOS: []int{eos}, FFN: []model.FFN{{SharedWidths: []int{16}}}}
	w := model.Weights{}
	for _, sp := range c.Spec() {
		n := 1
		for _, d := range sp.Shape {
			n *= d
		}
		x := make([]float32, n)
		switch {
		case sp.Name == model.NameEmbed:
			for i := range v {
				x[i*c.Dim+i] = 1
			}
		case len(sp.Shape) == 1:
			for i := range x {
				x[i] = 1
			}
		case sp.Name == model.NameOutput:
			for a, b := range next {
				x[b*c.Dim+a] = 1
			}
		}
		w[sp.Name] = tensor.FromF32(sp.Name, sp.Shape, x)
	}
	return &model.Model{Config: c, Weights: w}
}

// TestHarmonyReply: with a harmony template, the session stops at
// <|return|>, shows only the final channel's text and returns the
// analysis as reasoning_content (streamed as reasoning deltas).
func TestHarmonyReply(t *testing.T) {
	tok := harmonyTokenizer(t)
	id := func(p string) int {
		for i, q := range harmonyPieces {
			if q == p {
				return i
			}
		}
		t.Fatalf("no piece %q", p)
		return -1
	}
	next := map[int]int{id("assistant"): id(reply[0])}
	for i := 0; i+1 < len(reply); i++ {
		next[id(reply[i])] = id(reply[i+1])
	}
	// <|return|> is not the model's EOS here: the format's stop must end
	// the reply; a further token would be "Hi".
	next[id("<|return|>")] = id("Hi")
	m := scriptModel(t, next, id("<|call|>"))
	e, err := engine.New(cpu.New(cpu.Options{Threads: 1}), m, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The marker <|channel|> makes it the harmony family.
	const tpl = `{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{% endfor %}<|start|>assistant{# <|channel|> #}`
	s, err := session.New(e, session.Options{Tokenizer: tok, ChatTemplate: tpl, Now: func() time.Time { return time.Unix(0, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	var shown, hidden strings.Builder
	c, err := s.Chat(context.Background(), session.Request{Messages: []session.Message{{Role: "user", Content: "Hi"}}, Temperature: new(0.0), MaxTokens: 20, Stream: true},
		func(c *session.Completion) {
			shown.WriteString(c.Choices[0].Delta.Content)
			hidden.WriteString(c.Choices[0].Delta.ReasoningContent)
		})
	if err != nil {
		t.Fatal(err)
	}
	msg := c.Choices[0].Message
	if msg.Content != "Answer." || msg.ReasoningContent != "Think more" || *c.Choices[0].FinishReason != "stop" {
		t.Fatalf("reply %q, reasoning %q, finish %s; want \"Answer.\", \"Think more\", stop", msg.Content, msg.ReasoningContent, *c.Choices[0].FinishReason)
	}
	if shown.String() != "Answer." || hidden.String() != "Think more" {
		t.Fatalf("streamed %q and reasoning %q", shown.String(), hidden.String())
	}
	if got := c.Usage.Completion; got != len(reply)-1 && got != len(reply) {
		t.Fatalf("%d completion tokens, want the reply's %d", got, len(reply))
	}
}
