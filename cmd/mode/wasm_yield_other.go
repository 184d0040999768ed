//go:build !linux && !wasip1 && !js

package main

// osYield: elsewhere a spinning guest leaves the CPU only to Go's scheduler.
func osYield() {}
