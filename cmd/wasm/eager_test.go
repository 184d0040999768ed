package main

import (
	"context"
	"errors"
	"testing"
)

// countSource answers every read with its file's name and counts them.
type countSource struct{ reads int }

func (s *countSource) Read(_ context.Context, file string, _, _ int64) ([]byte, error) {
	s.reads++
	if file == "" {
		return nil, errors.New("no file")
	}
	return []byte(file), nil
}

// TestMemSourceHandOver: a span held in memory is served from it, again
// and again until handOverReads; after it, a read gives the span away and
// the next read of it goes to the source.
func TestMemSourceHandOver(t *testing.T) {
	src := &countSource{}
	held := []byte("held")
	m := &memSource{src: src, m: map[span][]byte{{"a", 0, 4}: held}}
	ctx := context.Background()
	for _, step := range []struct {
		handOver bool
		want     string
		reads    int // of src, so far
	}{
		{false, "held", 0},
		{false, "held", 0},
		{true, "held", 0},
		{true, "a", 1},
	} {
		if step.handOver {
			m.handOverReads()
		}
		b, err := m.Read(ctx, "a", 0, 4)
		if err != nil || string(b) != step.want || src.reads != step.reads {
			t.Fatalf("hand over %v: read %q, %v, %d source reads; want %q and %d", step.handOver, b, err, src.reads, step.want, step.reads)
		}
	}
	if len(m.m) != 0 {
		t.Errorf("%d spans still held after their read was handed over", len(m.m))
	}
}
