//go:build !unix

package webgpu

import "testing"

// cpuSeconds is 0 where the process's CPU time is not available (js):
// benchmarks' CPU ratios are then not numbers.
func cpuSeconds(b *testing.B) float64 { return 0 }
