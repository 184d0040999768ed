package shaders

import "github.com/moderuntime/mode/runtime/tensor"

// LayerTwin is layer.wgsl: the twins of the dispatches it stands for, in
// their order. x (the residual row, Dim values) is updated in place, and
// position Pos0 of the f32 caches kc and vc written; w holds the layer's
// weights at p's word offsets, inv the rotation's inverse frequencies.
func LayerTwin(p LayerParams, w, inv []uint32, x, kc, vc []float32) {
	qd, kvd := p.Heads*p.HeadDim, p.KVHeads*p.HeadDim
	// Attention: the norm, q/k/v (matvec_multi), rotation and store
	// (rope_store), attention (attn_single), o with the residual add.
	h := NormRowTwin(w, p.AN, p.Eps, x, 0, p.Dim)
	q, k, v := make([]float32, qd), make([]float32, kvd), make([]float32, kvd)
	MatVecMultiTwin(tensor.F32, MatVecMultiParams{Rows: [3]uint32{qd, kvd, kvd}, Base: [3]uint32{p.WQ, p.WK, p.WV}, Cols: p.Dim},
		[3][]uint32{w, w, w}, h, [3][]float32{q, k, v})
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
	hid := make([]float32, p.FFN)
	MatVecGateUpTwin(tensor.F32, MatMulParams{Rows: p.FFN, Cols: p.Dim, T: 1, WBase: p.WG, W2Base: p.WU}, w, w, h, hid)
	MatVecTwin(tensor.F32, MatMulParams{Rows: p.Dim, Cols: p.FFN, T: 1, WBase: p.WD, AddRes: true}, w, hid, o, nil, x)
}
