package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/moderuntime/mode/modelpack/synth"
	"github.com/moderuntime/mode/runtime/cpu"
	chatsession "github.com/moderuntime/mode/runtime/session"
)

// memPeer is a cpu.Peer in this process, as the browser's worker would be.
type memPeer struct {
	s      *cpu.PeerServer
	answer []byte
	err    error
	dead   bool
}

func (p *memPeer) Send(parts ...[]byte) error {
	a, err := p.s.Handle(bytes.Join(parts, nil))
	if a != nil || err != nil {
		p.answer, p.err = a, err
	}
	return nil
}

func (p *memPeer) Wait() ([]byte, error) {
	if p.dead {
		return nil, errors.New("did not answer in 60 s")
	}
	return p.answer, p.err
}

// TestSessionWorkers: a session whose platform gives it a peer splits
// routed experts with it, says so in the load result and stats, generates
// what one worker generates, stops the peer at unload, and fails a
// generation with worker_failed when the peer stops answering.
func TestSessionWorkers(t *testing.T) {
	o := synth.Default("olmoe")
	o.Dim, o.FFN = 256, 512 // experts large enough to split (cpu's minSplit)
	url, _ := servePackOf(t, o)
	gen := map[string]any{"prompt": "the cat sat", "temperature": 0, "max_tokens": 8, "return_token_ids": true}
	complete := func(s *session) ([]int, *errorMsg) {
		res, e, _, _ := call(s, "complete", gen)
		if e != nil {
			return nil, e
		}
		var c chatsession.Completion
		if err := json.Unmarshal(res, &c); err != nil {
			t.Fatal(err)
		}
		return c.Choices[0].TokenIDs, nil
	}

	one := newSession(env{})
	res, e, _, _ := call(one, "load", loadParams{Model: url, Cache: "none"})
	if e != nil {
		t.Fatal(e)
	}
	var lr loadResult
	if err := json.Unmarshal(res, &lr); err != nil || lr.Workers != 1 {
		t.Errorf("without peers: load result %s (%v), want 1 worker", res, err)
	}
	want, e := complete(one)
	if e != nil {
		t.Fatal(e)
	}
	one.unload()

	var peer *memPeer
	stopped, asked := 0, -1
	two := newSession(env{peers: func(_ context.Context, n, answerBytes int) ([]cpu.Peer, string, func()) {
		asked = n
		srv, err := cpu.NewServer(cpu.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		peer = &memPeer{s: srv}
		return []cpu.Peer{peer}, "2 workers, for the test", func() { stopped++ }
	}})
	if _, e, _, _ := call(two, "load", loadParams{Model: url, Cache: "none", Workers: -1}); e == nil || e.Code != "bad_request" {
		t.Errorf("workers -1: error %+v, want bad_request", e)
	}
	res, e, _, _ = call(two, "load", loadParams{Model: url, Cache: "none", Workers: 2})
	if e != nil {
		t.Fatal(e)
	}
	if err := json.Unmarshal(res, &lr); err != nil || lr.Workers != 2 || lr.WorkersNote != "2 workers, for the test" || asked != 2 {
		t.Errorf("with a peer: load result %s (%v; asked for %d), want 2 workers and the platform's note", res, err, asked)
	}
	got, e := complete(two)
	if e != nil {
		t.Fatal(e)
	}
	if !slices.Equal(got, want) {
		t.Errorf("2 workers generated %v, 1 worker %v", got, want)
	}
	if st := two.stats(); st.Workers != 2 || st.ExpertsSplit == 0 {
		t.Errorf("stats: %d workers, %d experts split; want 2 and some", st.Workers, st.ExpertsSplit)
	}
	if n, _ := peer.s.Shares(); n == 0 {
		t.Error("the peer holds no shares")
	}
	peer.dead = true
	if _, e := complete(two); e == nil || e.Code != "worker_failed" || !strings.Contains(e.Message, "expert worker 1") {
		t.Errorf("a peer that stopped answering: error %+v, want worker_failed naming it", e)
	}
	two.unload()
	if stopped != 1 {
		t.Errorf("the peers were stopped %d times at unload, want once", stopped)
	}
}
