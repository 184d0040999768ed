package cpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/routing"
	"github.com/moderuntime/mode/runtime/tensor"
)

// Peers: a routed expert's hidden units split between engine instances.
//
// Where one instance cannot use more than one core (Go on js/wasm runs on
// one thread), other instances of the engine, peers, each hold a share of
// every routed expert: with W instances, instance k keeps rows
// [c_k, c_k+1) of gate and up and the same columns of down, the cuts c_k
// near k·H/W on the down format's blocks. Each instance computes, for the
// same x and the same routing, Σ_k w_k·down_share·act(gate_share·x ⊙
// up_share·x) over its own share, and the main instance adds the peers'
// sums to its own: one exchange per sparse layer, balanced whatever the
// router chose, with no weight held twice. Only routed experts are split;
// attention, the router, shared experts and the head stay on the main
// instance.
//
// The main instance splits an expert the first time a layer is routed to
// it, sending each peer its share (Peer.Send), and asks for the peers' sums
// before computing its own, so they run meanwhile. An expert that cannot
// be split on block boundaries (too narrow), one too small to repay the
// exchange (minSplit), a deeper expert (model.
// ExpertArch: its later blocks read the whole first block's output) and a
// layer with expert biases stay whole on the main instance.
//
// The sum of the shares reassociates the down projection's sum, so this is
// part of the fast path only (RATIONALE.md, "More than one core"); the
// exact path ignores peers.

// Peer is another engine instance, running a PeerServer, seen from the
// main instance.
type Peer interface {
	// Send delivers the message made of parts, concatenated, to the
	// peer's PeerServer.Handle; messages arrive in the order sent. The
	// parts are the Backend's again when Send returns (it copies them),
	// so that a share goes out without being gathered into one buffer.
	Send(parts ...[]byte) error
	// Wait blocks until the peer has answered the last request sent and
	// returns the answer, which the Backend reads before the next Send.
	// It must give up with an error, never hang, when the peer is gone.
	Wait() ([]byte, error)
}

// Messages, little-endian: an op byte, then
//
//	opExpert: share id u32, activation (u8 length, bytes), then gate, up,
//	          down, each dtype u8, rows u32, cols u32, byte length u32, bytes
//	opDrop:   share id u32
//	opMoE:    T u32, D u32, K u32, the layer's activation (u8 length,
//	          bytes), alpha f32, limit f32, T·K slots (share id u32, 0 for
//	          none; weight f32), then x, T·D f32
//
// and an opMoE's answer is the peer's sum, T·D f32.
const (
	opExpert = 1
	opDrop   = 2
	opMoE    = 3
)

// SetPeers makes b split routed experts with ps (see Peer): W = len(ps)+1
// instances in all, b the first. It must be called before the first MoE;
// the exact path ignores it.
func (b *Backend) SetPeers(ps []Peer) {
	if !b.exact {
		b.peers, b.minSplit = ps, minSplit
	}
}

// PeerErr is the first failure of a peer, or nil. After one the Backend
// stops asking its peers, and Read, Argmax and Sync return it: the
// output is wrong without the peers' shares.
func (b *Backend) PeerErr() error { return b.peerErr }

// SplitExperts is the number of routed experts split between b and its
// peers so far (evicted ones included).
func (b *Backend) SplitExperts() int { return int(b.nextShare) }

// peerState is the main instance's side of its peers.
type peerState struct {
	peers     []Peer
	minSplit  int // minSplit, or less in tests
	peerErr   error
	nextShare int32
	req       []byte // the opMoE request, reused
	// splitFreed counts the bytes split experts left for the collector
	// since it last ran (see splitExpert).
	splitFreed int64
}

