package engine_test

import (
	"context"
	"slices"
	"testing"

	"github.com/moderuntime/mode/internal/testmodel"
	"github.com/moderuntime/mode/runtime/cpu"
	"github.com/moderuntime/mode/runtime/engine"
)

// TestTruncate: after Truncate(n), forwarding more ids gives the logits a
// fresh engine gives for the first n ids followed by them, so the cache of
// a shared prefix can be reused.
func TestTruncate(t *testing.T) {
	m := testmodel.Random(family("olmoe", false), 3)
	tests := []struct {
		name       string
		fed        []int // forwarded first
		keep       int   // Truncate to this
		then, want []int // then forwarded; want is the fresh engine's input
	}{
		{"rewind into the prompt", []int{0, 5, 17, 42, 3, 9}, 3, []int{8, 8}, []int{0, 5, 17, 8, 8}},
		{"keep everything", []int{0, 5, 17}, 3, []int{4}, []int{0, 5, 17, 4}},
		{"keep nothing", []int{0, 5, 17}, 0, []int{1, 2}, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := engine.New(cpu.New(cpu.Options{Threads: 1}), m, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Forward(context.Background(), tt.fed); err != nil {
				t.Fatal(err)
			}
			if err := e.Truncate(tt.keep); err != nil {
				t.Fatal(err)
			}
			got, err := e.Forward(context.Background(), tt.then)
			if err != nil {
				t.Fatal(err)
			}
			got = slices.Clone(got)
			if e.Pos() != len(tt.want) {
				t.Errorf("position %d, want %d", e.Pos(), len(tt.want))
			}
			fresh, err := engine.New(cpu.New(cpu.Options{Threads: 1}), m, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			want, err := fresh.Forward(context.Background(), tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("logits after truncating differ from a fresh engine's: %v vs %v", got[:4], want[:4])
			}
		})
	}
	e, err := engine.New(cpu.New(cpu.Options{Threads: 1}), m, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Forward(context.Background(), []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{-1, 3} {
		if err := e.Truncate(n); err == nil {
			t.Errorf("Truncate(%d) of 2 tokens: no error", n)
		}
	}
}
