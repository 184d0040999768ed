package cpu

import (
	"fmt"
	"math"

	"github.com/moderuntime/mode/runtime/backend"
	"github.com/moderuntime/mode/runtime/routing"
)

// mlaKV is the cache of multi-head latent attention: per layer and
// position the kv_a_layernorm'd latent (rank floats) and the rotated key
// shared by every head (rope floats), not the expanded keys and values.
type mlaKV struct {
	seq, rank, rope int
	lat, pe         [][]float32 // per layer, seq*rank and seq*rope
}

func (c *mlaKV) Len() int { return c.seq }

// NewMLAKV allocates an MLA cache (backend.MLAer).
func (b *Backend) NewMLAKV(layers, maxSeq, rank, ropeDim int) (backend.KV, error) {
	if layers <= 0 || maxSeq <= 0 || rank <= 0 || ropeDim <= 0 {
		return nil, fmt.Errorf("cpu: MLA cache of %d layers, %d positions, rank %d, rope %d", layers, maxSeq, rank, ropeDim)
	}
	c := &mlaKV{seq: maxSeq, rank: rank, rope: ropeDim}
	for range layers {
		c.lat = append(c.lat, make([]float32, maxSeq*rank))
		c.pe = append(c.pe, make([]float32, maxSeq*ropeDim))
	}
	return c, nil
}

// rowF returns row r of w as float32: a view of an f32 weight, or the row
// decoded into tmp.
func rowF(w *weight, r int, tmp []float32) []float32 {
	if w.m == nil {
		return w.f[r*w.cols : (r+1)*w.cols]
	}
	w.m.DequantizeRow(r, tmp[:w.cols])
	return tmp[:w.cols]
}

// MLAAttention is DeepseekV2Attention's attention (modeling_deepseek.py)
// over the latent cache. The latent is normalised as RMSNorm does; the
// shared key and each head's q_pe are rotated as RoPE does (DeepSeek's
// interleaved pairs; its HF code de-interleaves then rotates halves, which
// is the same rotation). Scores are (q_nope·k_nope + q_pe·k_pe)/divisor
// summed in that order (the order of HF's concatenated q·k). Expanded, it
// first computes every cached position's k_nope and v with the matrix
// product (fast or exact as the backend is); absorbed (s.Absorb), it
// computes q_nope·KB_h and VB_h·(Σ p·latent) with sums in input order.
// Everything else runs the exact path's scalar loops on both paths.
func (b *Backend) MLAAttention(dst, q, ckv backend.Buf, cache backend.KV, s backend.MLASpec) {
	out, qb, cb, c := dst.(*buf), q.(*buf), ckv.(*buf), cache.(*mlaKV)
	T := qb.rows
	H, N, P, V, R := s.Heads, s.NopeDim, s.RopeDim, s.VDim, s.Rank
	D := N + P // q's head width
	lat, pe := c.lat[s.Layer], c.pe[s.Layer]
	norm := s.KVNorm.(*weight).f
	b.rope.fill(s.Pos0, T, s.Rope)
	for t := 0; t < T; t++ {
		p := s.Pos0 + t
		row := cb.row(t)
		rmsnorm(row[:R], row[:R], norm, s.Eps)
		cos, sin := b.rope.at(p)
		rope(row[R:R+P], cos, sin, s.Rope.Interleaved)
		qr := qb.row(t)
		for h := 0; h < H; h++ {
			rope(qr[h*D+N:(h+1)*D], cos, sin, s.Rope.Interleaved)
		}
		copy(lat[p*R:(p+1)*R], row[:R])
		copy(pe[p*P:(p+1)*P], row[R:R+P])
	}
	div := s.Divisor
	if div == 0 {
		div = float32(math.Sqrt(float64(D)))
	}
	kvb := s.KVB.(*weight)
	n := s.Pos0 + T // positions the batch reads
	KV := N + V     // kv_b's rows per head
	if !s.Absorb {
		// every cached position's [k_nope | v] per head: [n, H·(N+V)]
		// kept between calls: a prefill at a long context would
		// otherwise allocate n·heads·(nope+v) floats per layer per batch
		b.mlaKV = grow(b.mlaKV, n*H*KV)
		kv := b.mlaKV
		b.matmul(kv, H*KV, lat[:n*R], n, R, kvb)
		b.parallel(T*H, T*H*n*(D+V), func(lo, hi int) {
			sc := make([]float32, n)
			for j := lo; j < hi; j++ {
				t, h := j/H, j%H
				pos := s.Pos0 + t
				qh := qb.row(t)[h*D : (h+1)*D]
				a := sc[:pos+1]
				for i := range a {
					k := kv[(i*H+h)*KV : (i*H+h)*KV+N]
					kp := pe[i*P : (i+1)*P]
					var d float32
					for x := 0; x < N; x++ {
						d += float32(qh[x] * k[x])
					}
					for x := 0; x < P; x++ {
						d += float32(qh[N+x] * kp[x])
					}
					a[i] = d / div
				}
				routing.Softmax(a, a)
				o := out.row(t)[h*V : (h+1)*V]
				clear(o)
				for i, w := range a {
					v := kv[(i*H+h)*KV+N : (i*H+h+1)*KV]
					for x := range o {
						o[x] += float32(w * v[x])
					}
				}
			}
		})
		return
	}
	b.parallel(T*H, T*H*(N*R+n*(R+P)+V*R), func(lo, hi int) {
		sc := make([]float32, n)
		qa := make([]float32, R)  // q_nope with KB_h absorbed
		ctx := make([]float32, R) // Σ p·latent
		tmp := make([]float32, R) // a decoded weight row
		for j := lo; j < hi; j++ {
			t, h := j/H, j%H
			pos := s.Pos0 + t
			qh := qb.row(t)[h*D : (h+1)*D]
			// qa = Σ_x q_nope[x]·KB_h[x], so qa·latent = q_nope·(KB_h·latent)
			clear(qa)
			for x := 0; x < N; x++ {
				q := qh[x]
				for r, w := range rowF(kvb, h*KV+x, tmp) {
					qa[r] += float32(q * w)
				}
			}
			a := sc[:pos+1]
			for i := range a {
				l := lat[i*R : (i+1)*R]
				kp := pe[i*P : (i+1)*P]
				var d float32
				for r := range qa {
					d += float32(qa[r] * l[r])
				}
				for x := 0; x < P; x++ {
					d += float32(qh[N+x] * kp[x])
				}
				a[i] = d / div
			}
			routing.Softmax(a, a)
			clear(ctx)
			for i, w := range a {
				for r, v := range lat[i*R : (i+1)*R] {
					ctx[r] += float32(w * v)
				}
			}
			o := out.row(t)[h*V : (h+1)*V]
			for x := range o {
				o[x] = dot(rowF(kvb, h*KV+N+x, tmp), ctx)
			}
		}
	})
}
