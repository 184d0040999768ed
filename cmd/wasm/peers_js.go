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
// one layer (or for it to take one chunk of a message) before it gives up
// on it: far beyond any layer's compute (a prefill batch of the largest
// model takes seconds), short enough that a stalled worker is an error
// the page sees, not a hang.
const peerTimeout = 60 * time.Second

// jsPeer is one expert peer: a second mode.wasm in its own Web Worker,
// started by web/worker.js (modePeers), that runs a cpu.PeerServer.
// Messages and answers both go through a SharedArrayBuffer, a message in
// chunks of at most its size; each side waits for the other with
// Atomics.wait on a control word (the main instance with a timeout), so
// an exchange needs no event loop turn on either side.
type jsPeer struct {
	k      int
	ctl    js.Value // web/worker.js's modePeers
	view   js.Value // a Uint8Array over the shared buffer
	size   int      // its length
	answer []byte
}

func (p *jsPeer) call(name string, args ...any) error {
	if r := p.ctl.Call(name, append([]any{p.k}, args...)...); r.Truthy() {
		return errors.New(r.String())
	}
	return nil
}

// Send copies the parts into the shared buffer, a chunk at a time: each
// chunk but the last waits for the peer to have taken the one before.
func (p *jsPeer) Send(parts ...[]byte) error {
	total := 0
	for _, m := range parts {
		total += len(m)
	}
	ms := peerTimeout.Milliseconds()
	if err := p.call("claim", ms); err != nil {
		return err
	}
	off := 0
	for _, m := range parts {
		for len(m) > 0 {
			if off == p.size {
				if err := p.call("send", off, total); err != nil {
					return err
				}
				if err := p.call("claim", ms); err != nil {
					return err
				}
				off = 0
			}
			n := min(len(m), p.size-off)
			// CopyBytesToJS copies to the start of its destination: a
			// request, in one part, needs no view of its own.
			dst := p.view
			if off > 0 {
				dst = p.view.Call("subarray", off, off+n)
			}
			js.CopyBytesToJS(dst, m[:n])
			off += n
			m = m[n:]
		}
	}
	return p.call("send", off, total)
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
	js.CopyBytesToGo(p.answer, p.view)
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
		view := ctl.Call("view", k)
		ps = append(ps, &jsPeer{k: k, ctl: ctl, view: view, size: view.Get("length").Int()})
	}
	if len(ps) > 0 {
		registerRoundTrips(ps[0])
	}
	return ps, note, stop
}

// registerRoundTrips sets self.modePeerRoundTrips(n, d), a diagnostic for
// benchmarks (run from DevTools in the engine worker while it is idle):
// n exchanges of one token of d values with no experts with peer p, and
// the milliseconds they took (or an error's text).
func registerRoundTrips(p cpu.Peer) {
	js.Global().Set("modePeerRoundTrips", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 2 {
			return "modePeerRoundTrips(n, d)"
		}
		start := time.Now()
		for range args[0].Int() {
			if err := cpu.PeerRoundTrip(p, args[1].Int()); err != nil {
				return err.Error()
			}
		}
		return float64(time.Since(start).Microseconds()) / 1000
	}))
}

// maxPeerMessage bounds a message's length as the peer reads it from the
// control word, and so what it allocates for one.
const maxPeerMessage = 1 << 30

// runPeer serves as an expert peer. Once web/worker.js has the shared
// buffers it starts this loop, which never returns to the event loop: it
// waits for a chunk of a message (modePeerLink.next, Atomics.wait),
// gathers the message, hands it to the server and puts the answer (or an
// error's text, after which every message answers that error) into the
// shared buffer. A message is read into a buffer of its own length: an
// expert share keeps it, a request's is reused.
func runPeer() {
	srv, err := cpu.NewServer(cpu.Options{Threads: 1})
	if err != nil {
		panic(err)
	}
	started := make(chan struct{})
	js.Global().Call("modePeerRegister", js.FuncOf(func(js.Value, []js.Value) any {
		close(started)
		return nil
	}))
	<-started
	link := js.Global().Get("modePeerLink")
	view := link.Get("view")
	size := view.Get("length").Int()
	var (
		failed   string
		msg, req []byte
		off      int
	)
	fail := func(text string) {
		failed = text
		b := []byte(text)[:min(len(text), size)]
		js.CopyBytesToJS(view, b)
		link.Call("fail", len(b))
		msg, off = nil, 0
	}
	for {
		n := link.Call("next").Int()
		if failed != "" {
			fail(failed)
			continue
		}
		if off == 0 {
			total := link.Call("total").Int()
			switch {
			case total <= 0 || total > maxPeerMessage:
				fail(fmt.Sprintf("a message of %d bytes", total))
				continue
			case n < 1:
				fail("a message's first chunk is empty")
				continue
			}
			// The op byte says whether the message is kept (a share).
			var op [1]byte
			js.CopyBytesToGo(op[:], view)
			if cpu.Keeps(op[0]) {
				msg = make([]byte, total)
			} else {
				if cap(req) < total {
					req = make([]byte, total)
				}
				msg = req[:total]
			}
		}
		if n < 0 || n > size || n > len(msg)-off {
			fail(fmt.Sprintf("a chunk of %d bytes at %d of a %d-byte message", n, off, len(msg)))
			continue
		}
		js.CopyBytesToGo(msg[off:off+n], view)
		off += n
		if off < len(msg) {
			link.Call("ack")
			continue
		}
		m := msg
		msg, off = nil, 0
		a, err := srv.Handle(m)
		switch {
		case err != nil:
			fail(err.Error())
		case a == nil:
			link.Call("ack")
		case len(a) > size:
			fail(fmt.Sprintf("an answer of %d bytes does not fit the %d-byte exchange buffer", len(a), size))
		default:
			js.CopyBytesToJS(view, a)
			link.Call("answer", len(a))
		}
	}
}
