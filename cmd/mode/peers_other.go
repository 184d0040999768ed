//go:build !wasip1

package main

import (
	"errors"

	"github.com/moderuntime/mode/runtime/cpu"
)

// Outside a wasip1 guest there are no host peers: the native engine's
// threads are its pool's (cpu.Options.Threads).

func guestPeers() []cpu.Peer { return nil }

func poolThreads(threads int) int { return threads }

func servePeer() error {
	return errors.New("only the wasip1 build of mode serves as an expert peer (the host starts it)")
}