// splitExpert returns the share id of routed expert ex, splitting it
// between b and its peers on first use; 0 when it stays whole on b.
func (b *Backend) splitExpert(ex *backend.Expert, f *backend.FFN) uint32 {
	g := ex.Gate.(*weight)
	if g.share != 0 {
		return uint32(max(g.share, 0))
	}
	g.share = -1
	cuts := b.cuts(ex, f)
	if cuts == nil {
		return 0
	}
	u, d := ex.Up.(*weight), ex.Down.(*weight)
	gt, ut, dt := g.tensor(), u.tensor(), d.tensor()
	id := b.nextShare + 1
	D := g.cols
	for k := len(cuts) - 2; k >= 0; k-- {
		c0, c1 := cuts[k], cuts[k+1]
		var ts [3]*tensor.Tensor
		var err error
		for i, s := range []struct {
			t              *tensor.Tensor
			r0, r1, q0, q1 int
		}{{gt, c0, c1, 0, D}, {ut, c0, c1, 0, D}, {dt, 0, D, c0, c1}} {
			if ts[i], err = tensor.Sub(s.t, s.r0, s.r1, s.q0, s.q1); err != nil {
				b.peerErr = fmt.Errorf("cpu: splitting an expert: %w", err)
				return 0
			}
		}
		if k > 0 {
			if err := b.peers[k-1].Send(expertMsg(uint32(id), ex.Act, ts)...); err != nil {
				b.peerErr = fmt.Errorf("cpu: expert worker %d: %w", k, err)
				return 0
			}
			for _, t := range ts {
				b.splitFreed += int64(len(t.Data))
			}
			continue
		}
		// b's own share replaces the whole matrices, in place: the engine
		// holds these weights.
		for i, w := range []*weight{g, u, d} {
			nw, err := b.subWeight(w, ts[i], i == 2, c0, c1)
			if err != nil {
				b.peerErr = fmt.Errorf("cpu: splitting an expert: %w", err)
				return 0
			}
			b.splitFreed += w.Bytes()
			*w = *nw
		}
	}
	b.nextShare = id
	g.share = id
	// The whole matrices and the peers' copies are garbage now, and the
	// first generation splits every expert it routes to: left to itself
	// the collector would let the heap grow by up to the weights' size
	// before it runs (its goal is twice the live heap), and wasm memory
	// never shrinks. Collecting every splitGC bytes keeps the high-water
	// mark near the weights (RATIONALE.md, "More than one core").
	if b.splitFreed >= splitGC {
		b.splitFreed = 0
		runtime.GC()
	}
	return uint32(id)
}

// subWeight adopts t, hidden units [c0, c1) of w (its rows, or with
// cols its columns) as tensor.Sub copied them, as a weight: a matrix keeps
// w's decoded block scales (tensor.Matrix.Sub) instead of decoding them
// again.
func (b *Backend) subWeight(w *weight, t *tensor.Tensor, cols bool, c0, c1 int) (*weight, error) {
	if w.m == nil || w.m.DType() != t.DType {
		nw, err := b.upload(t, true)
		if err != nil {
			return nil, err
		}
		return nw.(*weight), nil
	}
	r0, r1, q0, q1 := c0, c1, 0, w.cols
	if cols {
		r0, r1, q0, q1 = 0, w.rows, c0, c1
	}
	m, err := w.m.Sub(t, r0, r1, q0, q1)
	if err != nil {
		return nil, err
	}
	return &weight{shape: append([]int(nil), t.Shape...), rows: t.Rows(), cols: t.Cols(), m: m, data: t.Data}, nil
}

// splitGC is how many bytes of split experts' garbage make the main
// instance collect: a collection of a heap of weights (no pointers to
// scan) takes milliseconds, and 32 MiB is some 18 splits of bench-web's
// 1408 × 512 q4_0 experts (each leaves the whole expert and the peer's
// half).
const splitGC = 32 << 20

// minSplit is the fewest weights (width × dim) of an expert's gate for it
// to be split: a layer asks its peers only when one of its routed experts
// is split, and below this the exchange (two wake-ups of a thread, some
// 0.1 ms on an idle machine, milliseconds on a loaded one) costs more than
// half the expert's products save. 2^17 is a 512-wide expert of a 256-wide
// model; Mixtral-shaped experts (1408 × 512) are 5.5 times that.
const minSplit = 1 << 17

