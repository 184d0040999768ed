//go:build !unix

package cputime

import "time"

// Now falls back to the wall clock since the process started where
// getrusage does not exist.
func Now() time.Duration { return time.Since(start) }

var start = time.Now()
