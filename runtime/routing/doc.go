// Package routing owns the expert-selection rules of a sparse layer: how
// router logits become scores (softmax or sigmoid), which experts a token
// takes (top-k, optionally on bias-shifted scores), how their weights are
// normalised and scaled, and how a prefill batch respects expert capacity.
//
// These functions are the reference every backend's router must match; the
// WGSL router kernel is tested against them.
package routing
