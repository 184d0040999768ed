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

// MatMulParams: dst[t][Row0+r] = W[r]·x[t] (+ bias[Row0+r]). The matvec
// kernel also adds the result into res[ResOff+t·ResStride+Row0+r] when
// AddRes, and its gate_up entry reads the up matrix at W2Base.
type MatMulParams struct {
	Rows, Cols, T, XOff, XStride, DstOff, DstStride, WBase uint32
	HasBias                                                bool
	BiasOff, Row0, NX                                      uint32
	AddRes                                                 bool
	ResOff, ResStride, W2Base                              uint32
	// MatVecNorm, MatVecGUNorm: x is normalised on the way in by the
	// RMSNorm whose weight is at NOff with Eps, and the normalised row
	// written to h at HOff.
	NOff uint32
	Eps  float32
	HOff uint32
}

func (p MatMulParams) Words() []uint32 {
	return []uint32{p.Rows, p.Cols, p.T, p.XOff, p.XStride, p.DstOff, p.DstStride, p.WBase, b2u(p.HasBias), p.BiasOff, p.Row0, p.NX,
		b2u(p.AddRes), p.ResOff, p.ResStride, p.W2Base, p.NOff, f32bits(p.Eps), p.HOff}
}

// RMSNormParams: each group of Group values of each row.
// in_place2 also normalises a second tensor (Group2, XOff2, XStride2,
// WOff2) in the workgroups past Groups1.
type RMSNormParams struct {
	Rows, Cols, Group, XOff, XStride, DstOff, DstStride uint32
	Eps                                                 float32
	WOff                                                uint32
	Groups1, Group2, XOff2, XStride2, WOff2             uint32
}

