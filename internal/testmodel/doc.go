// Package testmodel builds small random models of any model.Config for
// tests and benchmarks, deterministically from a seed, and computes their
// logits with a deliberately naive float64 reference forward pass.
package testmodel
