//go:build !wasip1 && !js

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Expert peers under wazero. A wasip1 guest runs on one thread, so the
// host gives `mode run --wasm --threads N` N-1 more guests of the same
// module, each in its own wazero runtime and goroutine, running as an
// expert peer (runtime/cpu's PeerServer, guest side in peers_wasip1.go):
// what web/worker.js does with Web Workers in the browser. The guests'
// memories are apart, so the host carries the messages: the main guest's
// modepeer.send copies a message out of its memory onto a channel, the
// peer's modepeer.next and take copy it into its own; answers come back
// the same way. A peer that fails or exits, and one that does not answer
// within peerTimeout, is an error the main guest's engine reports
// (cpu.Backend.PeerErr), never a hang.

// peerTimeout is how long the main guest waits for a peer's answer to
// one layer, or for room to send it a message: far beyond any layer's
// compute, short enough that a stalled peer is an error.
var peerTimeout = 60 * time.Second

// peerQueue is how many messages may wait for a peer: the main guest
// sends a layer's experts' shares before its request, and goes on while
// the peer adopts them.
const peerQueue = 64

// peerSpin is how long a guest that waits for the other side (the main
// guest for an answer, a peer for its next message) polls before it
// blocks: 1 ms, or MODE_WASM_PEER_SPIN's duration (0 blocks at once).
// A blocked goroutine is woken by another thread, and on this project's
// 2-vCPU machine that wake-up cost each decode layer tens of µs on either
// side: polling took two guests' decode from 176 to 256 tok/s on a quiet
// machine, for about a tenth more CPU per decoded token (RATIONALE.md,
// "More than one core").
func peerSpin() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("MODE_WASM_PEER_SPIN")); err == nil {
		return d
	}
	return time.Millisecond
}

// recvSpin receives from c if a message comes within spin, polling.
// It gives the CPU away between polls (Go's scheduler, then the OS's), so
// that on a busy machine a poll does not hold a CPU the other guest is
// waiting for: without that, polling cost a fifth of decode under two
// other sessions' load, with it a tenth. With one Go thread there is
// nothing to poll for (the other side needs it to run), so it does not.
func recvSpin(c chan []byte, spin time.Duration) ([]byte, bool) {
	if spin <= 0 || goruntime.GOMAXPROCS(0) < 2 {
		return nil, false
	}
	start := time.Now()
	for i := 1; ; i++ {
		select {
		case m := <-c:
			return m, true
		default:
		}
		if i%64 == 0 {
			if time.Since(start) > spin {
				return nil, false
			}
			goruntime.Gosched()
			osYield()
		}
	}
}

// peerLink is the channel pair between the main guest and one peer.
type peerLink struct {
	msgs    chan []byte // main → peer
	answers chan []byte // peer → main, one per request
	quit    chan struct{}
	// dead is closed once the peer has failed or exited; err says why.
	dead     chan struct{}
	deadOnce sync.Once
	err      error
	// spin is how long either side polls before it blocks (peerSpin).
	spin time.Duration
}

func newPeerLink() *peerLink {
	return &peerLink{msgs: make(chan []byte, peerQueue), answers: make(chan []byte, 1),
		quit: make(chan struct{}), dead: make(chan struct{}), spin: peerSpin()}
}

// die records the peer's first failure.
func (l *peerLink) die(err error) {
	l.deadOnce.Do(func() {
		l.err = err
		close(l.dead)
	})
}

// mainPeers is the main guest's side of the modepeer imports.
type mainPeers struct {
	links   []*peerLink
	parts   [][]byte // each peer's message being assembled
	pending []byte   // what take copies out: an answer or an error's text
}

// peerSide is a peer guest's side of the modepeer imports.
type peerSide struct {
	link    *peerLink
	pending []byte
}

