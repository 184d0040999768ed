// Package cpu is the reference Backend: pure Go, no cgo, the same code on
// native, js/wasm and wasip1. Matrix products are split across goroutines
// by output rows; every dot product sums in input order so results are
// reproducible and match llama2.c's run.c bit for bit on x86-64.
package cpu