func (p RMSNormParams) Words() []uint32 {
	return []uint32{p.Rows, p.Cols, p.Group, p.XOff, p.XStride, p.DstOff, p.DstStride, f32bits(p.Eps), p.WOff,
		p.Groups1, p.Group2, p.XOff2, p.XStride2, p.WOff2}
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

// MatVecMultiParams: out_i[DstOff[i]+r] = W_i[r]·x for the three matrices
// of matvec_multi (Rows[i] = 0: none).
type MatVecMultiParams struct {
	Rows, Base, DstOff [3]uint32
	Cols, XOff, NX     uint32
	// MatVecMultiNorm: x normalised on the way in (see MatMulParams).
	NOff uint32
	Eps  float32
}

func (p MatVecMultiParams) Words() []uint32 {
	return append(append(append(append([]uint32(nil), p.Rows[:]...), p.Base[:]...), p.DstOff[:]...), p.Cols, p.XOff, p.NX, p.NOff, f32bits(p.Eps), 0)
}

// KVStoreParams: kvstore.wgsl's rope_store and store for Rows tokens at
// positions Pos0+t.
type KVStoreParams struct {
	Rows, HeadDim, Pos0                 uint32
	Interleaved                         bool
	AttnFactor                          float32
	InvOff, QOff, QStride, QCols        uint32
	KOff, KStride, VOff, VStride, KVDim uint32
	F16                                 bool
}

func (p KVStoreParams) Words() []uint32 {
	return []uint32{p.Rows, p.HeadDim, p.Pos0, b2u(p.Interleaved), f32bits(p.AttnFactor), p.InvOff, p.QOff, p.QStride, p.QCols,
		p.KOff, p.KStride, p.VOff, p.VStride, p.KVDim, b2u(p.F16)}
}

// CopyParams: N values from src to dst.
type CopyParams struct{ N, SrcOff, DstOff, NX uint32 }

func (p CopyParams) Words() []uint32 { return []uint32{p.N, p.SrcOff, p.DstOff, p.NX} }

// ScaleParams: x *= S over N values from Off.
type ScaleParams struct {
	N, Off uint32
	S      float32
	NX     uint32
}

func (p ScaleParams) Words() []uint32 { return []uint32{p.N, p.Off, math.Float32bits(p.S), p.NX} }

// AddParams: dst += x over N values.
type AddParams struct{ N, DstOff, XOff, NX uint32 }

func (p AddParams) Words() []uint32 { return []uint32{p.N, p.DstOff, p.XOff, p.NX} }

// AttnParams: attention of T query rows at positions Pos0.. over the cache.
// Window > 0 limits each token to its last Window positions; Ring is the
// cache's length in positions (position i at slot i mod Ring; 0 reads as
// unbounded, for callers that predate rings); with HasSinks, sinks[SinksOff+h]
// is head h's sink logit.
type AttnParams struct {
	T, Heads, KVHeads, HeadDim, Pos0, QOff, QStride, DstOff, DstStride, NSplit uint32
	Scale                                                                      float32
	Window, Ring                                                               uint32
	HasSinks                                                                   bool
	SinksOff                                                                   uint32
}

func (p AttnParams) Words() []uint32 {
	ring := p.Ring
	if ring == 0 {
		ring = 1 << 31
	}
	return []uint32{p.T, p.Heads, p.KVHeads, p.HeadDim, p.Pos0, p.QOff, p.QStride, p.DstOff, p.DstStride, p.NSplit, f32bits(p.Scale),
		p.Window, ring, b2u(p.HasSinks), p.SinksOff}
}

// AttnRoPEParams: attn_rope, the attention of one token with its rotation
// and cache store; T must be 1 and Ring the cache's length.
type AttnRoPEParams struct {
	AttnParams
	Interleaved bool
	AttnFactor  float32
	KOff, VOff  uint32
}

func (p AttnRoPEParams) Words() []uint32 {
	return append(p.AttnParams.Words(), b2u(p.Interleaved), f32bits(p.AttnFactor), p.KOff, p.VOff)
}

// AttnSplit is the number of cache positions one attn_partial workgroup
// covers.
const AttnSplit = 64

// AttnSingleSplits is the most splits (positions up to AttnSingleSplits ×
// AttnSplit per token) AttnSingle takes in one dispatch; AttnSingleDim is
// the widest head it takes.
const (
	AttnSingleSplits = 16
	AttnSingleDim    = 256
)

// RouteParams: route T tokens.
type RouteParams struct {
	T, LogitsOff, LogitsStride uint32
	Sigmoid, HasBias           bool
	BiasOff                    uint32
	Norm                       bool
	Scale                      float32
	RoutesOff                  uint32
	// Groups > 1 limits each token to the experts of its TopKGroups best
	// groups, scored by their best selection score or (Top2) the sum of
	// their two best (model.Router's n_group, topk_group, group_score).
	Groups, TopKGroups uint32
	Top2               bool
}

func (p RouteParams) Words() []uint32 {
	return []uint32{p.T, p.LogitsOff, p.LogitsStride, b2u(p.Sigmoid), b2u(p.HasBias), p.BiasOff, b2u(p.Norm), f32bits(p.Scale), p.RoutesOff,
		p.Groups, p.TopKGroups, b2u(p.Top2)}
}

// RouterParams: router_route (router.wgsl), a token's router product
// (matvec.wgsl's fields of the same names, one token) and route.wgsl's
// selection over its logits (Route's fields; T is 1 and LogitsOff where
// the logits are stored).
type RouterParams struct {
	Rows, Cols, XOff, WBase, NOff uint32
	Eps                           float32
	HOff                          uint32
	Route                         RouteParams
}

func (p RouterParams) Words() []uint32 {
	return append([]uint32{p.Rows, p.Cols, p.XOff, p.WBase, p.NOff, f32bits(p.Eps), p.HOff}, p.Route.Words()...)
}

// NoExpert marks an empty slot of a routes buffer.
const NoExpert = 0xffffffff

// MoEParams: moe_gu and moe_down over the routed experts of T tokens, K
// slots each, for the matrices whose table key is Key.
// SwiGLU: moe_gu applies the activation itself (every gate and up has
// Key). moe_down_sum also combines as MoECombineParams (DstOff, DstStride,
// Init, AddRes, ResOff, ResStride). XSlot: moe_gu reads one x row per slot
// (a later block's input). Accum: moe_down adds to its output. Eps:
// moe_norm's epsilon.
type MoEParams struct {
	T, K, D, XOff, XStride, RoutesOff, MaxW, Key, NX uint32
	SwiGLU                                           bool
	DstOff, DstStride                                uint32
	Init, AddRes                                     bool
	ResOff, ResStride                                uint32
	XSlot, Accum                                     bool
	Eps                                              float32
}

func (p MoEParams) Words() []uint32 {
	return []uint32{p.T, p.K, p.D, p.XOff, p.XStride, p.RoutesOff, p.MaxW, p.Key, p.NX, b2u(p.SwiGLU),
		p.DstOff, p.DstStride, b2u(p.Init), b2u(p.AddRes), p.ResOff, p.ResStride,
		b2u(p.XSlot), b2u(p.Accum), f32bits(p.Eps)}
}

// MoEActParams: moe_act and moe_bias over TK slots (moe_act.wgsl).
type MoEActParams struct {
	TK, MaxW, D      uint32
	HasBias          bool
	GBOff, UBOff, BW uint32
	Clamped          bool
	Alpha, Limit     float32
}

func (p MoEActParams) Words() []uint32 {
	return []uint32{p.TK, p.MaxW, p.D, b2u(p.HasBias), p.GBOff, p.UBOff, p.BW, b2u(p.Clamped), f32bits(p.Alpha), f32bits(p.Limit)}
}

// MoECombineParams: add T tokens' K slots of D values to dst (to zero
// when Init), and the result into res too when AddRes.
type MoECombineParams struct {
	T, K, D, RoutesOff, DstOff, DstStride uint32
	Init, AddRes                          bool
	ResOff, ResStride                     uint32
}

func (p MoECombineParams) Words() []uint32 {
	return []uint32{p.T, p.K, p.D, p.RoutesOff, p.DstOff, p.DstStride, b2u(p.Init), b2u(p.AddRes), p.ResOff, p.ResStride}
}

// MoEEntry is one expert's entry in the MoE kernels' table (of its first
// block, or of a later one): where its matrices are (key and base word of
// each), its width, 0 when the expert is not resident (or has no such
// block), and its activation's code (ActCode).
type MoEEntry struct {
	GateKey, GateBase, UpKey, UpBase, DownKey, DownBase, Width, Act uint32
}

// MoETableWords is the table of entries as the kernels read it.
func MoETableWords(es []MoEEntry) []uint32 {
	w := make([]uint32, 0, 8*len(es))
	for _, e := range es {
		w = append(w, e.GateKey, e.GateBase, e.UpKey, e.UpBase, e.DownKey, e.DownBase, e.Width, e.Act)
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

// MLAAttnParams: mla_attn over T query rows of Heads heads at positions
// Pos0.. (offsets and ScStride in words).
type MLAAttnParams struct {
	T, Heads, Nope, Rope, V, Pos0        uint32
	QOff, KVOff, PEOff, OutOff, ScStride uint32
	Div                                  float32
}

func (p MLAAttnParams) Words() []uint32 {
	return []uint32{p.T, p.Heads, p.Nope, p.Rope, p.V, p.Pos0, p.QOff, p.KVOff, p.PEOff, p.OutOff, p.ScStride, f32bits(p.Div)}
}

// LayerParams: layer.wgsl, a decoder layer of one decoded token in one
// workgroup. The attention fields are AttnRoPEParams' (T 1, no window,
// no sinks, the cache of the full context); Dim and FFN are the model's
// widths, Eps the norms'; the rest are word offsets in the layer's one
// weight buffer: the attention norm, q, k, v, o, the FFN norm, gate, up
// and down, each matrix row-major f32. QGroup and KGroup > 0 add QK-norm
// with the weights at QN and KN over groups of those widths. MoE replaces
// gate, up and down with routed experts (the kernel specialised to
// Spec.E experts and Spec.K choices): the router's rows at WR, the
// experts' table at ET (LayerExpertWords per expert: gate, up and down
// offsets, width), MaxW the widest expert, Route the selection rule
// (route.wgsl's fields; T, the offsets and the bias unused).
type LayerParams struct {
	AttnRoPEParams
	Dim, FFN           uint32
	Eps                float32
	AN, WQ, WK, WV, WO uint32
	FN, WG, WU, WD     uint32
	QN, KN             uint32
	QGroup, KGroup     uint32
	MoE                bool
	WR, ET, MaxW       uint32
	Route              RouteParams
}

func (p LayerParams) Words() []uint32 {
	w := p.AttnRoPEParams.Words()
	w = w[:len(w)-2] // layer.wgsl has no k_off, v_off
	w = append(w, p.Dim, p.FFN, f32bits(p.Eps), p.AN, p.WQ, p.WK, p.WV, p.WO, p.FN, p.WG, p.WU, p.WD,
		p.QN, p.KN, p.QGroup, p.KGroup, b2u(p.MoE), p.WR, p.ET, p.MaxW)
	return append(w, p.Route.Words()...)
}

// LayerExpertWords is the words per expert of layer.wgsl's expert table:
// the gate's, up's and down's word offsets in the layer's buffer, and the
// expert's width.
const LayerExpertWords = 4

// LayerMaxDim and LayerMaxFFN bound layer.wgsl's vectors, which live in
// workgroup memory: the model width, q's and the cache's width at most
// LayerMaxDim, the FFN's hidden width at most LayerMaxFFN (with attend's
// arrays about 15 KiB, under WebGPU's default 16 KiB).
const (
	LayerMaxDim = 256
	LayerMaxFFN = 1024
)

// LayerMaxLoop bounds the loop iterations of layer.wgsl's attend_head in
// one invocation (the products' loops add at most about 5000 more at
// LayerMaxDim and LayerMaxFFN). lavapipe (llvmpipe's gallivm) breaks out
// of loops once an invocation has run 65535 iterations in all
// (LP_MAX_TGSI_LOOP_ITERATIONS), silently: TestLayer saw wrong attention
// from about 65000 on (head width 32, position 511) and none at 57000.
const LayerMaxLoop = 40000

// LayerFits says whether layer.wgsl takes a layer of these widths
// (multiples of four for its four-column units, heads of even width
// that attend takes) at position pos0 (attend's single-workgroup limit),
// and whether one head's attention in one invocation stays within
// LayerMaxLoop loop iterations.
func LayerFits(dim, heads, kvHeads, headDim, ffn, pos0 int) bool {
	return layerFits(dim, heads, kvHeads, headDim, pos0, 0) && ffn > 0 && ffn <= LayerMaxFFN && ffn%4 == 0
}

// LayerMoEFits is LayerFits for a layer whose FFN is routed: experts
// experts of at most maxWidth, topK chosen. The chosen experts' hidden
// rows share the dense FFN's workgroup memory (topK·maxWidth at most
// LayerMaxFFN), the logits live there too (at most LayerMaxDim experts),
// and invocation 0's loops add the selection's, about (topK+8)·experts
// iterations, to its attention's.
func LayerMoEFits(dim, heads, kvHeads, headDim, experts, topK, maxWidth, pos0 int) bool {
	return layerFits(dim, heads, kvHeads, headDim, pos0, (topK+8)*experts) && experts > 0 && experts <= LayerMaxDim &&
		topK > 0 && topK <= experts && maxWidth > 0 && topK*maxWidth <= LayerMaxFFN
}

func layerFits(dim, heads, kvHeads, headDim, pos0, extraLoop int) bool {
	qd, kvd := heads*headDim, kvHeads*headDim
	splits := pos0/AttnSplit + 1
	return 3*(pos0+1)*headDim+2*AttnSplit*splits+2*headDim+extraLoop <= LayerMaxLoop && dim > 0 && dim <= LayerMaxDim && dim%4 == 0 && qd <= LayerMaxDim && qd%4 == 0 && kvd <= LayerMaxDim &&
		headDim%2 == 0 && headDim <= AttnSingleDim && kvHeads > 0 && heads%kvHeads == 0 && pos0 < AttnSingleSplits*AttnSplit
}
