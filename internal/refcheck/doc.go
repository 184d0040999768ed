// Package refcheck holds a test helper shared by the model readers' tests:
// a model run through the engine's exact CPU path, one token at a time, is
// held to internal/testmodel's float64 reference at every position.
//
// It imports the engine, so the engine's own tests cannot use it (they
// compare against testmodel directly).
package refcheck