// cuts returns where ex's hidden units are cut between b and its peers,
// W+1 increasing offsets from 0 to the width, or nil if ex stays whole.
func (b *Backend) cuts(ex *backend.Expert, f *backend.FFN) []int {
	g, u, d := ex.Gate.(*weight), ex.Up.(*weight), ex.Down.(*weight)
	if g.rows*g.cols < b.minSplit || len(ex.More) > 0 || f.GateBias != nil || f.UpBias != nil || f.DownBias != nil ||
		u.rows != g.rows || d.cols != g.rows || d.rows != g.cols {
		return nil
	}
	gr := 1
	for _, w := range []*weight{g, u, d} {
		if w.m != nil && w.m.DType() == tensor.MXFP4 {
			return nil
		}
	}
	if d.m != nil {
		gr = tensor.BlockSize(d.m.DType())
	}
	W, H := len(b.peers)+1, g.rows
	cuts := make([]int, W+1)
	for k := 1; k < W; k++ {
		cuts[k] = k * H / W / gr * gr
	}
	cuts[W] = H
	for k := range W {
		if cuts[k+1] <= cuts[k] {
			return nil
		}
	}
	return cuts
}

// tensor is w as a tensor: a matrix's stored bytes, or an f32 copy.
func (w *weight) tensor() *tensor.Tensor {
	if w.m != nil {
		return &tensor.Tensor{Name: "expert", DType: w.m.DType(), Shape: []int{w.rows, w.cols}, Data: w.data}
	}
	return tensor.FromF32("expert", []int{w.rows, w.cols}, w.f)
}

// expertMsg is an opExpert message in parts: each matrix's bytes are a
// part of their own, sent from where they are.
func expertMsg(id uint32, act model.Activation, ts [3]*tensor.Tensor) [][]byte {
	m := []byte{opExpert}
	m = binary.LittleEndian.AppendUint32(m, id)
	m = append(m, byte(len(act)))
	m = append(m, act...)
	var parts [][]byte
	for _, t := range ts {
		m = append(m, byte(t.DType))
		m = binary.LittleEndian.AppendUint32(m, uint32(t.Rows()))
		m = binary.LittleEndian.AppendUint32(m, uint32(t.Cols()))
		m = binary.LittleEndian.AppendUint32(m, uint32(len(t.Data)))
		parts = append(parts, m, t.Data)
		m = nil
	}
	return parts
}

// PeerRoundTrip sends p a request of one token of d values and no
// experts, the smallest exchange a layer makes, and waits for its answer:
// a measure of the exchange's own latency.
func PeerRoundTrip(p Peer, d int) error {
	m := []byte{opMoE}
	for _, v := range []int{1, d, 0} {
		m = binary.LittleEndian.AppendUint32(m, uint32(v))
	}
	m = append(m, 0)
	m = append(m, make([]byte, 8+4*d)...)
	if err := p.Send(m); err != nil {
		return err
	}
	a, err := p.Wait()
	if err == nil && len(a) != 4*d {
		err = fmt.Errorf("answered %d bytes, want %d", len(a), 4*d)
	}
	return err
}

// dropShare tells the peers that share id is evicted.
func (b *Backend) dropShare(id int32) {
	if b.peerErr != nil {
		return
	}
	m := binary.LittleEndian.AppendUint32([]byte{opDrop}, uint32(id))
	for k, p := range b.peers {
		if err := p.Send(m); err != nil {
			b.peerErr = fmt.Errorf("cpu: expert worker %d: %w", k+1, err)
			return
		}
	}
}

// askPeers sends the peers a layer's input and routing, splitting the
// routed experts not split yet; it reports whether any slot went to a
// split expert (and so whether there are answers to wait for).
func (b *Backend) askPeers(x *buf, routes [][]routing.Choice, f *backend.FFN) bool {
	if b.peerErr != nil {
		return false
	}
	T, D := x.rows, x.cols
	K := 0
	for _, cs := range routes {
		K = max(K, len(cs))
	}
	m := b.req[:0]
	m = append(m, opMoE)
	for _, v := range []int{T, D, K} {
		m = binary.LittleEndian.AppendUint32(m, uint32(v))
	}
	m = append(m, byte(len(f.Act)))
	m = append(m, f.Act...)
	m = binary.LittleEndian.AppendUint32(m, math.Float32bits(f.Alpha))
	m = binary.LittleEndian.AppendUint32(m, math.Float32bits(f.Limit))
	split := false
	for _, cs := range routes {
		for k := range K {
			var id uint32
			var w float32
			if k < len(cs) {
				if id = b.splitExpert(f.Experts[cs[k].Expert], f); id != 0 {
					split, w = true, cs[k].Weight
				}
			}
			m = binary.LittleEndian.AppendUint32(m, id)
			m = binary.LittleEndian.AppendUint32(m, math.Float32bits(w))
		}
	}
	if !split || b.peerErr != nil {
		b.req = m
		return false
	}
	m = append(m, f32Bytes(x.f[:T*D])...)
	b.req = m
	for k, p := range b.peers {
		if err := p.Send(m); err != nil {
			b.peerErr = fmt.Errorf("cpu: expert worker %d: %w", k+1, err)
			return false
		}
	}
	return true
}

