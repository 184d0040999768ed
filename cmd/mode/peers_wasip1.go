//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/moderuntime/mode/runtime/cpu"
)

// The guest's side of expert peers under wazero (the host's is
// wasm_peers.go): the host's modepeer module says how many peers the
// main guest has and carries messages and answers between the guests'
// memories; every call that blocks gives up with an error in the host's
// time, so a dead peer is an error here, never a hang.

// count is the main guest's number of peers (0 in a peer).
//
//go:wasmimport modepeer count
func hostPeerCount() int32

// send appends the n bytes at p to the message for peer k and posts it
// when last is 1: 0, or minus the length of an error's text.
//
//go:wasmimport modepeer send
func hostPeerSend(k int32, p unsafe.Pointer, n int32, last int32) int64

// wait blocks for peer k's answer to the last request: its length, or
// minus the length of an error's text; take copies it to p.
//
//go:wasmimport modepeer wait
func hostPeerWait(k int32) int64

//go:wasmimport modepeer take
func hostPeerTake(k int32, p unsafe.Pointer)

// next (in a peer) blocks for the next message: its length, its first
// byte written at op, or -1 when the main guest is done; take copies it.
//
//go:wasmimport modepeer next
func hostPeerNext(op unsafe.Pointer) int64

// answer (in a peer) hands the main guest the n bytes at p: the answer
// to its request, or with failed 1 why this peer stops.
//
//go:wasmimport modepeer answer
func hostPeerAnswer(p unsafe.Pointer, n int32, failed int32)

// hostPeer is peer k seen from the main guest.
type hostPeer struct {
	k      int32
	answer []byte
}

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// hostErr reads the error's text of length n the host left pending.
func (p *hostPeer) hostErr(n int64) error {
	b := make([]byte, -n)
	hostPeerTake(p.k, ptr(b))
	return errors.New(string(b))
}

func (p *hostPeer) Send(parts ...[]byte) error {
	if len(parts) == 0 {
		parts = [][]byte{nil}
	}
	for i, m := range parts {
		last := int32(0)
		if i == len(parts)-1 {
			last = 1
		}
		if n := hostPeerSend(p.k, ptr(m), int32(len(m)), last); n < 0 {
			return p.hostErr(n)
		}
	}
	return nil
}

func (p *hostPeer) Wait() ([]byte, error) {
	n := hostPeerWait(p.k)
	if n < 0 {
		return nil, p.hostErr(n)
	}
	if int64(cap(p.answer)) < n {
		p.answer = make([]byte, n)
	}
	p.answer = p.answer[:n]
	hostPeerTake(p.k, ptr(p.answer))
	return p.answer, nil
}

// guestPeers returns the expert peers the host started beside this guest.
func guestPeers() []cpu.Peer {
	var ps []cpu.Peer
	for k := range hostPeerCount() {
		ps = append(ps, &hostPeer{k: k})
	}
	return ps
}

// poolThreads: a wasip1 guest runs on one thread, where more goroutines
// for an op only add switches; its other cores are its peers.
func poolThreads(int) int { return 1 }

// maxPeerMessage bounds a message's length as the host reports it, and so
// what a peer allocates for one.
const maxPeerMessage = 1 << 30

// servePeer is the hidden subcommand the host starts a peer guest with:
// it hands each message to a cpu.PeerServer and the answers back, until
// the main guest is done. A message is read into a buffer of its own
// length when the server keeps it (an expert's share), else into one
// that is reused. After a failure, which the host hands the main guest,
// the peer exits.
func servePeer() error {
	srv, err := cpu.NewServer(cpu.Options{Threads: 1})
	if err != nil {
		return err
	}
	var (
		req []byte
		op  [1]byte
	)
	fail := func(err error) error {
		b := []byte(err.Error())
		hostPeerAnswer(ptr(b), int32(len(b)), 1)
		return err
	}
	for {
		n := hostPeerNext(unsafe.Pointer(&op[0]))
		switch {
		case n < 0:
			return nil
		case n == 0 || n > maxPeerMessage:
			return fail(fmt.Errorf("a message of %d bytes", n))
		}
		var msg []byte
		if cpu.Keeps(op[0]) {
			msg = make([]byte, n)
		} else {
			if int64(cap(req)) < n {
				req = make([]byte, n)
			}
			msg = req[:n]
		}
		hostPeerTake(0, ptr(msg))
		a, err := srv.Handle(msg)
		if err != nil {
			return fail(err)
		}
		if len(a) > 0 {
			hostPeerAnswer(ptr(a), int32(len(a)), 0)
		}
	}
}
