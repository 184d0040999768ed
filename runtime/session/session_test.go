package session_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/internal/shared"
	"github.com/moderuntime/mode/modelpack/load"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/session"
)

// stories loads stories260K (a llama2.c model without a chat template, so
// chat uses the plain "Role: text" format).
func stories(tb testing.TB) *load.Loaded {
	tb.Helper()
	ld, err := load.Open(filepath.Join(shared.Models(tb), "stories260K", "stories260K.bin"), "")
	if err != nil {
		tb.Fatal(err)
	}
	return ld
}

// newSession runs ld on a fresh CPU engine whose context holds maxSeq
// tokens.
func newSession(tb testing.TB, ld *load.Loaded, maxSeq int, seed uint64) *session.Session {
	tb.Helper()
	e, err := engine.New(cpu.New(cpu.Options{Threads: 1}), ld.Model, engine.Options{MaxSeq: maxSeq})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := session.New(e, session.Options{Tokenizer: ld.Tokenizer, AddBOS: ld.AddBOS, ChatTemplate: ld.ChatTemplate, Model: "stories260K", Seed: seed})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// greedy is a chat request for msgs at temperature 0 with the ids returned.
func greedy(msgs []session.Message, maxTokens int) session.Request {
	return session.Request{Messages: slices.Clone(msgs), Temperature: ptr(0.0), MaxTokens: maxTokens, ReturnTokenIDs: true}
}

func chat(tb testing.TB, s *session.Session, r session.Request) *session.Completion {
	tb.Helper()
	c, err := s.Chat(context.Background(), r, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

var questions = []string{
	"Tell me a story about a cat.", "What did the cat eat?", "Who was her friend?", "Where did they go?",
	"What happened at the park?", "Was the dog happy?", "What did mom say?", "Did they find the ball?",
	"How did the day end?", "What is the moral?",
}

// converse runs turns user questions greedily, appending each reply, and
// returns the messages (ending with the last reply) and the completions.
func converse(tb testing.TB, s *session.Session, system string, turns, maxTokens int) ([]session.Message, []*session.Completion) {
	tb.Helper()
	var msgs []session.Message
	if system != "" {
		msgs = append(msgs, session.Message{Role: "system", Content: system})
	}
	var cs []*session.Completion
	for i := range turns {
		msgs = append(msgs, session.Message{Role: "user", Content: questions[i%len(questions)]})
		c := chat(tb, s, greedy(msgs, maxTokens))
		cs = append(cs, c)
		msgs = append(msgs, *c.Choices[0].Message)
	}
	return msgs, cs
}

// TestConversationOverflow: ten turns in a context of 128 tokens pass it;
// the session leaves out the oldest turns, says so, keeps the system
// prompt and answers every turn.
func TestConversationOverflow(t *testing.T) {
	ld := stories(t)
	s := newSession(t, ld, 128, 0)
	const system = "You tell short stories."
	msgs, cs := converse(t, s, system, 10, 24)
	dropping := 0
	for i, c := range cs {
		u := c.Usage
		if c.PromptTokenIDs[0] != ld.Model.Config.BOS {
			t.Fatalf("turn %d: the prompt %v does not start with BOS", i+1, c.PromptTokenIDs)
		}
		prompt := strings.TrimPrefix(ld.Tokenizer.Decode(c.PromptTokenIDs[1:]), " ") // the space of SentencePiece's "▁System"
		// Every turn is answered, and one that left turns out left room
		// for the reply's 24 tokens.
		if u.Completion < 1 || (c.DroppedMessages > 0 && u.Prompt+24 > 128) {
			t.Errorf("turn %d: %d prompt tokens, %d completion tokens, %d messages dropped", i+1, u.Prompt, u.Completion, c.DroppedMessages)
		}
		if !strings.HasPrefix(prompt, "System: "+system+"\nUser: ") {
			t.Errorf("turn %d: the prompt does not start with the system prompt: %q", i+1, prompt)
		}
		// The turn's messages were system, then 2i+1 conversation
		// messages; the first DroppedMessages of those are left out.
		conv := msgs[1 : 2*i+2]
		for j, m := range conv {
			if m.Role != "user" {
				continue // greedy replies repeat themselves; the questions differ
			}
			in := strings.Contains(prompt, "User: "+m.Content+"\n")
			if want := j >= c.DroppedMessages; in != want {
				t.Errorf("turn %d: message %d (%s %q) in the prompt: %v, want %v", i+1, j, m.Role, m.Content, in, want)
			}
		}
		if c.DroppedMessages > 0 {
			dropping++
			if c.DroppedMessages%2 != 0 || !strings.Contains(c.Note, fmt.Sprintf("%d oldest messages were left out", c.DroppedMessages)) {
				t.Errorf("turn %d: %d dropped (want whole turns), note %q", i+1, c.DroppedMessages, c.Note)
			}
		}
	}
	if dropping == 0 {
		t.Fatal("ten turns never passed the context of 128: the test does not exercise overflow")
	}
	t.Logf("%d of 10 turns left out old turns; the last prompt: %d tokens, %d dropped", dropping, cs[9].Usage.Prompt, cs[9].DroppedMessages)
}

// TestReuse: a follow-up, a regenerated reply and an edited last message
// prefill only what differs from the cached conversation, and greedy
// decoding then gives the ids a fresh session gives for the whole prompt
// (the check that the reused keys and values are right).
func TestReuse(t *testing.T) {
	ld := stories(t)
	tests := []struct {
		name string
		// next turns the conversation of four turns (ending with the
		// fourth reply) into the fifth request's messages.
		next func(msgs []session.Message) []session.Message
		// minReused is how many ids of the cache must at least be
		// reused, given the four turns' completions.
		minReused func(before []int, cs []*session.Completion) int
	}{
		{"turn 5", func(msgs []session.Message) []session.Message {
			return append(msgs, session.Message{Role: "user", Content: questions[4]})
		}, func(before []int, _ []*session.Completion) int {
			return len(before) // the whole cache: the reply renders as it was generated
		}},
		{"regenerate", func(msgs []session.Message) []session.Message {
			return msgs[:len(msgs)-1]
		}, func(_ []int, cs []*session.Completion) int {
			return len(cs[3].PromptTokenIDs) - 1 // all but the id whose logits start the reply
		}},
		{"edit the last message", func(msgs []session.Message) []session.Message {
			msgs = slices.Clone(msgs[:len(msgs)-1])
			msgs[len(msgs)-1].Content = "Where did the cat sleep?"
			return msgs
		}, func(_ []int, cs []*session.Completion) int {
			return len(cs[2].PromptTokenIDs) + len(cs[2].Choices[0].TokenIDs) - 1 // the turns before it
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, ld, 512, 0)
			msgs, cs := converse(t, s, "", 4, 40)
			before := s.Cached()
			prev := cs[len(cs)-1]
			// The cache holds the previous prompt and reply.
			fed := append(slices.Clone(prev.PromptTokenIDs), prev.Choices[0].TokenIDs...)
			if len(before) < len(fed)-1 || !slices.Equal(before, fed[:len(before)]) {
				t.Fatalf("cache %v, want the last prompt and reply %v", before, fed)
			}
			req := greedy(tt.next(msgs), 40)
			got := chat(t, s, req)
			ids := got.PromptTokenIDs
			lcp := 0
			for lcp < len(ids)-1 && lcp < len(before) && before[lcp] == ids[lcp] {
				lcp++
			}
			u := got.Usage
			if u.PromptDetails.CachedTokens != lcp || u.PrefilledTokens != u.Prompt-lcp || u.Prompt != len(ids) {
				t.Errorf("usage %+v (cached %d); want %d of %d prompt ids reused", u, u.PromptDetails.CachedTokens, lcp, len(ids))
			}
			if want := tt.minReused(before, cs); lcp < want {
				t.Errorf("reused %d ids, want at least %d", lcp, want)
			}
			fresh := chat(t, newSession(t, ld, 512, 0), req)
			if fresh.Usage.PromptDetails.CachedTokens != 0 || !slices.Equal(fresh.PromptTokenIDs, ids) {
				t.Fatalf("fresh session: %d cached ids, prompt %v; want 0 and %v", fresh.Usage.PromptDetails.CachedTokens, fresh.PromptTokenIDs, ids)
			}
			if g, w := got.Choices[0].TokenIDs, fresh.Choices[0].TokenIDs; !slices.Equal(g, w) {
				t.Errorf("generated with reuse %v\nfresh session      %v", g, w)
			}
			t.Logf("prompt %d ids: reused %d, prefilled %d; the cache held %d (previous prompt %d, reply %d)", u.Prompt, lcp, u.PrefilledTokens, len(before), len(prev.PromptTokenIDs), len(prev.Choices[0].TokenIDs))
		})
	}
}

// TestSeeds: an explicit seed repeats a sampled reply; without one, a
// regenerated reply at temperature 1 is new, and a session with the same
// base seed draws the same sequence of replies.
func TestSeeds(t *testing.T) {
	ld := stories(t)
	msgs := []session.Message{{Role: "user", Content: questions[0]}}
	sampled := func(s *session.Session, seed *uint64) *session.Completion {
		return chat(t, s, session.Request{Messages: msgs, Temperature: ptr(1.0), MaxTokens: 30, Seed: seed})
	}
	text := func(c *session.Completion) string { return c.Choices[0].Message.Content }
	s := newSession(t, ld, 512, 42)
	a, b := sampled(s, ptr[uint64](7)), sampled(s, ptr[uint64](7))
	if text(a) != text(b) || *a.Seed != 7 {
		t.Errorf("seed 7 twice: %q, then %q (seed %d)", text(a), text(b), *a.Seed)
	}
	first, again := sampled(s, nil), sampled(s, nil)
	if text(first) == text(again) || *first.Seed == *again.Seed {
		t.Errorf("regenerated without a seed: the same reply %q (seeds %d, %d)", text(first), *first.Seed, *again.Seed)
	}
	if *first.Seed != 42 {
		t.Errorf("the session's first drawn seed is %d, want its base seed 42", *first.Seed)
	}
	s2 := newSession(t, ld, 512, 42)
	if c := sampled(s2, nil); text(c) != text(first) {
		t.Errorf("a session with the same base seed: %q, want %q", text(c), text(first))
	}
	g := chat(t, s2, session.Request{Messages: msgs, Temperature: ptr(0.0), MaxTokens: 5})
	if g.Seed != nil {
		t.Errorf("greedy reply reports seed %d", *g.Seed)
	}
}

func TestRequestErrors(t *testing.T) {
	ld := stories(t)
	s := newSession(t, ld, 64, 0)
	user := []session.Message{{Role: "user", Content: "Hi"}}
	long := []session.Message{{Role: "system", Content: "Be kind."}, {Role: "user", Content: strings.Repeat("The cat sat on the mat. ", 20)}}
	tests := []struct {
		name string
		chat bool
		r    session.Request
		want string
	}{
		{"negative max_tokens", true, session.Request{Messages: user, MaxTokens: -1}, "max_tokens is -1"},
		{"negative temperature", true, session.Request{Messages: user, Temperature: ptr(-1.0)}, "Temperature"},
		{"no messages", true, session.Request{}, "messages is empty"},
		{"unknown role", true, session.Request{Messages: []session.Message{{Role: "robot", Content: "x"}}}, `role is "robot"`},
		{"last message passes the context", true, session.Request{Messages: long}, "shorten them"},
		{"no prompt", false, session.Request{}, "prompt is missing"},
		{"prompt passes the context", false, session.Request{Prompt: ptr(strings.Repeat("The cat sat. ", 30))}, "shorten it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := s.Complete
			if tt.chat {
				run = s.Chat
			}
			_, err := run(context.Background(), tt.r, nil)
			var se *session.Error
			if !errors.As(err, &se) || se.Code != session.CodeBadRequest || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want a bad_request mentioning %q", err, tt.want)
			}
		})
	}
}

// TestStreamAndClamp: streamed chunks add up to the reply, the last chunk
// carries the usage, and max_tokens beyond the context is clamped with a
// note.
func TestStreamAndClamp(t *testing.T) {
	ld := stories(t)
	s := newSession(t, ld, 64, 0)
	r := session.Request{Prompt: ptr("Once upon a time"), Temperature: ptr(0.0), MaxTokens: 100, Stream: true}
	var streamed strings.Builder
	var last *session.Completion
	c, err := s.Complete(context.Background(), r, func(c *session.Completion) {
		streamed.WriteString(*c.Choices[0].Text)
		last = c
	})
	if err != nil {
		t.Fatal(err)
	}
	if streamed.String() != *c.Choices[0].Text || last.Usage == nil || *last.Choices[0].FinishReason != "length" {
		t.Errorf("streamed %q, whole %q; last chunk %+v", streamed.String(), *c.Choices[0].Text, last)
	}
	if room := 64 - c.Usage.Prompt; c.Usage.Completion != room || !strings.Contains(c.Note, fmt.Sprintf("max_tokens 100 was clamped to the %d tokens", room)) {
		t.Errorf("%d completion tokens, note %q; want %d and a note on clamping", c.Usage.Completion, c.Note, room)
	}
}
