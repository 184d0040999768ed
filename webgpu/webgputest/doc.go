// Package webgputest opens a WebGPU device for tests, skipping them with a
// clear message when the machine has no adapter (failing them when CI=true,
// where one is always installed).
package webgputest