// peerModule instantiates the "modepeer" host module in rt: main's
// functions when main is non-nil, else peer's; the others answer that
// they do not belong to this guest's role.
func peerModule(ctx context.Context, rt wazero.Runtime, main *mainPeers, peer *peerSide) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	fn := func(f api.GoModuleFunc, params, results []api.ValueType) func(wazero.HostModuleBuilder, string) wazero.HostModuleBuilder {
		return func(b wazero.HostModuleBuilder, name string) wazero.HostModuleBuilder {
			return b.NewFunctionBuilder().WithGoModuleFunction(f, params, results).Export(name)
		}
	}
	wrong := func(ctx context.Context, m api.Module, stack []uint64) {
		panic("modepeer: a function of the other role")
	}
	b := rt.NewHostModuleBuilder("modepeer")
	var count, send, wait, take, next, answer api.GoModuleFunc = wrong, wrong, wrong, wrong, wrong, wrong
	if main != nil {
		count, send, wait, take = main.count, main.send, main.wait, main.take
	} else {
		take, next, answer = peer.take, peer.next, peer.answer
	}
	for _, f := range []struct {
		name string
		add  func(wazero.HostModuleBuilder, string) wazero.HostModuleBuilder
	}{
		{"count", fn(count, nil, []api.ValueType{i32})},
		{"send", fn(send, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i64})},
		{"wait", fn(wait, []api.ValueType{i32}, []api.ValueType{i64})},
		{"take", fn(take, []api.ValueType{i32, i32}, nil)},
		{"next", fn(next, []api.ValueType{i32}, []api.ValueType{i64})},
		{"answer", fn(answer, []api.ValueType{i32, i32, i32}, nil)},
	} {
		b = f.add(b, f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// errResult leaves err's text pending and returns minus its length.
func errResult(pending *[]byte, err error) int64 {
	msg := err.Error()
	if msg == "" {
		msg = "error"
	}
	*pending = []byte(msg)
	return -int64(len(msg))
}

func (h *mainPeers) count(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = api.EncodeI32(int32(len(h.links)))
}

func (h *mainPeers) link(k uint32) (*peerLink, error) {
	if int(k) >= len(h.links) {
		return nil, fmt.Errorf("no expert peer %d", k)
	}
	return h.links[k], nil
}

// send(k, p, n, last) appends the n bytes at p to the message for peer k,
// and posts it when last is 1; 0, or minus an error's length.
func (h *mainPeers) send(_ context.Context, m api.Module, stack []uint64) {
	k, p, n, last := api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	stack[0] = uint64(h.sendPart(m, k, p, n, last == 1))
}

func (h *mainPeers) sendPart(m api.Module, k, p, n uint32, last bool) int64 {
	l, err := h.link(k)
	if err != nil {
		return errResult(&h.pending, err)
	}
	b, ok := m.Memory().Read(p, n)
	if !ok {
		return errResult(&h.pending, errors.New("a message outside guest memory"))
	}
	h.parts[k] = append(h.parts[k], b...)
	if !last {
		return 0
	}
	msg := h.parts[k]
	h.parts[k] = nil // the peer owns msg now
	select {
	case <-l.dead: // first: a dead peer's queue may still have room
		return errResult(&h.pending, l.err)
	default:
	}
	t := time.NewTimer(peerTimeout)
	defer t.Stop()
	select {
	case l.msgs <- msg:
		return 0
	case <-l.dead:
		return errResult(&h.pending, l.err)
	case <-t.C:
		return errResult(&h.pending, fmt.Errorf("took no message in %v", peerTimeout))
	}
}

// wait(k) blocks for peer k's answer to the last request: its length, or
// minus an error's; take copies it out.
func (h *mainPeers) wait(_ context.Context, _ api.Module, stack []uint64) {
	l, err := h.link(api.DecodeU32(stack[0]))
	if err != nil {
		stack[0] = uint64(errResult(&h.pending, err))
		return
	}
	if a, ok := recvSpin(l.answers, l.spin); ok {
		h.pending = a
		stack[0] = uint64(len(a))
		return
	}
	t := time.NewTimer(peerTimeout)
	defer t.Stop()
	select {
	case a := <-l.answers:
		h.pending = a
		stack[0] = uint64(len(a))
	case <-l.dead:
		stack[0] = uint64(errResult(&h.pending, l.err))
	case <-t.C:
		stack[0] = uint64(errResult(&h.pending, fmt.Errorf("did not answer in %v", peerTimeout)))
	}
}

// take(k, p) copies what is pending to p.
func (h *mainPeers) take(_ context.Context, m api.Module, stack []uint64) {
	m.Memory().Write(api.DecodeU32(stack[1]), h.pending)
	h.pending = nil
}

// next(op) blocks for the next message: its length, its first byte
// written at op; -1 once the main guest is done.
func (h *peerSide) next(_ context.Context, m api.Module, stack []uint64) {
	op := api.DecodeU32(stack[0])
	msg, ok := recvSpin(h.link.msgs, h.link.spin)
	if !ok {
		select {
		case msg = <-h.link.msgs:
		case <-h.link.quit:
			stack[0] = api.EncodeI64(-1)
			return
		}
	}
	h.pending = msg
	var first byte
	if len(msg) > 0 {
		first = msg[0]
	}
	m.Memory().WriteByte(op, first)
	stack[0] = uint64(len(msg))
}

func (h *peerSide) take(_ context.Context, m api.Module, stack []uint64) {
	m.Memory().Write(api.DecodeU32(stack[1]), h.pending)
	h.pending = nil
}

// answer(p, n, failed) hands the main guest the n bytes at p: the answer
// to its request, or with failed 1 why the peer stops.
func (h *peerSide) answer(_ context.Context, m api.Module, stack []uint64) {
	p, n, failed := api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2])
	b, ok := m.Memory().Read(p, n)
	if !ok {
		h.link.die(errors.New("answered from outside its memory"))
		return
	}
	b = append([]byte(nil), b...) // the guest reuses its answer buffer
	if failed == 1 {
		h.link.die(errors.New(string(b)))
		return
	}
	select {
	case h.link.answers <- b:
	default:
		h.link.die(errors.New("answered a request twice"))
	}
}
