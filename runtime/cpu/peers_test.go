package cpu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
)

// localPeer is a Peer in the same process: Send hands the message to the
// server at once (its parts joined into a new buffer: the Backend reuses
// its request buffer).
type localPeer struct {
	s      *PeerServer
	answer []byte
	err    error
	gone   bool // Send and Wait fail, as a worker that died
}

func (p *localPeer) Send(parts ...[]byte) error {
	if p.gone {
		return errors.New("the worker is gone")
	}
	a, err := p.s.Handle(bytes.Join(parts, nil))
	if a != nil || err != nil {
		p.answer, p.err = a, err
	}
	return nil
}

func (p *localPeer) Wait() ([]byte, error) {
	if p.gone {
		return nil, errors.New("no answer in time")
	}
	return p.answer, p.err
}

// peerCase is a layer of routed experts (and one shared expert) in one
// format, with its routing for T tokens.
type peerCase struct {
	D      int
	mats   [][3]*tensor.Tensor // routed experts, then the shared one
	deq    [][3][]float32
	x      []float32
	routes [][]routing.Choice
}

func newPeerCase(t *testing.T, d tensor.DType, T int, seed uint64) *peerCase {
	r := rand.New(rand.NewPCG(seed, 7))
	c := &peerCase{D: 64}
	widths := []int{96, 160, 32, 64}
	switch tensor.BlockSize(d) {
	case 1:
		c.D, widths = 40, []int{50, 7, 33, 64}
	case 256:
		c.D, widths = 256, []int{512, 768, 256}
	}
	for i := range len(widths) + 1 {
		w := widths[i%len(widths)]
		g, gd := quantized(t, r, d, w, c.D)
		u, ud := quantized(t, r, d, w, c.D)
		dn, dd := quantized(t, r, d, c.D, w)
		c.mats = append(c.mats, [3]*tensor.Tensor{g, u, dn})
		c.deq = append(c.deq, [3][]float32{gd, ud, dd})
	}
	c.x = randomF32(r, T*c.D, 1)
	for tk := range T {
		k := 2
		if tk == 1 {
			k = 1
		}
		var cs []routing.Choice
		for _, e := range r.Perm(len(widths))[:k] {
			cs = append(cs, routing.Choice{Expert: e, Weight: float32(0.2 + r.Float64())})
		}
		c.routes = append(c.routes, cs)
	}
	return c
}

// layer uploads the case's experts to b.
func (c *peerCase) layer(t *testing.T, b *Backend) *backend.FFN {
	f := &backend.FFN{}
	for i, m := range c.mats {
		var ws [3]backend.Weight
		for j, q := range m {
			w, err := b.Upload(q)
			if err != nil {
				t.Fatal(err)
			}
			ws[j] = w
		}
		e := &backend.Expert{Gate: ws[0], Up: ws[1], Down: ws[2]}
		if i == len(c.mats)-1 {
			f.Shared = append(f.Shared, e)
		} else {
			f.Experts = append(f.Experts, e)
		}
	}
	return f
}

func (c *peerCase) run(b *Backend, f *backend.FFN) []float32 {
	T := len(c.routes)
	x, _ := b.NewBuf(T, c.D)
	copy(x.(*buf).f, c.x)
	out, _ := b.NewBuf(T, c.D)
	rt := &cpuRoutes{c: make([][]routing.Choice, T)}
	for i, cs := range c.routes {
		rt.c[i] = append([]routing.Choice(nil), cs...)
	}
	b.MoE(out, x, rt, f)
	return out.(*buf).f
}

