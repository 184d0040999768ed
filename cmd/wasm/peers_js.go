//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"
	"time"

	"github.com/moderuntime/mode/runtime/cpu"
)

// peerTimeout is how long the main instance waits for a peer's answer to
// one layer before it gives up on it: far beyond any layer's compute (a
// prefill batch of the largest model takes seconds), short enough that a
// stalled worker is an error the page sees, not a hang.
const peerTimeout = 60 * time.Second

// jsPeer is one expert peer: a second mode.wasm in its own Web Worker,
// started by web/worker.js (modePeers), that runs a cpu.PeerServer.
// Messages go by postMessage; the answer comes back through a
// SharedArrayBuffer, which the main instance waits on with Atomics.wait,
// so it needs no event loop turn (and cannot miss a peer that died: the
// wait has a timeout).
type jsPeer struct {
	k      int
	ctl    js.Value // web/worker.js's modePeers
	answer []byte
}

func (p *jsPeer) Send(m []byte) error {
	u8 := js.Global().Get("Uint8Array").New(len(m))
	js.CopyBytesToJS(u8, m)
	if r := p.ctl.Call("send", p.k, u8); r.Truthy() {
		return errors.New(r.String())
	}
	return nil
}

func (p *jsPeer) Wait() ([]byte, error) {
	r := p.ctl.Call("wait", p.k, peerTimeout.Milliseconds())
	if r.Type() == js.TypeString {
		return nil, errors.New(r.String())
	}
	n := r.Int()
	if cap(p.answer) < n {
		p.answer = make([]byte, n)
	}
	p.answer = p.answer[:n]
	js.CopyBytesToGo(p.answer, p.ctl.Call("answer", p.k, n))
	return p.answer, nil
}

// startPeers asks web/worker.js for want-1 peer workers (want 0: its
// default) and returns them, what it said, and how to stop them.
func startPeers(ctx context.Context, want, answerBytes int) ([]cpu.Peer, string, func()) {
	ctl := js.Global().Get("modePeers")
	if ctl.IsUndefined() {
		return nil, "one worker: this host of mode.wasm starts no expert workers", nil
	}
	stop := func() { ctl.Call("stop") }
	v, err := await(ctx, ctl.Call("start", want, answerBytes))
	if err != nil {
		// Any that start after all are stopped with the model.
		return nil, fmt.Sprintf("one worker: starting expert workers failed: %v", err), stop
	}
	n, note := v.Get("workers").Int(), v.Get("note").String()
	var ps []cpu.Peer
	for k := range n - 1 {
		ps = append(ps, &jsPeer{k: k, ctl: ctl})
	}
	return ps, note, stop
}

// runPeer serves as an expert peer: web/worker.js hands each message from
// the main instance to the handler with the SharedArrayBuffer view the
// answer goes into; the handler returns the answer's length, -1 when the
// message has none, or an error's text.
func runPeer() {
	srv, err := cpu.NewServer(cpu.Options{Threads: 1})
	if err != nil {
		panic(err)
	}
	handle := js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 2 {
			return "a peer message needs its bytes and the answer's buffer"
		}
		msg := make([]byte, args[0].Get("length").Int())
		js.CopyBytesToGo(msg, args[0])
		a, err := srv.Handle(msg)
		switch {
		case err != nil:
			return err.Error()
		case a == nil:
			return -1
		}
		if out := args[1]; out.Get("length").Int() < len(a) {
			return fmt.Sprintf("an answer of %d bytes does not fit the %d-byte exchange buffer", len(a), out.Get("length").Int())
		}
		js.CopyBytesToJS(args[1], a)
		return len(a)
	})
	js.Global().Call("modePeerRegister", handle)
	select {}
}
