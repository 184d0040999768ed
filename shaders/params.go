package shaders

import "math"

// The *Params types mirror the kernels' uniform structs field for field;
// Words lays one out as the u32 words the uniform holds.

func f32bits(v float32) uint32 { return math.Float32bits(v) }

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// EmbedParams: rows ids of one page [Row0, Row0+Rows) of a table.
type EmbedParams struct {
	N, Cols, Rows, Row0, WBase, IdsOff, DstOff, DstStride uint32
}

func (p EmbedParams) Words() []uint32 {
	return []uint32{p.N, p.Cols, p.Rows, p.Row0, p.WBase, p.IdsOff, p.DstOff, p.DstStride}
}

// MatMulParams: dst[t][Row0+r] = W[r]·x[t] (+ bias[Row0+r]).
type MatMulParams struct {
	Rows, Cols, T, XOff, XStride, DstOff, DstStride, WBase uint32
	HasBias                                                bool
	BiasOff, Row0, NX                                      uint32
}

func (p MatMulParams) Words() []uint32 {
	return []uint32{p.Rows, p.Cols, p.T, p.XOff, p.XStride, p.DstOff, p.DstStride, p.WBase, b2u(p.HasBias), p.BiasOff, p.Row0, p.NX}
}

// RMSNormParams: each group of Group values of each row.
type RMSNormParams struct {
	Rows, Cols, Group, XOff, XStride, DstOff, DstStride uint32
	Eps                                                 float32
	WOff                                                uint32
}

func (p RMSNormParams) Words() []uint32 {
	return []uint32{p.Rows, p.Cols, p.Group, p.XOff, p.XStride, p.DstOff, p.DstStride, f32bits(p.Eps), p.WOff}
}

// RoPEParams: rotate each head of rows rows at positions Pos0+t.
type RoPEParams struct {
	Rows, Cols, HeadDim, Pos0, XOff, XStride uint32
	Interleaved                              bool
	AttnFactor                               float32
	InvOff                                   uint32
}

func (p RoPEParams) Words() []uint32 {
	return []uint32{p.Rows, p.Cols, p.HeadDim, p.Pos0, p.XOff, p.XStride, b2u(p.Interleaved), f32bits(p.AttnFactor), p.InvOff}
}

// CopyParams: N values from src to dst.
type CopyParams struct{ N, SrcOff, DstOff, NX uint32 }

func (p CopyParams) Words() []uint32 { return []uint32{p.N, p.SrcOff, p.DstOff, p.NX} }

// AddParams: dst += x over N values.
type AddParams struct{ N, DstOff, XOff, NX uint32 }

func (p AddParams) Words() []uint32 { return []uint32{p.N, p.DstOff, p.XOff, p.NX} }

// AttnParams: attention of T query rows at positions Pos0.. over the cache.
type AttnParams struct {
	T, Heads, KVHeads, HeadDim, Pos0, QOff, QStride, DstOff, DstStride, NSplit uint32
	Scale                                                                      float32
}

func (p AttnParams) Words() []uint32 {
	return []uint32{p.T, p.Heads, p.KVHeads, p.HeadDim, p.Pos0, p.QOff, p.QStride, p.DstOff, p.DstStride, p.NSplit, f32bits(p.Scale)}
}

// AttnSplit is the number of cache positions one attn_partial workgroup
// covers.
const AttnSplit = 64

// RouteParams: route T tokens.
type RouteParams struct {
	T, LogitsOff, LogitsStride uint32
	Sigmoid, HasBias           bool
	BiasOff                    uint32
	Norm                       bool
	Scale                      float32
	RoutesOff                  uint32
}

func (p RouteParams) Words() []uint32 {
	return []uint32{p.T, p.LogitsOff, p.LogitsStride, b2u(p.Sigmoid), b2u(p.HasBias), p.BiasOff, b2u(p.Norm), f32bits(p.Scale), p.RoutesOff}
}

// NoExpert marks an empty slot of a routes buffer.
const NoExpert = 0xffffffff

// MoEParams: moe_gu and moe_down over the routed experts of T tokens, K
// slots each, for the matrices whose table key is Key.
type MoEParams struct {
	T, K, D, XOff, XStride, RoutesOff, MaxW, Key, NX uint32
}

func (p MoEParams) Words() []uint32 {
	return []uint32{p.T, p.K, p.D, p.XOff, p.XStride, p.RoutesOff, p.MaxW, p.Key, p.NX}
}

// MoECombineParams: add T tokens' K slots of D values to dst.
type MoECombineParams struct {
	T, K, D, RoutesOff, DstOff, DstStride uint32
}

func (p MoECombineParams) Words() []uint32 {
	return []uint32{p.T, p.K, p.D, p.RoutesOff, p.DstOff, p.DstStride}
}

// MoEEntry is one expert's entry in the MoE kernels' table: where its
// matrices are (key and base word of each) and its width, 0 when the
// expert is not resident.
type MoEEntry struct {
	GateKey, GateBase, UpKey, UpBase, DownKey, DownBase, Width uint32
}

// MoETableWords is the table of entries as the kernels read it.
func MoETableWords(es []MoEEntry) []uint32 {
	w := make([]uint32, 0, 8*len(es))
	for _, e := range es {
		w = append(w, e.GateKey, e.GateBase, e.UpKey, e.UpBase, e.DownKey, e.DownBase, e.Width, 0)
	}
	return w
}

// FFNParams: swiglu and accum over Rows×Cols.
type FFNParams struct {
	Rows, Cols, DstOff, DstStride, YOff, YStride, GOff, Mode uint32
}

// Accum modes.
const (
	AccumInit  = 1
	AccumGated = 2
	AccumZero  = 4
)

func (p FFNParams) Words() []uint32 {
	return []uint32{p.Rows, p.Cols, p.DstOff, p.DstStride, p.YOff, p.YStride, p.GOff, p.Mode}
}

// ArgmaxParams: the largest of N values at Off.
type ArgmaxParams struct{ N, Off uint32 }

func (p ArgmaxParams) Words() []uint32 { return []uint32{p.N, p.Off} }

// Grid splits n workgroups into x·y ≤ 65535·65535 (the per-dimension
// limit), returning x (the NX parameter of kernels that wrap) and y.
func Grid(n int) (x, y uint32) {
	const lim = 65535
	if n <= lim {
		return uint32(max(n, 1)), 1
	}
	return lim, uint32((n + lim - 1) / lim)
}

// SampleParams: draw number Draw of the stream Seed from N logits at Off.
type SampleParams struct {
	N, Off           uint32
	Seed             uint64
	Draw             uint32
	Temp, TopP, MinP float32
}

func (p SampleParams) Words() []uint32 {
	return []uint32{p.N, p.Off, uint32(p.Seed), uint32(p.Seed >> 32), p.Draw, f32bits(p.Temp), f32bits(p.TopP), f32bits(p.MinP)}
}