// bound is, per output, 2·(n+K+2)·u·Σₖ|wₖ|·Σⱼ|downᵢⱼ·hₖⱼ| with n the
// expert's width: what any two orders of summing the down projection's
// terms and the K weighted experts can differ by (RATIONALE.md, "More
// than one core"). h is computed in float64 from the dequantised weights;
// the factor 2 at the front covers its distance from the h the fast path
// rounds and quantises.
func (c *peerCase) bound(t int) []float64 {
	const u = 1.0 / (1 << 24)
	D := c.D
	out := make([]float64, D)
	x := c.x[t*D : (t+1)*D]
	for _, ch := range c.routes[t] {
		dq := c.deq[ch.Expert]
		H := len(dq[0]) / D
		h := make([]float64, H)
		for j := range H {
			var g, v float64
			for i := range D {
				g += float64(dq[0][j*D+i]) * float64(x[i])
				v += float64(dq[1][j*D+i]) * float64(x[i])
			}
			h[j] = math.Abs(g / (1 + math.Exp(-g)) * v)
		}
		for i := range D {
			var s float64
			for j := range H {
				s += math.Abs(float64(dq[2][i*H+j])) * h[j]
			}
			out[i] += 2 * 2 * float64(H+len(c.routes[t])+2) * u * math.Abs(float64(ch.Weight)) * s
		}
	}
	return out
}

// TestPeersAgree: a layer whose routed experts are split between the
// Backend and one or two peers (each computing its share, the main
// instance adding them) agrees with the unsplit fast path within bound,
// in every format, for a decode step and a batch, with ragged widths (some
// split unevenly on the down format's blocks, some too narrow to split and
// kept whole), and again once the shares are in place; an evicted
// expert's shares leave the peers.
func TestPeersAgree(t *testing.T) {
	for _, d := range formats {
		for _, T := range []int{1, 5} {
			for _, W := range []int{2, 3} {
				t.Run(fmt.Sprintf("%v/T=%d/W=%d", d, T, W), func(t *testing.T) {
					c := newPeerCase(t, d, T, uint64(10*T+W))
					ref := New(Options{Threads: 1})
					want := c.run(ref, c.layer(t, ref))
					b := New(Options{Threads: 2})
					defer b.Close()
					var peers []Peer
					var servers []*PeerServer
					for range W - 1 {
						s, err := NewServer(Options{Threads: 1})
						if err != nil {
							t.Fatal(err)
						}
						servers = append(servers, s)
						peers = append(peers, &localPeer{s: s})
					}
					b.SetPeers(peers)
					f := c.layer(t, b)
					for _, e := range f.Experts {
						if sh := e.Gate.Shape(); sh[0]*sh[1] < minSplit && b.cuts(e, f) != nil {
							t.Fatalf("an expert of %v weights was split: below minSplit (%d), it must stay whole", e.Gate.Shape(), minSplit)
						}
					}
					b.minSplit = 0 // the case's experts are small, to keep the test quick
					split := map[int]bool{}
					for _, cs := range c.routes {
						for _, ch := range cs {
							if b.cuts(f.Experts[ch.Expert], f) != nil {
								split[ch.Expert] = true
							}
						}
					}
					if len(split) == 0 {
						t.Fatal("no routed expert of the case can be split: the test would test nothing")
					}
					for pass := range 2 {
						got := c.run(b, f)
						if err := b.PeerErr(); err != nil {
							t.Fatal(err)
						}
						worst := 0.0
						for tk := range T {
							bd := c.bound(tk)
							for i := range c.D {
								diff := math.Abs(float64(got[tk*c.D+i]) - float64(want[tk*c.D+i]))
								if diff > bd[i] {
									t.Fatalf("pass %d: token %d [%d]: split %v, whole %v: |diff| %.3g > bound %.3g", pass, tk, i, got[tk*c.D+i], want[tk*c.D+i], diff, bd[i])
								}
								if bd[i] > 0 {
									worst = max(worst, diff/bd[i])
								}
							}
						}
						for k, s := range servers {
							if n, _ := s.Shares(); n != len(split) {
								t.Errorf("peer %d holds %d shares, want %d", k+1, n, len(split))
							}
						}
						if pass == 0 {
							t.Logf("%d experts split, worst difference %.2f of the bound", len(split), worst)
						}
					}
					for e := range split {
						for _, w := range f.Experts[e].Weights() {
							b.Free(w)
						}
					}
					for k, s := range servers {
						if n, by := s.Shares(); n != 0 || by != 0 {
							t.Errorf("peer %d holds %d shares (%d bytes) after every split expert was freed", k+1, n, by)
						}
					}
				})
			}
		}
	}
}

