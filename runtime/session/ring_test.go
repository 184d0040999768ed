package session_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/moderuntime/mode/modelpack/load"
	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
	"github.com/moderuntime/mode/runtime/session"
)

// TestRingReuse: with a sliding-window model whose rings are small (window
// 8, batches of 4: 11 positions), a follow-up whose common prefix the ring
// no longer covers is prefilled from the start, and one it does cover is
// reused; both reply as a fresh session does.
func TestRingReuse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if err := synth.Write(dir, synth.Default("gpt_oss")); err != nil {
		t.Fatal(err)
	}
	ld, err := load.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	mk := func() (*session.Session, *engine.Engine) {
		e, err := engine.New(cpu.New(cpu.Options{Threads: 1}), ld.Model, engine.Options{MaxSeq: 200, MaxBatch: 4})
		if err != nil {
			t.Fatal(err)
		}
		s, err := session.New(e, session.Options{Tokenizer: ld.Tokenizer, AddBOS: ld.AddBOS, ChatTemplate: ld.ChatTemplate, Model: "gpt_oss"})
		if err != nil {
			t.Fatal(err)
		}
		return s, e
	}
	first := []session.Message{{Role: "user", Content: "Once upon a time there was a little cat who liked the sun."}}
	// The first reply is long (20 tokens, past the ring) or short (2,
	// within it).
	for _, tt := range []struct {
		name      string
		firstLen  int
		next      func(reply string) []session.Message
		wantReuse bool
	}{
		{"edit the first message", 20, func(string) []session.Message {
			return []session.Message{{Role: "user", Content: "Once upon a time there was a big dog."}}
		}, false},
		{"regenerate after a long reply", 20, func(string) []session.Message { return first }, false},
		{"regenerate after a short reply", 2, func(string) []session.Message { return first }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, e := mk()
			c := chat(t, s, greedy(first, tt.firstLen))
			req := greedy(tt.next(c.Choices[0].Message.Content), 20)
			got := chat(t, s, req)
			cached := got.Usage.PromptDetails.CachedTokens
			if tt.wantReuse != (cached > 0) {
				t.Errorf("%d prompt ids reused (context was at %d)", cached, e.Pos())
			}
			fresh, _ := mk()
			want := chat(t, fresh, req)
			if !slices.Equal(got.Choices[0].TokenIDs, want.Choices[0].TokenIDs) {
				t.Errorf("reply %v, a fresh session's %v", got.Choices[0].TokenIDs, want.Choices[0].TokenIDs)
			}
			t.Logf("reused %d of %d prompt ids", cached, got.Usage.Prompt)
		})
	}
}
