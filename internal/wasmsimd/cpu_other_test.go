//go:build !linux

package wasmsimd

import "time"

// threadCPU is unavailable here; the benchmarks then report wall time only.
func threadCPU() (time.Duration, bool) { return 0, false }