// gatherPeers adds each peer's answer to out, in peer order.
func (b *Backend) gatherPeers(out []float32) {
	for k, p := range b.peers {
		a, err := p.Wait()
		if err == nil && len(a) != 4*len(out) {
			err = fmt.Errorf("answered %d bytes, want %d", len(a), 4*len(out))
		}
		if err != nil {
			if b.peerErr == nil {
				b.peerErr = fmt.Errorf("cpu: expert worker %d: %w", k+1, err)
			}
			continue
		}
		if v, ok := f32View(a, len(out)); ok {
			for i, x := range v {
				out[i] += x
			}
			continue
		}
		for i := range out {
			out[i] += math.Float32frombits(binary.LittleEndian.Uint32(a[4*i:]))
		}
	}
}

// PeerServer is a peer's side: the shares of split experts it was sent,
// and a Backend that computes with them.
type PeerServer struct {
	b       *Backend
	experts map[uint32]*backend.Expert
	bytes   int64 // of the shares held

	x, y   buf
	routes cpuRoutes
	ffn    backend.FFN
	local  map[uint32]int // share id → index in ffn.Experts, per request
	answer []byte
}

// NewServer returns a peer's server computing on a CPU backend of o
// (the fast path: o.Exact is refused, since the main instance never splits
// on it).
func NewServer(o Options) (*PeerServer, error) {
	if o.Exact || o.Naive {
		return nil, errors.New("cpu: an expert peer runs the fast path only")
	}
	return &PeerServer{b: New(o), experts: map[uint32]*backend.Expert{}, local: map[uint32]int{}}, nil
}

// Close stops the server's backend.
func (s *PeerServer) Close() error { return s.b.Close() }

// Shares is the number of expert shares the server holds and their bytes.
func (s *PeerServer) Shares() (int, int64) { return len(s.experts), s.bytes }

// Handle applies one message from the main instance and returns the
// answer to a request (nil for the others). An expert's share keeps msg's
// memory: the caller must not reuse it.
func (s *PeerServer) Handle(msg []byte) ([]byte, error) {
	r := &reader{b: msg}
	switch op := r.u8(); op {
	case opExpert:
		id := r.u32()
		act := model.Activation(r.bytes(int(r.u8())))
		var ws [3]backend.Weight
		for i := range ws {
			d, rows, cols, n := tensor.DType(r.u8()), int(r.u32()), int(r.u32()), int(r.u32())
			data := r.bytes(n)
			if r.err != nil {
				break
			}
			w, err := s.b.Adopt(&tensor.Tensor{Name: "expert share", DType: d, Shape: []int{rows, cols}, Data: data})
			if err != nil {
				return nil, fmt.Errorf("expert share %d: %w", id, err)
			}
			ws[i] = w
		}
		if err := r.done(); err != nil {
			return nil, fmt.Errorf("expert share %d: %w", id, err)
		}
		g, u, d := ws[0].(*weight), ws[1].(*weight), ws[2].(*weight)
		if u.rows != g.rows || u.cols != g.cols || d.cols != g.rows || d.rows != g.cols {
			return nil, fmt.Errorf("expert share %d: gate %v, up %v and down %v do not fit together", id, g.shape, u.shape, d.shape)
		}
		if old := s.experts[id]; old != nil {
			s.drop(id)
		}
		s.experts[id] = &backend.Expert{Gate: g, Up: u, Down: d, Act: act}
		s.bytes += g.Bytes() + u.Bytes() + d.Bytes()
		return nil, nil
	case opDrop:
		id := r.u32()
		if err := r.done(); err != nil {
			return nil, fmt.Errorf("dropping a share: %w", err)
		}
		s.drop(id)
		return nil, nil
	case opMoE:
		return s.moe(r)
	default:
		return nil, fmt.Errorf("unknown message %d from the main instance", op)
	}
}