// TestPeersFail: a peer that stops answering makes the backend report it
// (Read, Argmax and Sync), naming the worker, rather than hang or go on
// silently; the exact path never splits.
func TestPeersFail(t *testing.T) {
	c := newPeerCase(t, tensor.Q8_0, 3, 1)
	s, err := NewServer(Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := &localPeer{s: s}
	b := New(Options{Threads: 1})
	b.SetPeers([]Peer{p})
	b.minSplit = 0
	f := c.layer(t, b)
	c.run(b, f)
	if err := b.Sync(); err != nil {
		t.Fatalf("a working peer: %v", err)
	}
	if err := PeerRoundTrip(p, c.D); err != nil {
		t.Errorf("a round trip to a working peer: %v", err)
	}
	p.gone = true
	if err := PeerRoundTrip(p, c.D); err == nil {
		t.Error("a round trip to a dead peer: no error")
	}
	out := c.run(b, f)
	x, _ := b.NewBuf(1, c.D)
	_, aerr := b.Argmax(x)
	for name, err := range map[string]error{"Sync": b.Sync(), "Read": b.Read(x, out), "Argmax": aerr} {
		if err == nil || !strings.Contains(err.Error(), "expert worker 1") {
			t.Errorf("%s after the peer died: %v, want an error naming expert worker 1", name, err)
		}
	}

	e := New(Options{Threads: 1, Exact: true})
	e.SetPeers([]Peer{&localPeer{s: s, gone: true}})
	c.run(e, c.layer(t, e))
	if err := e.Sync(); err != nil {
		t.Errorf("the exact path asked its peers: %v", err)
	}
	if _, err := NewServer(Options{Exact: true}); err == nil {
		t.Error("NewServer accepted the exact path")
	}
}

// TestPeerServerBadMessages: every truncation of valid messages, and
// other bad input, is an error from Handle, never a panic.
func TestPeerServerBadMessages(t *testing.T) {
	c := newPeerCase(t, tensor.Q4_0, 2, 3)
	var sent [][]byte
	rec := &recorder{}
	b := New(Options{Threads: 1})
	b.SetPeers([]Peer{rec})
	b.minSplit = 0
	c.run(b, c.layer(t, b))
	sent = rec.msgs
	if len(sent) < 2 {
		t.Fatalf("%d messages sent, want shares and a request", len(sent))
	}
	for _, m := range sent {
		for n := range len(m) {
			s, _ := NewServer(Options{Threads: 1})
			// the shares first, so a truncated request finds them
			for _, ok := range sent {
				if &ok[0] == &m[0] {
					break
				}
				if _, err := s.Handle(bytes.Clone(ok)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Handle(bytes.Clone(m[:n])); err == nil && n > 0 && m[0] != opDrop {
				t.Errorf("message of op %d cut to %d of %d bytes: no error", m[0], n, len(m))
			}
		}
	}
	s, _ := NewServer(Options{Threads: 1})
	if _, err := s.Handle(sent[len(sent)-1]); err == nil || !strings.Contains(err.Error(), "is not here") {
		t.Errorf("a request for shares never sent: %v", err)
	}
	if _, err := s.Handle([]byte{99}); err == nil {
		t.Error("an unknown op: no error")
	}
	// Sizes that would overflow or ask for huge memory are refused
	// before anything is allocated.
	for _, tdk := range [][3]uint32{{1 << 31, 1 << 31, 2}, {1 << 20, 1 << 20, 1}, {1, 64, 1 << 30}, {0, 64, 2}} {
		m := []byte{opMoE}
		for _, v := range tdk {
			m = binary.LittleEndian.AppendUint32(m, v)
		}
		m = append(m, 0, 0, 0, 0, 0, 0, 0, 0, 0)
		if _, err := s.Handle(m); err == nil {
			t.Errorf("a request for T, D, K = %v: no error", tdk)
		}
	}
}

type recorder struct{ msgs [][]byte }

func (r *recorder) Send(parts ...[]byte) error {
	r.msgs = append(r.msgs, bytes.Join(parts, nil))
	return nil
}
func (r *recorder) Wait() ([]byte, error) {
	return nil, errors.New("a recorder does not answer")
}
