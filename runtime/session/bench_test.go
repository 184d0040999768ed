package session_test

import (
	"testing"
	"time"

	"github.com/moderuntime/mode/runtime/session"
)

// BenchmarkTurn5 times the first token of a conversation's fifth turn on
// stories260K: "reuse" with the first four turns in the KV cache (the new
// message is prefilled), "fresh" from an empty one (the whole
// conversation is). "reuse" reports its speedup over "fresh" when both run.
func BenchmarkTurn5(b *testing.B) {
	ld := stories(b)
	s := newSession(b, ld, 512, 0)
	msgs, cs := converse(b, s, "", 4, 40)
	turn4 := greedy(msgs[:len(msgs)-1], 40)
	turn5 := greedy(append(msgs, session.Message{Role: "user", Content: questions[4]}), 1)
	var fresh time.Duration // per op, once "fresh" ran
	b.Run("fresh", func(b *testing.B) {
		var prefilled int
		for b.Loop() {
			s.Reset()
			prefilled = chat(b, s, turn5).Usage.PrefilledTokens
		}
		fresh = b.Elapsed() / time.Duration(b.N)
		b.ReportMetric(float64(prefilled), "prefilled/op")
	})
	b.Run("reuse", func(b *testing.B) {
		var prefilled int
		for b.Loop() {
			// Back to the cache after turn 4: its prompt and reply.
			b.StopTimer()
			if c := chat(b, s, turn4); len(c.Choices[0].TokenIDs) != len(cs[3].Choices[0].TokenIDs) {
				b.Fatalf("turn 4 again: %d ids, first time %d", len(c.Choices[0].TokenIDs), len(cs[3].Choices[0].TokenIDs))
			}
			b.StartTimer()
			prefilled = chat(b, s, turn5).Usage.PrefilledTokens
		}
		b.ReportMetric(float64(prefilled), "prefilled/op")
		if fresh > 0 {
			b.ReportMetric(float64(fresh)/float64(b.Elapsed()/time.Duration(b.N)), "x-faster")
		}
	})
}