// Keeps reports whether Handle keeps the memory of a message that starts
// with byte op (an expert's share), so that a caller reusing its buffers
// knows which messages need one of their own.
func Keeps(op byte) bool { return op == opExpert }

func (s *PeerServer) drop(id uint32) {
	if e := s.experts[id]; e != nil {
		for _, w := range e.Weights() {
			s.bytes -= w.Bytes()
		}
		delete(s.experts, id)
	}
}

// maxPeerRows bounds a request's T·D (and so the memory it makes the peer
// allocate): 2^26 floats, 256 MiB.
const maxPeerRows = 1 << 26

// maxPeerK bounds a request's experts per token.
const maxPeerK = 1 << 16

func (s *PeerServer) moe(r *reader) ([]byte, error) {
	T, D, K := int(r.u32()), int(r.u32()), int(r.u32())
	act := model.Activation(r.bytes(int(r.u8())))
	alpha, limit := math.Float32frombits(r.u32()), math.Float32frombits(r.u32())
	if r.err == nil && (T <= 0 || D <= 0 || K > maxPeerK || T > maxPeerRows || D > maxPeerRows || T*D > maxPeerRows || len(r.b)-r.off != 8*T*K+4*T*D) {
		return nil, fmt.Errorf("request for %d tokens of %d values and %d experts each: %d bytes follow, want %d", T, D, K, len(r.b)-r.off, 8*T*K+4*T*D)
	}
	clear(s.local)
	clear(s.ffn.Experts) // keeps no dropped share alive
	s.ffn = backend.FFN{Experts: s.ffn.Experts[:0], Act: act, Alpha: alpha, Limit: limit}
	if cap(s.routes.c) < T {
		s.routes.c = make([][]routing.Choice, T)
	}
	s.routes.c = s.routes.c[:T]
	s.routes.read = true // never recycled into Route
	for t := range T {
		cs := s.routes.c[t][:0]
		for range K {
			id, w := r.u32(), math.Float32frombits(r.u32())
			if id == 0 || r.err != nil {
				continue
			}
			i, ok := s.local[id]
			if !ok {
				e := s.experts[id]
				if e == nil {
					return nil, fmt.Errorf("expert share %d is not here (never sent, or dropped)", id)
				}
				if e.Gate.(*weight).cols != D {
					return nil, fmt.Errorf("expert share %d takes %d values, the request has %d", id, e.Gate.(*weight).cols, D)
				}
				i = len(s.ffn.Experts)
				s.local[id] = i
				s.ffn.Experts = append(s.ffn.Experts, e)
			}
			cs = append(cs, routing.Choice{Expert: i, Weight: w})
		}
		s.routes.c[t] = cs
	}
	s.x = buf{rows: T, cols: D, f: grow(s.x.f, T*D)}
	copy(f32Bytes(s.x.f), r.bytes(4*T*D))
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	s.y = buf{rows: T, cols: D, f: grow(s.y.f, T*D)}
	s.b.MoE(&s.y, &s.x, &s.routes, &s.ffn)
	a := append(s.answer[:0], f32Bytes(s.y.f)...)
	s.answer = a
	return a, nil
}

// f32Bytes is x's memory as bytes: the little-endian f32s the messages
// carry, on every port this runs on (f32View assumes the same), copied
// whole rather than a value at a time.
func f32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

// reader decodes a message; the first short read sets err.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		if r.err == nil {
			r.err = fmt.Errorf("message of %d bytes ends early", len(r.b))
		}
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

func (r *reader) u8() byte {
	if p := r.bytes(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.bytes(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.err = fmt.Errorf("%d bytes left over at the end of a message", len(r.b)-r.off)
	}
	return r.err
}
