package webgpu

import (
	"fmt"
	"math"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/shaders"
)

// mlaKV is multi-head latent attention's cache: per layer the normed
// latent [seq, rank] and the rotated shared key [seq, rope], Rank+RopeDim
// floats a position, as activation buffers so that the latent rows feed
// MatMul directly. kv [seq, heads·(nope+v)] holds the latent expanded by
// kv_b for the layer being computed, and sc the scores, both made on
// first use.
type mlaKV struct {
	seq     int
	lat, pe []*buf
	kv, sc  *buf
}

func (c *mlaKV) Len() int { return c.seq }

// NewMLAKV allocates an MLA cache (backend.MLAer).
func (b *Backend) NewMLAKV(layers, maxSeq, rank, ropeDim int) (backend.KV, error) {
	c := &mlaKV{seq: maxSeq}
	for range layers {
		l, err := b.NewBuf(maxSeq, rank)
		if err != nil {
			return nil, err
		}
		p, err := b.NewBuf(maxSeq, ropeDim)
		if err != nil {
			return nil, err
		}
		c.lat, c.pe = append(c.lat, l.(*buf)), append(c.pe, p.(*buf))
	}
	return c, nil
}

// MLAAttention is backend.MLAer's op, always through the expanded keys and
// values (the CPU's prefill path; WebGPU has no absorbed kernel yet, so a
// decode step expands every cached latent): kv_a_layernorm in place on
// ckv's latent columns, RoPE on ckv's key and on each head's q_pe (the
// rope and rmsnorm kernels take a row stride apart from their width), the
// rows copied into the cache, kv_b applied to the cached latents with
// MatMul, then mla_attn.
func (b *Backend) MLAAttention(dst, q, ckv backend.Buf, cache backend.KV, s backend.MLASpec) {
	d, qb, cb, c := dst.(*buf), q.(*buf), ckv.(*buf), cache.(*mlaKV)
	T := qb.rows
	H, N, P, V, R := s.Heads, s.NopeDim, s.RopeDim, s.VDim, s.Rank
	D, W := N+P, R+P
	g := s.KVNorm.(*weight)
	np := shaders.RMSNormParams{Rows: u(T), Cols: u(R), Group: u(R), XOff: u(cb.off), XStride: u(W), DstOff: u(cb.off), DstStride: u(W), Eps: s.Eps}
	b.s.run(shaders.RMSNormIP, shaders.Spec{}, [3]uint32{1, u(T), 1}, np.Words(), bufArg(g.pages[0].buf), bufArg(cb.b), bufArg(b.spare))
	b.lastNorm = lastNorm{op: -1}
	rope := func(x *buffer, off, stride int) {
		p := shaders.RoPEParams{Rows: u(T), Cols: u(P), HeadDim: u(P), Pos0: u(s.Pos0), XOff: u(off), XStride: u(stride),
			Interleaved: s.Rope.Interleaved, AttnFactor: s.Rope.AttnFactor}
		b.s.run(shaders.RoPE, shaders.Spec{}, [3]uint32{u(ceilDiv(P/2, 64)), u(T), 1}, p.Words(), hostArg(shaders.Bits(s.Rope.InvFreq)), bufArg(x))
	}
	rope(cb.b, cb.off+R, W)
	for h := range H {
		rope(qb.b, qb.off+h*D+N, H*D)
	}
	lat, pe := c.lat[s.Layer], c.pe[s.Layer]
	for t := range T {
		b.copyRows(cb.b, lat.b, cb.off+t*W, lat.off+(s.Pos0+t)*R, R)
		b.copyRows(cb.b, pe.b, cb.off+t*W+R, pe.off+(s.Pos0+t)*P, P)
	}
	n := s.Pos0 + T
	if c.kv == nil || c.kv.cols != H*(N+V) {
		x, err := b.NewBuf(c.seq, H*(N+V))
		if err != nil {
			b.s.fail(fmt.Errorf("webgpu: MLA expansion buffer: %w", err))
			return
		}
		c.kv = x.(*buf)
	}
	if c.sc == nil || c.sc.rows < T*H {
		x, err := b.NewBuf(T*H, c.seq)
		if err != nil {
			b.s.fail(fmt.Errorf("webgpu: MLA score buffer: %w", err))
			return
		}
		c.sc = x.(*buf)
	}
	b.MatMul(b.View(c.kv, 0, n), b.View(lat, 0, n), s.KVB, nil)
	div := s.Divisor
	if div == 0 {
		div = float32(math.Sqrt(float64(D)))
	}
	p := shaders.MLAAttnParams{T: u(T), Heads: u(H), Nope: u(N), Rope: u(P), V: u(V), Pos0: u(s.Pos0),
		QOff: u(qb.off), KVOff: u(c.kv.off), PEOff: u(pe.off), OutOff: u(d.off), ScStride: u(c.seq), Div: div}
	b.s.run(shaders.MLAAttn, shaders.Spec{}, [3]uint32{u(ceilDiv(T*H, 64)), 1, 1}, p.Words(),
		bufArg(qb.b), bufArg(c.kv.b), bufArg(pe.b), bufArg(c.sc.b), bufArg(d.b))
}
