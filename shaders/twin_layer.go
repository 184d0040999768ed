package shaders

import "github.com/moderuntime/mode/runtime/tensor"

// LayerTwin is layer.wgsl specialised to s (s.E and s.K: a routed
// FFN's experts and choices): the twins of the dispatches it stands for,
// in their order. x (the residual row, Dim values) is updated in place,
// and position Pos0 of the f32 caches kc and vc written; w holds the
// layer's weights at p's word offsets, inv the rotation's inverse
// frequencies.
func LayerTwin(s Spec, p LayerParams, w, inv []uint32, x, kc, vc []float32) {
	qd, kvd := p.Heads*p.HeadDim, p.KVHeads*p.HeadDim
	// Attention: the norm, q/k/v (matvec_multi), rotation and store
	// (rope_store), attention (attn_single), o with the residual add.
	h := NormRowTwin(w, p.AN, p.Eps, x, 0, p.Dim)
	q, k, v := make([]float32, qd), make([]float32, kvd), make([]float32, kvd)
	MatVecMultiTwin(tensor.F32, MatVecMultiParams{Rows: [3]uint32{qd, kvd, kvd}, Base: [3]uint32{p.WQ, p.WK, p.WV}, Cols: p.Dim},
		[3][]uint32{w, w, w}, h, [3][]float32{q, k, v})
	if p.QGroup > 0 {
		// rmsnorm's in_place2: q's groups, then k's.
		RMSNormTwin(RMSNormParams{Rows: 1, Cols: qd, Group: p.QGroup, XStride: qd, DstStride: qd, Eps: p.Eps, WOff: p.QN}, w, q, q)
		RMSNormTwin(RMSNormParams{Rows: 1, Cols: kvd, Group: p.KGroup, XStride: kvd, DstStride: kvd, Eps: p.Eps, WOff: p.KN}, w, k, k)
	}
	kb, vb := Bits(kc), Bits(vc)
	KVStoreTwin(KVStoreParams{Rows: 1, HeadDim: p.HeadDim, Pos0: p.Pos0, Interleaved: p.Interleaved, AttnFactor: p.AttnFactor,
		QStride: qd, QCols: qd, KStride: kvd, VStride: kvd, KVDim: kvd}, true, inv, q, k, v, kb, vb)
	copy(kc, Floats(kb))
	copy(vc, Floats(vb))
	att := make([]float32, qd)
	ap := p.AttnParams
	ap.T, ap.QOff, ap.QStride, ap.DstOff, ap.DstStride, ap.Ring, ap.Window, ap.HasSinks = 1, 0, qd, 0, qd, 0, 0, false
	AttentionTwin(ap, q, kc, vc, nil, att)
	o := make([]float32, p.Dim)
	MatVecTwin(tensor.F32, MatMulParams{Rows: p.Dim, Cols: qd, T: 1, WBase: p.WO, AddRes: true}, w, att, o, nil, x)
	// FFN: the norm, gate_up, down with the residual add.
	h = NormRowTwin(w, p.FN, p.Eps, x, 0, p.Dim)
	if p.MoE {
		// router_route, then moe_gu and moe_down_sum over a table in
		// moe.wgsl's layout whose one key is w.
		E, K := uint32(max(s.E, 1)), uint32(max(s.K, 1))
		logits, routes := make([]float32, E), make([]uint32, 2*K)
		rp := p.Route
		rp.T, rp.LogitsOff, rp.LogitsStride, rp.HasBias, rp.RoutesOff = 1, 0, E, false, 0
		RouterRouteTwin(tensor.F32, int(E), int(K), RouterParams{Rows: E, Cols: p.Dim, WBase: p.WR, Route: rp}, w, h, logits, nil, routes)
		key := MoEKey(0, tensor.F32)
		table := make([]uint32, 8*E)
		for e := range E {
			t := w[p.ET+LayerExpertWords*e:]
			copy(table[8*e:], []uint32{key, t[0], key, t[1], key, t[2], t[3], 0})
		}
		ffn := make([]float32, p.Dim)
		MoETwin(MoEParams{T: 1, K: K, D: p.Dim, XStride: p.Dim, MaxW: p.MaxW}, MoECombineParams{T: 1, K: K, D: p.Dim, DstStride: p.Dim, Init: true, AddRes: true, ResStride: p.Dim},
			map[uint32][]uint32{0: w}, table, routes, h, ffn, x)
		return
	}
	hid := make([]float32, p.FFN)
	MatVecGateUpTwin(tensor.F32, MatMulParams{Rows: p.FFN, Cols: p.Dim, T: 1, WBase: p.WG, W2Base: p.WU}, w, w, h, hid)
	MatVecTwin(tensor.F32, MatMulParams{Rows: p.Dim, Cols: p.FFN, T: 1, WBase: p.WD, AddRes: true}, w, hid, o, nil, x)
}
